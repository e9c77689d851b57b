/**
 * The defence pipeline against a real MIT KDC (and a real Redis): the storm must not lock
 * real users out, known-good credentials keep working, offline mode answers at once.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { AuthResult } from '../../src/authenticator.js'
import { krb5 } from '../../src/kerberos/native.js'
import { KdcClient } from '../../src/kerberos/transport.js'
import { KerberosVerifier } from '../../src/kerberos/verifier.js'
import { Pipeline, type PipelineOptions } from '../../src/pipeline/pipeline.js'
import { createPrincipalMapper } from '../../src/pipeline/principal.js'
import type { GuardStore } from '../../src/state/guard-store.js'
import { RedisGuardStore } from '../../src/state/redis-store.js'
import { type DelayProxy, startDelayProxy } from '../../src/testing/fake-kdc.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { startRedis, type TestRedis } from '../support/redis.js'

const USERS = Array.from({ length: 20 }, (_, i) => ({
  name: `user${i}`,
  password: `Real-pw-${i}-x`,
}))
/** Users who never log in before the storm on their accounts. */
const FRESH = Array.from({ length: 10 }, (_, i) => ({
  name: `fresh${i}`,
  password: `Fresh-pw-${i}-y`,
}))
let realm: Realm
const closers: Array<() => Promise<void>> = []

before(async () => {
  realm = await startRealm({
    users: [
      ...USERS,
      ...FRESH,
      { name: 'alice', password: 'Alice-pw-1' },
      { name: 'bob', password: 'Bob-pw-1' },
    ],
    lockout: { maxFailure: 5, failureCountIntervalS: 600, lockoutDurationS: 600 },
  })
  krb5().configure(realm.krb5ConfPath)
})

after(async () => {
  for (const c of closers.reverse()) await c()
  await realm?.close()
})

function build(kdc: string, options: Partial<PipelineOptions> = {}, guardStore?: GuardStore) {
  const transport = new KdcClient({
    realms: { [realm.name]: [kdc] },
    udpAttemptTimeoutMs: 200,
    breaker: { resetTimeoutMs: 60_000, volumeThreshold: 3 },
  })
  const verifier = new KerberosVerifier({
    transport,
    verifyPrincipal: () => realm.servicePrincipal,
    keytab: realm.keytabPath,
  })
  const mapper = createPrincipalMapper({ defaultRealm: realm.name, realms: [realm.name] })
  const pipeline = new Pipeline(
    { verifier, mapper, ...(guardStore ? { guardStore } : {}) },
    options,
  )
  closers.push(async () => {
    await pipeline.close()
    await verifier.close()
  })
  return { pipeline, verifier }
}

const direct = () => `127.0.0.1:${realm.kdcs[0]!.port}`
const login = (p: Pipeline, user: string, password: string, ms = 1900): Promise<AuthResult> =>
  p.authenticate({
    login: user,
    password: Buffer.from(password),
    service: 'imap',
    realm: '',
    signal: AbortSignal.timeout(ms),
  })

describe('pipeline with a real KDC', () => {
  test('a repeated wrong password is answered from the negative cache with no KDC traffic', async () => {
    const { pipeline } = build(direct())
    const first = await login(pipeline, 'bob', 'dictionary-1')
    assert.equal(first.decision, 'invalid')
    const before = await realm.kdcRequestCount()
    for (let i = 0; i < 5; i++) {
      const r = await login(pipeline, 'bob', 'dictionary-1')
      assert.equal(r.decision, 'invalid')
      assert.equal(r.stage, 'cache')
    }
    assert.equal(await realm.kdcRequestCount(), before)
  })

  test('a blocked principal still lets its known-good password in, without the KDC', async () => {
    const { pipeline } = build(direct())
    assert.equal((await login(pipeline, 'alice', 'Alice-pw-1')).decision, 'ok')
    const reasons = new Set<string>()
    for (let i = 0; i < 12; i++) reasons.add((await login(pipeline, 'alice', `guess-${i}`)).reason)
    assert.ok(reasons.has('guard_blocked') || reasons.has('guard_budget'), [...reasons].join(','))
    const before = await realm.kdcRequestCount()
    const t0 = performance.now()
    const ok = await login(pipeline, 'alice', 'Alice-pw-1')
    assert.equal(ok.decision, 'ok')
    assert.ok(performance.now() - t0 < 50)
    assert.equal(await realm.kdcRequestCount(), before)
  })

  test('2,000 wrong guesses on 20 users with KDC lockout maxfailure 5: all 20 can still log in', async () => {
    const { pipeline, verifier } = build(direct(), { maxKdcFailuresPerWindow: 3 })
    // The real users logged in before the storm (their verdicts are cached).
    for (const u of USERS) assert.equal((await login(pipeline, u.name, u.password)).decision, 'ok')
    const kdcBefore = await realm.kdcRequestCount()
    let next = 0
    let falseAccepts = 0
    const worker = async () => {
      while (next < 2000) {
        const i = next++
        const u = USERS[i % USERS.length]!
        const r = await login(pipeline, u.name, `botnet-guess-${Math.floor(i / USERS.length)}`)
        if (r.decision === 'ok') falseAccepts++
      }
    }
    await Promise.all(Array.from({ length: 50 }, worker))
    assert.equal(falseAccepts, 0)
    const kdcRequests = (await realm.kdcRequestCount()) - kdcBefore
    // At most 3 wrong passwords per user reach the KDC, 2 requests each.
    assert.ok(kdcRequests <= USERS.length * 3 * 2, `${kdcRequests} KDC requests`)
    // Through saslgate, every real user still gets in ...
    for (const u of USERS)
      assert.equal((await login(pipeline, u.name, u.password)).decision, 'ok', u.name)
    // ... and the KDC itself has locked none of them out.
    for (const u of USERS) {
      const r = await verifier.verify(
        `${u.name}@${realm.name}`,
        Buffer.from(u.password),
        AbortSignal.timeout(2000),
      )
      assert.equal(r.reason, 'ok', `${u.name}: ${r.reason}`)
    }
  })

  test('a first-time user gets in during a storm on their account; the KDC sees at most the budget', async () => {
    const budget = 3
    const { pipeline, verifier } = build(direct(), { maxKdcFailuresPerWindow: budget })
    const dictionary = Array.from({ length: 30 }, (_, i) => `dictionary-word-${i}`)
    let next = 0
    let falseAccepts = 0
    const storm = (until: number) => async () => {
      while (next < until) {
        const i = next++
        const login = i % 3 === 2 ? `nosuch${i % 50}` : FRESH[i % FRESH.length]!.name
        const r = await login_(login, dictionary[(i * 7) % dictionary.length]!)
        if (r.decision === 'ok') falseAccepts++
      }
    }
    const login_ = (user: string, password: string) => login(pipeline, user, password)
    await Promise.all(Array.from({ length: 30 }, storm(600)))
    const failed = async (user: string) =>
      Number(/Failed password attempts: (\d+)/.exec(await realm.kadmin(`getprinc ${user}`))?.[1])
    for (const u of FRESH) {
      const n = await failed(u.name)
      assert.ok(n <= budget, `${u.name}: ${n} wrong passwords reached the KDC`)
      const r = await login_(u.name, dictionary[0]!)
      assert.notEqual(r.decision, 'ok')
    }
    // The storm goes on while each real user logs in for the first time.
    const users = FRESH.map(async (u, k) => {
      await new Promise((resolve) => setTimeout(resolve, k * 20))
      return login_(u.name, u.password)
    })
    const [results] = await Promise.all([
      Promise.all(users),
      Promise.all(Array.from({ length: 30 }, storm(1200))),
    ])
    for (const [k, r] of results.entries())
      assert.equal(r.decision, 'ok', `${FRESH[k]!.name}: ${r.reason}`)
    assert.equal(falseAccepts, 0)
    // The KDC has locked none of them out.
    for (const u of FRESH) {
      const r = await verifier.verify(
        `${u.name}@${realm.name}`,
        Buffer.from(u.password),
        AbortSignal.timeout(2000),
      )
      assert.equal(r.reason, 'ok', `${u.name}: ${r.reason}`)
    }
  })

  test('offline mode: every KDC down -> cached users in, others refused, within ms', async () => {
    const proxy: DelayProxy = await startDelayProxy({
      target: { host: '127.0.0.1', port: realm.kdcs[0]!.port },
      delayMs: 0,
    })
    closers.push(() => proxy.close())
    // A positive TTL of 1 ms: the cached verdict is stale, only offline mode may use it.
    const { pipeline, verifier } = build(`127.0.0.1:${proxy.port}`, { positiveTtlMs: 1 })
    assert.equal((await login(pipeline, 'user1', 'Real-pw-1-x')).decision, 'ok')
    await new Promise((r) => setTimeout(r, 5))
    proxy.setBlackhole(true)
    // Trip the breaker with checks that cannot be answered.
    for (let i = 0; i < 10 && !verifier.allKdcsDown(realm.name); i++)
      await login(pipeline, `nobody${i}`, 'x-pass')
    assert.ok(verifier.allKdcsDown(realm.name), 'breaker did not open')
    const t0 = performance.now()
    const known = await login(pipeline, 'user1', 'Real-pw-1-x')
    const unknown = await login(pipeline, 'user2', 'Real-pw-2-x')
    const wrong = await login(pipeline, 'user1', 'not-the-password')
    const ms = performance.now() - t0
    assert.equal(known.decision, 'ok')
    assert.equal(known.reason, 'offline_ok')
    assert.notEqual(unknown.decision, 'ok')
    assert.notEqual(wrong.decision, 'ok')
    assert.ok(ms < 100, `offline answers took ${ms} ms`)
  })
})

describe('guard state shared through Redis', () => {
  let redis: TestRedis
  before(async () => {
    redis = await startRedis()
    closers.push(() => redis.close())
  })

  test('two instances block a principal together; Redis killed mid-run changes no answer', async () => {
    const storeA = new RedisGuardStore({ url: redis.url })
    const storeB = new RedisGuardStore({ url: redis.url })
    closers.push(async () => {
      await storeA.close()
      await storeB.close()
    })
    const a = build(direct(), { guardThreshold: 3 }, storeA).pipeline
    const b = build(direct(), { guardThreshold: 3 }, storeB).pipeline
    for (let i = 0; i < 4; i++) await login(a, 'user5', `shared-guess-${i}`)
    const before = await realm.kdcRequestCount()
    const onB = await login(b, 'user5', 'a-fresh-guess-on-b')
    assert.equal(onB.decision, 'invalid')
    assert.equal(onB.stage, 'guard')
    assert.equal(
      await realm.kdcRequestCount(),
      before,
      'instance B asked the KDC although A had blocked the principal',
    )

    // Redis dies: answers stay right, and quickly.
    await redis.stop()
    const t0 = performance.now()
    assert.equal((await login(b, 'user6', 'Real-pw-6-x')).decision, 'ok')
    assert.equal((await login(b, 'user6', 'wrong-while-redis-down')).decision, 'invalid')
    assert.equal((await login(a, 'user7', 'Real-pw-7-x')).decision, 'ok')
    assert.ok(performance.now() - t0 < 1500)
    await redis.start()
    assert.equal((await login(a, 'user8', 'Real-pw-8-x')).decision, 'ok')
  })
})
