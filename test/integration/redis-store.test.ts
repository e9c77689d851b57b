import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { PasswordVerifier } from '../../src/kerberos/types.js'
import { Guard } from '../../src/pipeline/guard.js'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { RedisGuardStore } from '../../src/state/redis-store.js'
import { haveRedis, startRedis, type TestRedis } from '../support/redis.js'

const skip = haveRedis() ? false : 'redis-server is not installed'

/** Polls `cond` every 10 ms for at most `ms`; true when it held. */
async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (cond()) return true
    await sleep(10)
  }
  return cond()
}

describe('RedisGuardStore against a real redis-server', { skip }, () => {
  let redis: TestRedis
  let raw: Redis
  const stores: RedisGuardStore[] = []
  let n = 0

  async function store(options: Partial<ConstructorParameters<typeof RedisGuardStore>[0]> = {}) {
    const s = new RedisGuardStore({ url: redis.url, keyPrefix: `t${n}:`, ...options })
    stores.push(s)
    assert.ok(await waitFor(() => s.status === 'ready', 5000), `store not ready: ${s.status}`)
    return s
  }

  before(async () => {
    redis = await startRedis()
    raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
    raw.on('error', () => {})
    await raw.connect()
  })
  after(async () => {
    for (const s of stores) await s.close()
    raw?.disconnect()
    await redis?.close()
  })

  test('two guards sharing Redis block a principal together', async () => {
    n++
    const a = await store()
    const b = await store()
    const options = { threshold: 4, maxKdcFailuresPerWindow: 3 }
    const guardA = new Guard(a, options)
    const guardB = new Guard(b, options)
    await guardA.recordFailure('alice@EX.TEST')
    await guardB.recordFailure('alice@EX.TEST')
    await guardA.recordFailure('alice@EX.TEST')
    assert.equal((await guardB.check('alice@EX.TEST', false)).action, 'pass')
    await guardB.recordFailure('alice@EX.TEST')
    assert.equal((await guardA.check('alice@EX.TEST', false)).action, 'blocked')
    assert.equal((await guardB.check('alice@EX.TEST', false)).action, 'blocked')
    assert.equal((await a.get('alice@EX.TEST')).failures, 4)

    // The KDC budget is one budget for both: concurrent reservations cannot overshoot it,
    // neither its ordinary part (1 of 3 with the default clean reserve of 2) nor the whole.
    const ordinary = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? guardA : guardB).reserveKdc('bob@EX.TEST')),
    )
    assert.equal(ordinary.filter(Boolean).length, 1)
    const clean = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? guardA : guardB).reserveKdc('bob@EX.TEST', true),
      ),
    )
    assert.equal(clean.filter(Boolean).length, 2)
    assert.equal((await guardA.check('bob@EX.TEST', false, true)).action, 'budget')

    await guardB.recordSuccess('alice@EX.TEST')
    assert.equal((await guardA.check('alice@EX.TEST', false)).action, 'pass')

    const keys = await raw.keys(`t${n}:*`)
    assert.ok(keys.length >= 1)
    for (const k of keys) assert.ok(!k.includes('bob') && !k.includes('alice'), k)
    assert.equal(a.fallbacks + b.fallbacks, 0)
  })

  test('counters expire by themselves', async () => {
    n++
    const s = await store()
    await s.recordFailure('carol@EX.TEST', Date.now(), 200)
    assert.equal(await s.reserveKdc('carol@EX.TEST', 3, 200), true)
    const [key] = await raw.keys(`t${n}:*`)
    assert.ok(key !== undefined)
    const ttl = await raw.pttl(key)
    assert.ok(ttl > 0 && ttl <= 200, `pttl ${ttl}`)
    assert.ok(await waitForAsync(async () => (await raw.exists(key)) === 0, 2000), 'key expired')
    assert.deepEqual(await s.get('carol@EX.TEST'), {
      failures: 0,
      lastFailureMs: 0,
      kdcForwarded: 0,
    })
  })

  test('Redis hanging (SIGSTOP): each call falls back after its timeout', async (t) => {
    n++
    const s = await store({ callTimeoutMs: 25 })
    await s.recordFailure('ivan@EX.TEST', Date.now(), 60_000)
    const pid = redis.pid
    assert.ok(pid !== undefined)
    process.kill(pid, 'SIGSTOP')
    try {
      let slowest = 0
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now()
        const counts = await s.recordFailure('ivan@EX.TEST', Date.now(), 60_000)
        slowest = Math.max(slowest, performance.now() - t0)
        assert.equal(counts.failures, 2 + i)
      }
      t.diagnostic(`slowest call while Redis hangs: ${slowest.toFixed(1)} ms`)
      assert.ok(slowest < 250, `slowest ${slowest} ms`)
      assert.ok(s.fallbacks >= 5)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    assert.ok(
      await waitForAsync(async () => {
        const before = s.fallbacks
        await s.get('ivan@EX.TEST')
        return s.fallbacks === before
      }, 5000),
      'Redis answers again after SIGCONT',
    )
  })

  test('Redis killed mid-run: falls back within a few ms, no error; recovers', async (t) => {
    n++
    const s = await store({ callTimeoutMs: 25 })
    const events: unknown[] = []
    s.on('fallback', (e) => events.push(e))
    await s.recordFailure('dave@EX.TEST', Date.now(), 60_000)
    await s.recordFailure('dave@EX.TEST', Date.now(), 60_000)
    assert.equal(s.fallbacks, 0)

    await redis.stop()
    const slowest = { ms: 0 }
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now()
      const counts = await s.recordFailure('dave@EX.TEST', Date.now(), 60_000)
      slowest.ms = Math.max(slowest.ms, performance.now() - t0)
      assert.equal(counts.failures, 3 + i, 'the local store continues from the shared state')
    }
    assert.equal(typeof (await s.reserveKdc('dave@EX.TEST', 3, 60_000)), 'boolean')
    await s.refundKdc('dave@EX.TEST')
    await s.reset('erin@EX.TEST')
    t.diagnostic(`slowest call after the kill: ${slowest.ms.toFixed(1)} ms`)
    assert.ok(slowest.ms < 100, `slowest call while down: ${slowest.ms.toFixed(1)} ms`)
    assert.ok(s.fallbacks >= 20)
    assert.deepEqual(events[0], { operation: 'recordFailure' })

    await redis.start()
    assert.ok(await waitFor(() => s.status === 'ready', 10_000), `did not reconnect: ${s.status}`)
    const before = s.fallbacks
    await s.recordFailure('frank@EX.TEST', Date.now(), 60_000)
    assert.equal(s.fallbacks, before, 'back on Redis')
    assert.equal((await raw.keys(`t${n}:*`)).length, 1, 'written to the restarted Redis')
  })

  test('a pipeline on a dead Redis keeps deciding', async () => {
    n++
    const s = await store()
    const verifier: PasswordVerifier = {
      verify: async (principal, password) => ({
        reason:
          principal === 'gina@EX.TEST' && password.toString() === 'pw' ? 'ok' : 'bad_password',
        roundTrips: 1,
      }),
      allKdcsDown: () => false,
      close: async () => {},
    }
    const pipeline = new Pipeline({
      verifier,
      guardStore: s,
      mapper: { map: (login) => ({ ok: true, principal: `${login}@EX.TEST`, realm: 'EX.TEST' }) },
    })
    const auth = (login: string, pw: string) =>
      pipeline.authenticate({
        login,
        password: Buffer.from(pw),
        service: 'imap',
        realm: '',
        signal: new AbortController().signal,
      })
    try {
      await redis.stop()
      const t0 = performance.now()
      assert.equal((await auth('gina', 'pw')).decision, 'ok')
      assert.equal((await auth('gina', 'nope')).decision, 'invalid')
      assert.equal((await auth('hank', 'nope')).decision, 'invalid')
      assert.ok(performance.now() - t0 < 500)
      assert.ok(s.fallbacks > 0)
    } finally {
      await pipeline.close()
      await redis.start()
    }
  })
})

async function waitForAsync(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await cond()) return true
    await sleep(20)
  }
  return cond()
}
