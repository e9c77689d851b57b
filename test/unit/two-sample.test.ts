/**
 * The two-sample tests behind the enumeration test: reference values from SciPy 1.17
 * (`kstwobign.sf`, `mannwhitneyu(method='asymptotic')`, `scipy.special.erfc`), and their
 * behaviour on samples that do and do not come from one distribution.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { seededRandom } from '../../src/storm/stats.js'
import {
  erfc,
  kolmogorovTail,
  ksTwoSample,
  mannWhitneyU,
  quantile,
} from '../../src/testing/two-sample.js'

const close = (actual: number, expected: number, rel = 1e-5) =>
  assert.ok(
    Math.abs(actual - expected) <= rel * Math.max(Math.abs(expected), 1e-12),
    `${actual} vs ${expected}`,
  )

// Ties on purpose: 2.2, 3.0, 3.3, 3.9 and 4.4 are in both samples.
const A = [
  1.2, 3.4, 2.2, 5.1, 0.3, 4.4, 2.9, 3.3, 1.1, 6.0, 2.5, 3.9, 4.1, 0.9, 2.0, 3.0, 3.1, 2.7, 1.8,
  4.8,
]
const B = [
  2.2, 5.5, 3.9, 6.1, 4.0, 7.7, 3.3, 4.9, 5.0, 6.6, 2.8, 5.2, 4.7, 3.6, 6.9, 5.8, 4.3, 3.0, 5.9,
  4.4, 6.2, 3.8,
]

/** Log-normal-ish latencies around `medianMs`, like request latencies. */
function latencies(n: number, seed: number, medianMs: number, shiftMs = 0): number[] {
  const rand = seededRandom(seed)
  return Array.from({ length: n }, () => {
    // Box-Muller
    const g = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())
    return medianMs * Math.exp(0.3 * g) + shiftMs
  })
}

describe('two-sample tests', () => {
  test('erfc and the Kolmogorov tail match SciPy', () => {
    close(erfc(0.5), 0.4795001221869535, 2e-7)
    close(erfc(-1.3), 1.9340079449406524, 2e-7)
    close(erfc(3), 2.2090496998585445e-5, 2e-7)
    close(kolmogorovTail(0.5), 0.9639452436648751)
    close(kolmogorovTail(1.0), 0.26999967167735456)
    close(kolmogorovTail(1.36), 0.049485876755377876)
    close(kolmogorovTail(2.0), 0.0006709252557796953)
    assert.equal(kolmogorovTail(0), 1)
    assert.equal(kolmogorovTail(0.1), 1)
  })

  test('KS statistic and p-value match SciPy on a sample with ties', () => {
    const r = ksTwoSample(A, B)
    close(r.d, 0.5181818181818181)
    close(r.pValue, 0.0041657023468701215) // kstwobign.sf((en + 0.12 + 0.11/en) * d)
    assert.equal(r.faster, 'a')
    assert.equal(ksTwoSample(B, A).faster, 'b')
  })

  test('Mann-Whitney U and p-value match SciPy on a sample with ties', () => {
    const r = mannWhitneyU(A, B)
    assert.equal(r.u, 82.5)
    close(r.pValue, 0.0005586178216829816, 1e-4)
    assert.ok(r.commonLanguageEffect > 0.5, 'a tends to be smaller')
  })

  test('identical inputs: no difference at all', () => {
    const xs = latencies(500, 1, 2)
    const ks = ksTwoSample(xs, xs)
    assert.equal(ks.d, 0)
    assert.equal(ks.pValue, 1)
    assert.equal(ks.faster, 'neither')
    const mw = mannWhitneyU(xs, xs)
    assert.equal(mw.pValue, 1)
    assert.equal(mw.commonLanguageEffect, 0.5)
    assert.equal(mannWhitneyU([1, 1, 1], [1, 1]).pValue, 1)
  })

  test('same distribution, independent draws: p is above 0.01 for 19 of 20 seeds or more', () => {
    let ksRejects = 0
    let mwRejects = 0
    for (let seed = 1; seed <= 20; seed++) {
      const a = latencies(1000, seed * 2, 2)
      const b = latencies(1000, seed * 2 + 1, 2)
      if (ksTwoSample(a, b).pValue < 0.01) ksRejects++
      if (mannWhitneyU(a, b).pValue < 0.01) mwRejects++
    }
    assert.ok(ksRejects <= 1, `KS rejected ${ksRejects}/20`)
    assert.ok(mwRejects <= 1, `MWU rejected ${mwRejects}/20`)
  })

  test('a shift of 10% of the median over 1,000 samples each is told apart', () => {
    const a = latencies(1000, 7, 2)
    const b = latencies(1000, 8, 2, 0.2)
    const ks = ksTwoSample(a, b)
    const mw = mannWhitneyU(a, b)
    assert.ok(ks.pValue < 1e-4, `KS p=${ks.pValue}`)
    assert.equal(ks.faster, 'a')
    assert.ok(mw.pValue < 1e-4, `MWU p=${mw.pValue}`)
  })

  test('a difference in shape only (same median, wider spread) is seen by KS', () => {
    const rand = seededRandom(3)
    const a = Array.from({ length: 1000 }, () => 2 + (rand() - 0.5) * 0.2)
    const b = Array.from({ length: 1000 }, () => 2 + (rand() - 0.5) * 2)
    assert.ok(ksTwoSample(a, b).pValue < 1e-6)
  })

  test('bad input is refused; quantile is nearest-rank', () => {
    assert.throws(() => ksTwoSample([], [1]), RangeError)
    assert.throws(() => mannWhitneyU([1, Number.NaN], [1]), RangeError)
    assert.equal(quantile([5, 1, 4, 2, 3], 0.5), 3)
    assert.equal(quantile([5, 1, 4, 2, 3], 1), 5)
    assert.equal(quantile([5, 1, 4, 2, 3], 0), 1)
  })
})
