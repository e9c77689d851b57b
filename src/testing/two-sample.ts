/**
 * Two-sample tests for "can anyone tell these two latency distributions apart?" (the
 * enumeration test: unknown user vs wrong password). Pure functions, no dependencies.
 *
 *   - Kolmogorov-Smirnov: the largest gap between the two empirical CDFs; sensitive to any
 *     difference in shape or location. p-value from the asymptotic Kolmogorov distribution
 *     with Stephens' small-sample correction (Numerical Recipes `kstwo`); good for n, m >= 20.
 *   - Mann-Whitney U (Wilcoxon rank-sum): is one sample stochastically larger? Normal
 *     approximation with tie correction and continuity correction, two-sided (as SciPy's
 *     `mannwhitneyu(method='asymptotic')`).
 *
 * Both return a p-value: the chance of a difference at least this large if both samples came
 * from one distribution. p < alpha means "told apart".
 */

export interface KsResult {
  /** Largest absolute gap between the empirical CDFs, 0..1. */
  d: number
  pValue: number
  /** Which sample's CDF is above at the largest gap: `a` means a is faster (smaller values). */
  faster: 'a' | 'b' | 'neither'
}

export interface MannWhitneyResult {
  /** U statistic of sample a. */
  u: number
  z: number
  pValue: number
  /** P(a < b) + P(a = b)/2 estimated from the ranks; 0.5 when neither is larger. */
  commonLanguageEffect: number
}

function finiteSorted(xs: readonly number[], name: string): Float64Array {
  const out = Float64Array.from(xs)
  for (const x of out) {
    if (!Number.isFinite(x)) throw new RangeError(`sample ${name} holds a non-finite value`)
  }
  if (out.length === 0) throw new RangeError(`sample ${name} is empty`)
  return out.sort()
}

/** Q_KS(lambda) = 2 sum_{j>=1} (-1)^(j-1) exp(-2 j^2 lambda^2), the Kolmogorov tail. */
export function kolmogorovTail(lambda: number): number {
  if (!(lambda > 0)) return 1
  if (lambda < 0.2) return 1 // the series converges slowly here and its value is 1 to 1e-20
  let sum = 0
  let sign = 1
  let previous = 0
  for (let j = 1; j <= 200; j++) {
    const term = sign * Math.exp(-2 * j * j * lambda * lambda)
    sum += term
    if (Math.abs(term) <= 1e-12 * Math.abs(sum) || Math.abs(term) <= 1e-300 || term === previous)
      break
    previous = term
    sign = -sign
  }
  return Math.min(1, Math.max(0, 2 * sum))
}

/** Two-sample Kolmogorov-Smirnov test, two-sided. */
export function ksTwoSample(a: readonly number[], b: readonly number[]): KsResult {
  const x = finiteSorted(a, 'a')
  const y = finiteSorted(b, 'b')
  const n = x.length
  const m = y.length
  let i = 0
  let j = 0
  let d = 0
  let faster: KsResult['faster'] = 'neither'
  while (i < n && j < m) {
    const v = Math.min(x[i] as number, y[j] as number)
    // Step past every value equal to v in both samples (ties move both CDFs at once).
    while (i < n && (x[i] as number) === v) i++
    while (j < m && (y[j] as number) === v) j++
    const gap = i / n - j / m
    if (Math.abs(gap) > d) {
      d = Math.abs(gap)
      faster = gap > 0 ? 'a' : 'b'
    }
  }
  const en = Math.sqrt((n * m) / (n + m))
  const pValue = kolmogorovTail((en + 0.12 + 0.11 / en) * d)
  return { d, pValue, faster: d === 0 ? 'neither' : faster }
}

/** erfc(x) with fractional error below 1.2e-7 everywhere (Numerical Recipes `erfcc`). */
export function erfc(x: number): number {
  const z = Math.abs(x)
  const t = 1 / (1 + 0.5 * z)
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t *
                              (-1.13520398 +
                                t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    )
  return x >= 0 ? r : 2 - r
}

/** Two-sided Mann-Whitney U test (normal approximation, tie and continuity corrections). */
export function mannWhitneyU(a: readonly number[], b: readonly number[]): MannWhitneyResult {
  const x = finiteSorted(a, 'a')
  const y = finiteSorted(b, 'b')
  const n = x.length
  const m = y.length
  const all: Array<[number, 0 | 1]> = []
  for (const v of x) all.push([v, 0])
  for (const v of y) all.push([v, 1])
  all.sort((p, q) => p[0] - q[0])
  let rankSumA = 0
  let tieTerm = 0
  for (let k = 0; k < all.length; ) {
    let end = k
    while (
      end + 1 < all.length &&
      (all[end + 1] as [number, 0 | 1])[0] === (all[k] as [number, 0 | 1])[0]
    )
      end++
    const size = end - k + 1
    const rank = (k + 1 + end + 1) / 2 // mid-rank of the tied group
    for (let q = k; q <= end; q++) if ((all[q] as [number, 0 | 1])[1] === 0) rankSumA += rank
    tieTerm += size ** 3 - size
    k = end + 1
  }
  const u = rankSumA - (n * (n + 1)) / 2
  const mean = (n * m) / 2
  const total = n + m
  const variance = ((n * m) / 12) * (total + 1 - tieTerm / (total * (total - 1)))
  if (!(variance > 0)) return { u, z: 0, pValue: 1, commonLanguageEffect: 0.5 }
  const diff = u - mean
  const corrected = Math.max(0, Math.abs(diff) - 0.5)
  const z = (Math.sign(diff) * corrected) / Math.sqrt(variance)
  const pValue = Math.min(1, erfc(Math.abs(z) / Math.SQRT2))
  // U counts pairs where a is larger; the share where a is smaller is the complement.
  return { u, z, pValue, commonLanguageEffect: 1 - u / (n * m) }
}

/** Nearest-rank quantile of an unsorted sample. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN
  const s = Float64Array.from(xs).sort()
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number
}
