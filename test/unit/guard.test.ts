import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isSaslgateError } from '../../src/errors.js'
import { Guard } from '../../src/pipeline/guard.js'
import { MemoryGuardStore } from '../../src/state/memory-store.js'
import { clock } from '../support/clock.js'

function setup(options: Partial<ConstructorParameters<typeof Guard>[1]> = {}) {
  const c = clock()
  const store = new MemoryGuardStore({ now: c.now, maxPrincipals: 1000 })
  const guard = new Guard(store, { now: c.now, ...options })
  return { c, store, guard }
}

describe('Guard', () => {
  test('blocks past the threshold with exponential backoff, capped', async () => {
    const { c, guard } = setup({ threshold: 3, backoffBaseMs: 1000, backoffMaxMs: 4000 })
    for (let i = 0; i < 2; i++) await guard.recordFailure('alice@EX')
    assert.equal((await guard.check('alice@EX', false)).action, 'pass')
    await guard.recordFailure('alice@EX') // 3rd: blocked 1 s
    let d = await guard.check('alice@EX', false)
    assert.equal(d.action, 'blocked')
    assert.equal(d.action === 'blocked' && d.retryAfterMs, 1000)
    c.advance(1001)
    assert.equal((await guard.check('alice@EX', false)).action, 'pass')
    await guard.recordFailure('alice@EX') // 4th: 2 s
    d = await guard.check('alice@EX', false)
    assert.equal(d.action === 'blocked' && d.retryAfterMs, 2000)
    for (let i = 0; i < 20; i++) await guard.recordFailure('alice@EX')
    d = await guard.check('alice@EX', false)
    assert.equal(d.action === 'blocked' && d.retryAfterMs, 4000, 'capped at backoffMaxMs')
  })

  test('the backoff holds to its last millisecond: blocked at 999 ms of 1,000, free at 1,000', async () => {
    const { c, guard } = setup({ threshold: 1, backoffBaseMs: 1000, maxKdcFailuresPerWindow: 100 })
    await guard.recordFailure('alice@EX')
    c.advance(999)
    const d = await guard.check('alice@EX', false)
    assert.deepEqual(d, { action: 'blocked', retryAfterMs: 1 }, 'one millisecond left')
    c.advance(1)
    assert.equal((await guard.check('alice@EX', false)).action, 'pass', 'the backoff is over')
  })

  test('a backoffFactor other than 2 sets the growth: 3 gives 1 s, 3 s, 9 s, then the cap', async () => {
    const { c, guard } = setup({
      threshold: 2,
      backoffBaseMs: 1000,
      backoffFactor: 3,
      backoffMaxMs: 20_000,
      maxKdcFailuresPerWindow: 100,
    })
    const expected = [0, 1000, 3000, 9000, 20_000, 20_000]
    for (const [i, want] of expected.entries()) {
      const counts = await guard.recordFailure('bob@EX')
      assert.equal(counts.failures, i + 1)
      assert.equal(
        guard.blockedUntil(counts) - (want === 0 ? 0 : c.now()),
        want,
        `failure ${i + 1}`,
      )
      const d = await guard.check('bob@EX', false)
      if (want === 0) assert.equal(d.action, 'pass', `failure ${i + 1}: below the threshold`)
      else assert.deepEqual(d, { action: 'blocked', retryAfterMs: want }, `failure ${i + 1}`)
      // Just before the end still blocked, at the end free: the backoff ends where the factor says.
      if (want > 0) {
        c.advance(want - 1)
        assert.equal(
          (await guard.check('bob@EX', false)).action,
          'blocked',
          `failure ${i + 1} at ${want - 1} ms`,
        )
        c.advance(1)
        assert.equal(
          (await guard.check('bob@EX', false)).action,
          'pass',
          `failure ${i + 1} at ${want} ms`,
        )
      }
    }
  })

  test('a factor of 1 keeps the backoff flat at the base', async () => {
    const { c, guard } = setup({
      threshold: 1,
      backoffBaseMs: 500,
      backoffFactor: 1,
      maxKdcFailuresPerWindow: 100,
    })
    for (let i = 0; i < 5; i++) {
      await guard.recordFailure('carol@EX')
      assert.deepEqual(await guard.check('carol@EX', false), {
        action: 'blocked',
        retryAfterMs: 500,
      })
      c.advance(500)
    }
  })

  test('known-good credentials pass while blocked and over budget', async () => {
    const { guard } = setup({ threshold: 1, maxKdcFailuresPerWindow: 1 })
    assert.equal(await guard.reserveKdc('alice@EX'), true)
    await guard.recordFailure('alice@EX')
    assert.equal((await guard.check('alice@EX', false)).action, 'blocked')
    assert.equal((await guard.check('alice@EX', true)).action, 'pass')
  })

  test('the KDC budget is atomic, refundable and ends with the window', async () => {
    const { c, guard } = setup({
      maxKdcFailuresPerWindow: 3,
      cleanReserve: 0,
      windowMs: 10_000,
      threshold: 100,
    })
    const taken = await Promise.all(Array.from({ length: 10 }, () => guard.reserveKdc('bob@EX')))
    assert.equal(taken.filter(Boolean).length, 3, 'concurrent reservations cannot overshoot')
    assert.equal((await guard.check('bob@EX', false)).action, 'budget')
    assert.equal((await guard.check('carol@EX', false)).action, 'pass', 'per principal')
    await guard.refundKdc('bob@EX')
    assert.equal((await guard.check('bob@EX', false)).action, 'pass')
    assert.equal(await guard.reserveKdc('bob@EX'), true)
    assert.equal(await guard.reserveKdc('bob@EX'), false)
    c.advance(9000)
    await guard.recordFailure('bob@EX') // slides the window
    c.advance(9000)
    assert.equal((await guard.check('bob@EX', false)).action, 'budget', 'window slid')
    c.advance(1001)
    assert.equal((await guard.check('bob@EX', false)).action, 'pass', 'window over')
  })

  test('the clean reserve: sprayed guesses stop early, clean ones may finish the budget', async () => {
    const { guard } = setup({ maxKdcFailuresPerWindow: 3, cleanReserve: 2, threshold: 100 })
    assert.equal(await guard.reserveKdc('alice@EX'), true, 'one ordinary forward')
    assert.equal(await guard.reserveKdc('alice@EX'), false, 'the rest is reserved')
    assert.equal((await guard.check('alice@EX', false)).action, 'budget')
    const clean = await guard.check('alice@EX', false, true)
    assert.deepEqual(clean, { action: 'pass', failures: 0, reserve: true })
    const taken = await Promise.all(
      Array.from({ length: 10 }, () => guard.reserveKdc('alice@EX', true)),
    )
    assert.equal(taken.filter(Boolean).length, 2, 'the total never exceeds the budget')
    assert.equal((await guard.check('alice@EX', false, true)).action, 'budget')
  })

  test('clean credentials pass the backoff while the budget lasts', async () => {
    const { guard } = setup({ maxKdcFailuresPerWindow: 3, cleanReserve: 2, threshold: 2 })
    assert.equal(await guard.reserveKdc('bob@EX'), true)
    for (let i = 0; i < 10; i++) await guard.recordFailure('bob@EX')
    assert.equal((await guard.check('bob@EX', false)).action, 'blocked')
    const d = await guard.check('bob@EX', false, true)
    assert.equal(d.action === 'pass' && d.reserve, true)
    assert.equal(await guard.reserveKdc('bob@EX', true), true)
    assert.equal(await guard.reserveKdc('bob@EX', true), true)
    assert.equal((await guard.check('bob@EX', false, true)).action, 'blocked', 'budget used up')
  })

  test('the reserve always leaves one forward open to any password', async () => {
    const { guard } = setup({ maxKdcFailuresPerWindow: 2, cleanReserve: 5, threshold: 100 })
    assert.equal(await guard.reserveKdc('carol@EX'), true)
    assert.equal(await guard.reserveKdc('carol@EX'), false)
    assert.equal(await guard.reserveKdc('carol@EX', true), true)
    assert.equal(await guard.reserveKdc('carol@EX', true), false)
  })

  test('without a reserve clean credentials get nothing more', async () => {
    for (const options of [
      { maxKdcFailuresPerWindow: 3, cleanReserve: 0 },
      { maxKdcFailuresPerWindow: 1, cleanReserve: 2 },
    ]) {
      const { guard } = setup({ ...options, threshold: 1 })
      assert.equal(await guard.reserveKdc('dave@EX', true), true)
      await guard.recordFailure('dave@EX')
      assert.equal((await guard.check('dave@EX', false, true)).action, 'blocked')
    }
  })

  test('success resets the principal', async () => {
    const { guard } = setup({ threshold: 1, maxKdcFailuresPerWindow: 1 })
    await guard.reserveKdc('alice@EX')
    await guard.recordFailure('alice@EX')
    assert.notEqual((await guard.check('alice@EX', false)).action, 'pass')
    await guard.recordSuccess('alice@EX')
    assert.equal((await guard.check('alice@EX', false)).action, 'pass')
  })

  test('tracked principals are bounded (LRU)', async () => {
    const c = clock()
    const store = new MemoryGuardStore({ now: c.now, maxPrincipals: 50 })
    const guard = new Guard(store, { now: c.now })
    for (let i = 0; i < 500; i++) await guard.recordFailure(`bot${i}@EX`)
    assert.equal(store.size, 50)
    assert.equal((await store.get('bot499@EX')).failures, 1)
    assert.equal((await store.get('bot0@EX')).failures, 0)
  })

  test('expired principals are swept as new ones are written: a long storm holds what is live', async () => {
    const c = clock()
    const store = new MemoryGuardStore({ now: c.now, maxPrincipals: 100_000 })
    const guard = new Guard(store, { now: c.now, windowMs: 1000 })
    let peak = 0
    for (let sec = 0; sec < 20; sec++) {
      for (let i = 0; i < 500; i++) await guard.recordFailure(`bot${sec}-${i}@EX`)
      peak = Math.max(peak, store.size)
      c.advance(1000)
    }
    assert.ok(peak <= 1000, `tracked principals peaked at ${peak}, not ~one window's worth`)
    await guard.recordFailure('carol@EX')
    c.advance(500)
    for (let i = 0; i < 100; i++) await guard.recordFailure(`late${i}@EX`)
    assert.equal((await store.get('carol@EX')).failures, 1, 'a live record is never swept')
  })

  test('refuses nonsense options', () => {
    const store = new MemoryGuardStore()
    for (const bad of [
      { threshold: 0 },
      { maxKdcFailuresPerWindow: 0 },
      { backoffFactor: 0.5 },
      { cleanReserve: -1 },
      { cleanReserve: 1.5 },
    ]) {
      assert.throws(
        () => new Guard(store, bad),
        (e) => isSaslgateError(e, 'SASLGATE_ERR_CONFIG'),
      )
    }
  })
})
