/**
 * The decision rule of test/integration/enumeration.test.ts, apart so that
 * bench/enumeration-false-failure.ts replays exactly the same rule on resamples of recorded
 * runs (that is how its false-failure rate is shown below 1 in 1,000 without 3,000 runs).
 *
 * One comparison: n pairs, each an unknown-user try and a wrong-password try made back to
 * back in a random order (so drift hits both alike). It passes when all of these hold:
 *
 *   1. Difference tests at ALPHA_DIFFERENCE each: Mann-Whitney and Kolmogorov-Smirnov on
 *      the two samples. The test file runs 3 comparisons, so 6 p-values: Bonferroni keeps
 *      the chance that any of them falls below ALPHA_DIFFERENCE by luck at <= 6e-4.
 *   2. Equivalence (paired): the distribution-free confidence interval (level 1 - ALPHA_EQUIV)
 *      of the median within-pair difference lies inside +-EQUIVALENCE_MS. A difference test
 *      alone passes more easily the noisier the machine (noise hides a shift); this one fails
 *      when the noise is too large to show the two kinds within EQUIVALENCE_MS of each other,
 *      so adding variance cannot make a leak pass.
 *
 * With n = 1,000 the difference tests alone notice a common-language effect outside about
 * 0.5 +- 0.05 (P(unknown faster)); the unpaced leak measured before (an unknown user's NO
 * ~4 ms sooner) gave 1.0.
 */
import { erfc, ksTwoSample, mannWhitneyU, quantile } from '../../src/testing/two-sample.js'

export const ALPHA_DIFFERENCE = 1e-4
export const ALPHA_EQUIV = 1e-4
export const EQUIVALENCE_MS = 1

export interface RuleOutcome {
  pass: boolean
  /** Why it failed (empty when it passed). */
  failures: string[]
  ksP: number
  mwP: number
  /** P(unknown faster), from Mann-Whitney's ranks. */
  commonLanguage: number
  /** Confidence interval of the median paired difference (unknown - wrong), ms. */
  medianDiffCi: [number, number]
  summary: string
}

/** z for a two-sided level 1 - alpha (inverse normal by bisection on erfc). */
function zTwoSided(alpha: number): number {
  let lo = 0
  let hi = 10
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2
    // P(|Z| > mid) = erfc(mid / sqrt 2)
    if (erfc(mid / Math.SQRT2) > alpha) lo = mid
    else hi = mid
  }
  return (lo + hi) / 2
}

/** Sign-test confidence interval for the median of `d` (order statistics; normal approximation). */
export function medianCi(d: readonly number[], alpha: number): [number, number] {
  const s = Float64Array.from(d).sort()
  const n = s.length
  const k = Math.max(0, Math.floor(n / 2 - (zTwoSided(alpha) * Math.sqrt(n)) / 2))
  return [s[k] as number, s[n - 1 - k] as number]
}

export function decide(unknownMs: readonly number[], wrongMs: readonly number[]): RuleOutcome {
  if (unknownMs.length !== wrongMs.length || unknownMs.length < 20) {
    throw new RangeError('enumeration rule: need paired samples of equal length >= 20')
  }
  const ks = ksTwoSample(unknownMs, wrongMs)
  const mw = mannWhitneyU(unknownMs, wrongMs)
  const diffs = unknownMs.map((u, i) => u - (wrongMs[i] as number))
  const ci = medianCi(diffs, ALPHA_EQUIV)
  const failures: string[] = []
  if (ks.pValue < ALPHA_DIFFERENCE) failures.push(`KS p=${ks.pValue.toExponential(2)}`)
  if (mw.pValue < ALPHA_DIFFERENCE) failures.push(`Mann-Whitney p=${mw.pValue.toExponential(2)}`)
  if (!(ci[0] > -EQUIVALENCE_MS && ci[1] < EQUIVALENCE_MS)) {
    failures.push(
      `median paired difference CI [${ci[0].toFixed(3)}, ${ci[1].toFixed(3)}] ms not within +-${EQUIVALENCE_MS} ms`,
    )
  }
  const q = (xs: readonly number[], p: number) => quantile(xs, p).toFixed(2)
  const summary =
    `${unknownMs.length} pairs; unknown p10/p50/p90 ${q(unknownMs, 0.1)}/${q(unknownMs, 0.5)}/${q(unknownMs, 0.9)} ms, ` +
    `wrong password ${q(wrongMs, 0.1)}/${q(wrongMs, 0.5)}/${q(wrongMs, 0.9)} ms; ` +
    `KS D=${ks.d.toFixed(3)} p=${ks.pValue.toExponential(2)}, ` +
    `Mann-Whitney p=${mw.pValue.toExponential(2)} P(unknown faster)=${mw.commonLanguageEffect.toFixed(3)}, ` +
    `median paired difference CI [${ci[0].toFixed(3)}, ${ci[1].toFixed(3)}] ms`
  return {
    pass: failures.length === 0,
    failures,
    ksP: ks.pValue,
    mwP: mw.pValue,
    commonLanguage: mw.commonLanguageEffect,
    medianDiffCi: ci,
    summary,
  }
}
