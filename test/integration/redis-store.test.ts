import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { PasswordVerifier } from '../../src/kerberos/types.js'
import { Guard } from '../../src/pipeline/guard.js'
import { Pipeline } from '../../src/pipeline/pipeline.js'
import { RedisGuardStore } from '../../src/state/redis-store.js'
import { haveRedis, startRedis, type TestRedis } from '../support/redis.js'
import { needs } from '../support/requires.js'

const skip = needs(!haveRedis() && 'redis-server is not installed (Debian package redis-server)')

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
    // The budget is kept locally while Redis is gone: three forwards, then none; a refund
    // gives exactly one back; a reset zeroes the principal.
    const budget = []
    for (let i = 0; i < 4; i++) budget.push(await s.reserveKdc('dave@EX.TEST', 3, 60_000))
    assert.deepEqual(budget, [true, true, true, false])
    assert.equal((await s.get('dave@EX.TEST')).kdcForwarded, 3)
    await s.refundKdc('dave@EX.TEST')
    assert.equal((await s.get('dave@EX.TEST')).kdcForwarded, 2)
    assert.equal(await s.reserveKdc('dave@EX.TEST', 3, 60_000), true, 'the refund gave one back')
    assert.equal(await s.reserveKdc('dave@EX.TEST', 3, 60_000), false, 'and only one')
    await s.reset('dave@EX.TEST')
    assert.deepEqual(await s.get('dave@EX.TEST'), {
      failures: 0,
      lastFailureMs: 0,
      kdcForwarded: 0,
    })
    assert.equal(await s.reserveKdc('dave@EX.TEST', 3, 60_000), true, 'a reset opens the budget')
    const operations = new Set(events.map((e) => (e as { operation: string }).operation))
    for (const op of ['recordFailure', 'reserveKdc', 'refundKdc', 'reset', 'get'])
      assert.ok(operations.has(op), `${op} fell back while Redis was down`)
    t.diagnostic(`slowest call after the kill: ${slowest.ms.toFixed(1)} ms`)
    assert.ok(slowest.ms < 100, `slowest call while down: ${slowest.ms.toFixed(1)} ms`)
    assert.ok(s.fallbacks >= 20 + 12, `fallbacks ${s.fallbacks}`)
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

describe('two pipelines sharing one real redis-server: guard and budget across replicas', {
  skip,
}, () => {
  let redis: TestRedis
  const stores: RedisGuardStore[] = []
  const pipelines: Pipeline[] = []
  /** Verifier calls per principal, whichever pipeline made them: what reached "the KDC". */
  const kdcChecks = new Map<string, number>()
  const verifier: PasswordVerifier = {
    verify: async (principal) => {
      kdcChecks.set(principal, (kdcChecks.get(principal) ?? 0) + 1)
      return { reason: 'bad_password', roundTrips: 2 }
    },
    allKdcsDown: () => false,
    close: async () => {},
  }

  async function replica() {
    const s = new RedisGuardStore({ url: redis.url, keyPrefix: 'pair:', callTimeoutMs: 25 })
    stores.push(s)
    assert.ok(await waitFor(() => s.status === 'ready', 5000), `store not ready: ${s.status}`)
    const pipeline = new Pipeline(
      {
        verifier,
        guardStore: s,
        mapper: { map: (l) => ({ ok: true, principal: `${l}@EX.TEST`, realm: 'EX.TEST' }) },
      },
      {
        // Budget 3, no clean reserve (every forward is ordinary); the backoff starts at the
        // 4th failure and lasts a minute, so nothing in this test outlives it by accident.
        maxKdcFailuresPerWindow: 3,
        cleanPasswordKdcReserve: 0,
        guardThreshold: 4,
        guardBackoffBaseMs: 60_000,
      },
    )
    pipelines.push(pipeline)
    let n = 0
    return {
      store: s,
      auth: async (login: string, password = `guess-${n++}`) =>
        (
          await pipeline.authenticate({
            login,
            password: Buffer.from(password),
            service: 'imap',
            realm: '',
            signal: new AbortController().signal,
          })
        ).reason,
    }
  }

  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    for (const p of pipelines) await p.close()
    for (const s of stores) await s.close()
    await redis?.close()
  })

  test('shared while Redis is up, per replica (from the last shared state) while it is down', async () => {
    const a = await replica()
    const b = await replica()

    // Up: one budget for both replicas.
    assert.equal(await a.auth('alice'), 'bad_password')
    assert.equal(await b.auth('alice'), 'bad_password')
    assert.equal(await a.auth('alice'), 'bad_password')
    assert.equal(await b.auth('alice'), 'guard_budget', 'B sees the forwards A made')
    assert.equal(await a.auth('alice'), 'guard_budget')
    assert.equal(kdcChecks.get('alice@EX.TEST'), 3)

    // Up: one backoff for both. Repeating a wrong password on A costs no KDC check (negative
    // cache) but counts as a failure; B, which never saw that password, is blocked too.
    assert.equal(await a.auth('bob', 'same'), 'bad_password')
    for (let i = 0; i < 3; i++) assert.equal(await a.auth('bob', 'same'), 'cached_invalid')
    assert.equal(await b.auth('bob'), 'guard_blocked', 'B sees the failures A counted')
    assert.equal(kdcChecks.get('bob@EX.TEST'), 1)
    assert.equal(a.store.fallbacks + b.store.fallbacks, 0, 'all of that went through Redis')

    await redis.stop()
    try {
      // Down: what each replica saw of the shared state still holds: alice's budget stays
      // spent and bob stays blocked on both, with no KDC check.
      assert.equal(await a.auth('alice'), 'guard_budget')
      assert.equal(await b.auth('alice'), 'guard_budget')
      assert.equal(await b.auth('bob'), 'guard_blocked')
      assert.equal(kdcChecks.get('alice@EX.TEST'), 3)
      assert.equal(kdcChecks.get('bob@EX.TEST'), 1)

      // Down: a new principal is counted by each replica on its own, so the KDC sees at
      // most replicas x budget forwards for it (the documented outage bound), never more.
      const seen: string[] = []
      for (let i = 0; i < 5; i++) seen.push(await a.auth('carol'))
      for (let i = 0; i < 5; i++) seen.push(await b.auth('carol'))
      const perReplica = ['bad_password', 'bad_password', 'bad_password', 'guard_budget']
      assert.deepEqual(seen.slice(0, 4), perReplica, 'A: its own budget of 3')
      assert.deepEqual(seen.slice(5, 9), perReplica, 'B: its own budget of 3')
      assert.equal(kdcChecks.get('carol@EX.TEST'), 6)

      // Down: the backoff is local too, and still applies.
      assert.equal(await b.auth('dave', 'same'), 'bad_password')
      for (let i = 0; i < 3; i++) assert.equal(await b.auth('dave', 'same'), 'cached_invalid')
      assert.equal(await b.auth('dave'), 'guard_blocked')
      assert.ok(a.store.fallbacks > 0 && b.store.fallbacks > 0, 'both replicas fell back')
    } finally {
      await redis.start()
    }

    // Back up (an empty Redis: no persistence): shared again once both have reconnected.
    for (const r of [a, b])
      assert.ok(await waitFor(() => r.store.status === 'ready', 10_000), r.store.status)
    const before = a.store.fallbacks + b.store.fallbacks
    assert.equal(await a.auth('erin'), 'bad_password')
    assert.equal(await b.auth('erin'), 'bad_password')
    assert.equal(await a.auth('erin'), 'bad_password')
    assert.equal(await b.auth('erin'), 'guard_budget', 'one budget again')
    assert.equal(a.store.fallbacks + b.store.fallbacks, before, 'no fallback after recovery')
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
