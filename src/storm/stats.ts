/** Latency summaries for the load reports. */

export interface LatencySummary {
  n: number
  p50: number
  p95: number
  p99: number
  max: number
}

/** Nearest-rank percentiles of `values` (ms), rounded to 0.1 ms. */
export function summarize(values: readonly number[]): LatencySummary {
  const a = Float64Array.from(values).sort()
  const at = (q: number): number =>
    a.length === 0 ? 0 : (a[Math.min(a.length - 1, Math.ceil(q * a.length) - 1)] ?? 0)
  const r = (x: number) => Math.round(x * 10) / 10
  return {
    n: a.length,
    p50: r(at(0.5)),
    p95: r(at(0.95)),
    p99: r(at(0.99)),
    max: r(a.length === 0 ? 0 : (a[a.length - 1] ?? 0)),
  }
}

/** A small seeded PRNG (mulberry32) so runs are repeatable. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
