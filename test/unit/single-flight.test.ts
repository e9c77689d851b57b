import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isSaslgateError } from '../../src/errors.js'
import { SingleFlight } from '../../src/pipeline/single-flight.js'
import type { CacheKey } from '../../src/pipeline/verdict-cache.js'
import { VerdictCache } from '../../src/pipeline/verdict-cache.js'

/** A promise and its resolver, to hold a flight open. */
function gate<T>(): { promise: Promise<T>; open: (v: T) => void; fail: (e: unknown) => void } {
  let open!: (v: T) => void
  let fail!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    open = res
    fail = rej
  })
  return { promise, open, fail }
}

const live = (): AbortSignal => new AbortController().signal

describe('SingleFlight', () => {
  test('100 concurrent identical checks make one call', async () => {
    const cache = new VerdictCache()
    const flights = new SingleFlight<CacheKey, string>()
    const g = gate<string>()
    let calls = 0
    const fn = () => {
      calls++
      return g.promise
    }
    const all = Array.from({ length: 100 }, () =>
      flights.run('alice@EX', cache.keyFor('alice@EX', Buffer.from('pw')), fn, live()),
    )
    assert.equal(flights.size, 1)
    g.open('verdict')
    assert.deepEqual(new Set(await Promise.all(all)), new Set(['verdict']))
    assert.equal(calls, 1)
    assert.equal(flights.joined, 99)
    assert.equal(flights.size, 0, 'removed when settled')
    await flights.run('alice@EX', cache.keyFor('alice@EX', Buffer.from('pw')), fn, live())
    assert.equal(calls, 2, 'a call after the flight settled starts a new one')
  })

  test('different passwords or principals do not share', async () => {
    const cache = new VerdictCache()
    const flights = new SingleFlight<CacheKey, number>()
    let calls = 0
    const fn = async () => ++calls
    await Promise.all([
      flights.run('a@EX', cache.keyFor('a@EX', Buffer.from('1')), fn, live()),
      flights.run('a@EX', cache.keyFor('a@EX', Buffer.from('2')), fn, live()),
      flights.run('b@EX', cache.keyFor('b@EX', Buffer.from('1')), fn, live()),
    ])
    assert.equal(calls, 3)
  })

  test("a waiter's abort stops only that waiter; the last one aborts the call", async () => {
    const cache = new VerdictCache()
    const flights = new SingleFlight<CacheKey, string>()
    const key = () => cache.keyFor('a@EX', Buffer.from('pw'))
    const g = gate<string>()
    let shared: AbortSignal | undefined
    const fn = (signal: AbortSignal) => {
      shared = signal
      return g.promise
    }
    const c1 = new AbortController()
    const c2 = new AbortController()
    const p1 = flights.run('a@EX', key(), fn, c1.signal)
    const p2 = flights.run('a@EX', key(), fn, c2.signal)
    c1.abort()
    await assert.rejects(p1, (e) => isSaslgateError(e, 'SASLGATE_ERR_ABORTED'))
    assert.equal(shared?.aborted, false, 'the other waiter keeps the call alive')
    c2.abort()
    await assert.rejects(p2, (e) => isSaslgateError(e, 'SASLGATE_ERR_ABORTED'))
    assert.equal(shared?.aborted, true)
    assert.equal(flights.size, 0, 'an abandoned flight is not joined later')
    g.open('late')
  })

  test('errors and synchronous throws reach every waiter', async () => {
    const cache = new VerdictCache()
    const flights = new SingleFlight<CacheKey, string>()
    const k = cache.keyFor('a@EX', Buffer.from('pw'))
    const boom = () => {
      throw new Error('boom')
    }
    const r = await Promise.allSettled([
      flights.run('a@EX', k, boom, live()),
      flights.run('a@EX', k, boom, live()),
    ])
    assert.deepEqual(
      r.map((x) => x.status),
      ['rejected', 'rejected'],
    )
    assert.equal(flights.size, 0)
  })
})
