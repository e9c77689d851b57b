import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { AuthRequest, AuthResult } from '../../src/authenticator.js'
import type { Reason } from '../../src/errors.js'
import type { PasswordVerifier, VerifyOptions, VerifyResult } from '../../src/kerberos/types.js'
import { Admission } from '../../src/pipeline/admission.js'
import {
  type DecisionEvent,
  Pipeline,
  type PipelineOptions,
  type PrincipalMapper,
} from '../../src/pipeline/pipeline.js'
import { SingleFlight } from '../../src/pipeline/single-flight.js'
import { VerdictCache } from '../../src/pipeline/verdict-cache.js'
import type { GuardStore } from '../../src/state/guard-store.js'
import { MemoryGuardStore } from '../../src/state/memory-store.js'
import { clock } from '../support/clock.js'

/** A KDC stand-in: counts calls, emulates `maxfailure` lockout, configurable latency/outcome. */
class FakeVerifier implements PasswordVerifier {
  readonly users = new Map<string, string>()
  readonly failCount = new Map<string, number>()
  /** Wrong passwords (bad or unknown principal) that reached the "KDC", per principal. */
  readonly wrongForwarded = new Map<string, number>()
  readonly seenPasswords: string[] = []
  calls = 0
  inFlight = 0
  peakInFlight = 0
  latencyMs = 0
  /** When set, every check waits for it first. */
  hold: Promise<void> | undefined
  maxFailure = 5
  down = false
  /** `hang`: never answers and ignores the signal; `unavailable`: KDC timeout reply. */
  mode: 'normal' | 'hang' | 'unavailable' = 'normal'

  async verify(principal: string, password: Buffer, signal: AbortSignal): Promise<VerifyResult> {
    this.calls++
    this.inFlight++
    this.peakInFlight = Math.max(this.peakInFlight, this.inFlight)
    try {
      if (this.mode === 'hang') await new Promise(() => {})
      if (this.hold !== undefined) await this.hold
      if (this.latencyMs > 0) {
        try {
          await sleep(this.latencyMs, undefined, { signal })
        } catch {
          return { reason: 'kdc_unavailable', roundTrips: 1 }
        }
      }
      // Read the bytes only now, as a real check would while it runs.
      const pw = password.toString()
      this.seenPasswords.push(pw)
      if (this.mode === 'unavailable') return { reason: 'kdc_unavailable', roundTrips: 0 }
      return this.#answer(principal, pw)
    } finally {
      this.inFlight--
    }
  }

  #answer(principal: string, pw: string): VerifyResult {
    const real = this.users.get(principal)
    const wrong = (reason: Reason): VerifyResult => {
      this.wrongForwarded.set(principal, (this.wrongForwarded.get(principal) ?? 0) + 1)
      return { reason, roundTrips: 1 }
    }
    if (real === undefined) return wrong('unknown_principal')
    const fails = this.failCount.get(principal) ?? 0
    if (fails >= this.maxFailure) return { reason: 'principal_locked', roundTrips: 1 }
    if (pw === real) {
      this.failCount.set(principal, 0)
      return { reason: 'ok', roundTrips: 2 }
    }
    this.failCount.set(principal, fails + 1)
    return wrong('bad_password')
  }

  allKdcsDown(): boolean {
    return this.down
  }

  async close(): Promise<void> {}
}

const mapper: PrincipalMapper = {
  map: (login) =>
    login.includes('/')
      ? { ok: false, reason: 'unmappable_login' }
      : { ok: true, principal: `${login}@EX.TEST`, realm: 'EX.TEST' },
}

interface Rig {
  pipeline: Pipeline
  verifier: FakeVerifier
  events: DecisionEvent[]
  c: ReturnType<typeof clock>
  auth: (login: string, password: string, signal?: AbortSignal) => Promise<AuthResult>
}

const rigs: Pipeline[] = []

function rig(options: Partial<PipelineOptions> = {}, guardStore?: GuardStore): Rig {
  const verifier = new FakeVerifier()
  const events: DecisionEvent[] = []
  const c = clock()
  const pipeline = new Pipeline(
    {
      verifier,
      mapper,
      onDecision: (e) => events.push(e),
      wallClock: c.now,
      ...(guardStore ? { guardStore } : {}),
    },
    options,
  )
  rigs.push(pipeline)
  const auth = (login: string, password: string, signal?: AbortSignal) =>
    pipeline.authenticate(request(login, password, signal))
  return { pipeline, verifier, events, c, auth }
}

function request(login: string, password: string, signal?: AbortSignal): AuthRequest {
  return {
    login,
    password: Buffer.from(password),
    service: 'imap',
    realm: '',
    signal: signal ?? new AbortController().signal,
  }
}

const MINUTE = 60_000

describe('Pipeline', () => {
  // Pipeline timers are unref()ed (a real server's sockets keep the loop alive).
  let keepAlive: NodeJS.Timeout | undefined
  before(() => {
    keepAlive = setInterval(() => {}, 1000)
  })
  after(async () => {
    clearInterval(keepAlive)
    for (const p of rigs) await p.close()
  })

  test('a success is cached; a repeated wrong password costs no KDC call', async () => {
    const { verifier, auth } = rig()
    verifier.users.set('alice@EX.TEST', 'right')
    assert.deepEqual(await auth('alice', 'right'), {
      decision: 'ok',
      reason: 'ok',
      stage: 'kerberos',
    })
    assert.equal((await auth('alice', 'right')).reason, 'cached_ok')
    assert.equal(verifier.calls, 1)
    assert.equal((await auth('alice', 'wrong')).reason, 'bad_password')
    for (let i = 0; i < 10; i++) {
      const r = await auth('alice', 'wrong')
      assert.deepEqual(r, { decision: 'invalid', reason: 'cached_invalid', stage: 'cache' })
    }
    assert.equal(verifier.calls, 2, 'zero extra verifier calls for repeats')
  })

  test('unknown user and wrong password give the same decision', async () => {
    const { verifier, auth } = rig()
    verifier.users.set('alice@EX.TEST', 'right')
    const a = await auth('alice', 'nope')
    const b = await auth('nobody', 'nope')
    assert.equal(a.decision, 'invalid')
    assert.equal(b.decision, a.decision)
  })

  test('malformed requests are refused before anything else', async () => {
    const { verifier, auth, pipeline } = rig()
    for (const [login, pw] of [
      ['', 'x'],
      ['alice', ''],
      ['ali\0ce', 'x'],
    ] as const) {
      assert.deepEqual(await auth(login, pw), {
        decision: 'invalid',
        reason: 'malformed_request',
        stage: 'decode',
      })
    }
    const r = await pipeline.authenticate({ ...request('alice', 'x'), realm: 'EX\0' })
    assert.equal(r.reason, 'malformed_request')
    assert.equal((await auth('alice/admin', 'x')).reason, 'unmappable_login')
    assert.equal(verifier.calls, 0)
  })

  test('a blocked principal still lets its known-good password in', async () => {
    const { verifier, auth, c } = rig({ positiveTtlMs: MINUTE })
    verifier.users.set('alice@EX.TEST', 'right')
    assert.equal((await auth('alice', 'right')).decision, 'ok')
    for (let i = 0; i < 30; i++) await auth('alice', `guess${i}`)
    const blocked = await auth('alice', 'guess-next')
    assert.equal(blocked.decision, 'invalid')
    assert.ok(blocked.reason === 'guard_blocked' || blocked.reason === 'guard_budget')
    assert.equal((await auth('alice', 'right')).reason, 'cached_ok')
    // Past the positive TTL the entry is stale: it is re-checked with the KDC, guard or not.
    c.advance(2 * MINUTE)
    const before = verifier.calls
    const again = await auth('alice', 'right')
    assert.deepEqual(again, { decision: 'ok', reason: 'ok', stage: 'kerberos' })
    assert.equal(verifier.calls, before + 1)
  })

  test('2,000 wrong guesses on 20 real users: budget held, nobody locked out', async () => {
    const budget = 3
    const { verifier, auth, c } = rig({ maxKdcFailuresPerWindow: budget })
    verifier.latencyMs = 1
    const users = Array.from({ length: 20 }, (_, i) => `user${i}`)
    for (const u of users) verifier.users.set(`${u}@EX.TEST`, `secret-${u}`)
    const seenBefore = users.slice(0, 10)
    for (const u of seenBefore) assert.equal((await auth(u, `secret-${u}`)).decision, 'ok')

    const dictionary = Array.from({ length: 40 }, (_, i) => `dict${i}`)
    const guesses = Array.from({ length: 2000 }, (_, i) => ({
      login: users[i % 20]!,
      password: dictionary[(i * 7 + Math.floor(i / 20)) % 40]!,
    }))
    const decisions = new Map<string, number>()
    for (let i = 0; i < guesses.length; i += 200) {
      // 200 concurrent guesses at a time, with the real users logging in among them.
      const batch = guesses.slice(i, i + 200).map((g) => auth(g.login, g.password))
      const legit = seenBefore.map((u) => auth(u, `secret-${u}`))
      for (const r of await Promise.all(batch)) {
        assert.equal(r.decision, 'invalid')
        decisions.set(r.reason, (decisions.get(r.reason) ?? 0) + 1)
      }
      for (const r of await Promise.all(legit)) assert.equal(r.decision, 'ok')
    }
    for (const u of users) {
      const forwarded = verifier.wrongForwarded.get(`${u}@EX.TEST`) ?? 0
      assert.ok(forwarded <= budget, `${u}: ${forwarded} wrong passwords reached the KDC`)
      assert.ok((verifier.failCount.get(`${u}@EX.TEST`) ?? 0) < verifier.maxFailure)
    }
    assert.ok((decisions.get('cached_invalid') ?? 0) > 0, 'repeats answered from the cache')
    assert.ok(verifier.calls <= 10 + 20 * budget, `KDC calls: ${verifier.calls}`)

    // Once the storm is over (window and backoff passed) every user logs in, none locked.
    c.advance(11 * MINUTE)
    for (const u of users) {
      const r = await auth(u, `secret-${u}`)
      assert.equal(r.decision, 'ok', `${u}: ${r.reason}`)
    }
  })

  test('a dictionary on a nonexistent user costs at most the budget', async () => {
    const { verifier, auth } = rig({ maxKdcFailuresPerWindow: 2 })
    for (let i = 0; i < 200; i++) assert.equal((await auth('ghost', `pw${i}`)).decision, 'invalid')
    assert.equal(verifier.calls, 2)
  })

  test('100 concurrent identical requests make one verifier call', async () => {
    const { verifier, auth } = rig()
    verifier.users.set('alice@EX.TEST', 'right')
    verifier.latencyMs = 20
    const results = await Promise.all(Array.from({ length: 100 }, () => auth('alice', 'right')))
    assert.ok(results.every((r) => r.decision === 'ok'))
    assert.equal(verifier.calls, 1)
  })

  test('the caller may wipe its password buffer once answered', async () => {
    const { verifier, pipeline } = rig()
    verifier.users.set('alice@EX.TEST', 'right')
    let release!: () => void
    verifier.hold = new Promise<void>((resolve) => {
      release = resolve
    })
    const leaderCtl = new AbortController()
    const leaderReq = request('alice', 'right', leaderCtl.signal)
    const leader = pipeline.authenticate(leaderReq)
    const follower = pipeline.authenticate(request('alice', 'right'))
    for (let i = 0; i < 200 && pipeline.stats().joined === 0; i++) await sleep(1)
    assert.equal(pipeline.stats().joined, 1, 'the follower joined the flight')
    leaderCtl.abort()
    assert.equal((await leader).decision, 'unavailable')
    leaderReq.password.fill(0)
    release()
    assert.equal((await follower).decision, 'ok')
    assert.deepEqual(verifier.seenPasswords, ['right'])
  })

  test('admission: the KDC cap holds and overflow is shed as unavailable', async () => {
    const { verifier, auth } = rig({
      maxKdcInFlight: 4,
      maxQueue: 8,
      maxKdcFailuresPerWindow: 10,
      kdcStartSpacingMaxMs: 0,
    })
    verifier.latencyMs = 30
    const t0 = performance.now()
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => auth(`u${i}`, 'pw')))
    assert.ok(performance.now() - t0 < 1900)
    assert.equal(verifier.peakInFlight, 4)
    const shed = results.filter((r) => r.reason === 'shed')
    assert.ok(shed.length >= 40 - 4 - 8, `shed ${shed.length}`)
    assert.ok(shed.every((r) => r.decision === 'unavailable' && r.stage === 'admission'))
  })

  test('a first-time user goes ahead of sprayed guesses', async () => {
    const { verifier, auth, pipeline } = rig({ maxKdcInFlight: 1, maxKdcFailuresPerWindow: 10 })
    verifier.users.set('newbie@EX.TEST', 'unique-pw')
    // 'first' is tried on two principals: a spray from now on, for anyone.
    for (const bot of ['bot1', 'bot2']) assert.equal((await auth(bot, 'first')).decision, 'invalid')
    let release!: () => void
    verifier.hold = new Promise<void>((resolve) => {
      release = resolve
    })
    const blocker = auth('someone', 'pw')
    for (let i = 0; i < 200 && verifier.inFlight === 0; i++) await sleep(1)
    const guesses = [auth('bot3', 'first'), auth('bot4', 'first')]
    const newbie = auth('newbie', 'unique-pw')
    for (let i = 0; i < 200 && pipeline.stats().queued < 3; i++) await sleep(1)
    assert.equal(pipeline.stats().queued, 3)
    release()
    assert.equal((await newbie).decision, 'ok')
    await Promise.all([blocker, ...guesses])
    assert.deepEqual(verifier.seenPasswords.slice(-4), ['pw', 'unique-pw', 'first', 'first'])
  })

  test('first-time users get in during a storm on their accounts; the budget holds', async () => {
    const budget = 3
    const { verifier, auth, events } = rig({
      maxKdcFailuresPerWindow: budget,
      cleanReserveHoldMs: 20,
    })
    verifier.latencyMs = 1
    const users = Array.from({ length: 20 }, (_, i) => `user${i}`)
    for (const u of users) verifier.users.set(`${u}@EX.TEST`, `secret-${u}`)
    const dictionary = Array.from({ length: 40 }, (_, i) => `dict${i}`)
    const guess = (i: number) => auth(users[i % 20]!, dictionary[(i * 7 + (i >> 4)) % 40]!)
    // The storm starts: every account is blocked and its ordinary budget used up ...
    for (let i = 0; i < 1000; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, (_, j) => guess(i + j)))
      assert.ok(batch.every((r) => r.decision === 'invalid'))
    }
    for (const ghost of ['ghost1', 'ghost2']) await auth(ghost, 'one-more-word')
    for (const u of users) {
      const r = await auth(u, 'one-more-word')
      assert.equal(r.stage, 'guard', `${u} is blocked for sprayed guesses`)
    }
    // ... and every real user logs in for the first time while it goes on.
    for (let i = 1000; i < 2000; i += 100) {
      const batch = Array.from({ length: 100 }, (_, j) => guess(i + j))
      const legit = users.slice((i - 1000) / 50, (i - 1000) / 50 + 2)
      const logins = legit.map((u) => auth(u, `secret-${u}`))
      for (const r of await Promise.all(batch)) assert.equal(r.decision, 'invalid')
      for (const [k, r] of (await Promise.all(logins)).entries()) {
        assert.equal(r.decision, 'ok', `${legit[k]}: ${r.reason}`)
      }
    }
    for (const u of users) {
      const forwarded = verifier.wrongForwarded.get(`${u}@EX.TEST`) ?? 0
      assert.ok(forwarded <= budget, `${u}: ${forwarded} wrong passwords reached the KDC`)
    }
    assert.ok(events.some((e) => e.usedCleanReserve && e.reason === 'ok'))
    assert.ok(events.some((e) => e.passwordSprayed))
  })

  test('a clean password waits before the reserve, and loses it when it is sprayed meanwhile', async () => {
    const { verifier, auth } = rig({ maxKdcFailuresPerWindow: 3, cleanReserveHoldMs: 100 })
    for (const bot of ['x1', 'x2', 'victim']) await auth(bot, 'sprayed-word')
    assert.equal(verifier.wrongForwarded.get('victim@EX.TEST'), 1, 'the ordinary forward')
    const t0 = performance.now()
    const held = auth('victim', 'new-dictionary-word')
    await sleep(20)
    await auth('x3', 'new-dictionary-word')
    const r = await held
    assert.equal(r.reason, 'guard_budget')
    assert.ok(performance.now() - t0 >= 90, 'held')
    assert.equal(verifier.wrongForwarded.get('victim@EX.TEST'), 1)
    assert.equal((await auth('victim', 'still-unique')).reason, 'unknown_principal')
    assert.equal(verifier.wrongForwarded.get('victim@EX.TEST'), 2, 'from the reserve')
  })

  test('a typo under attack still leaves the right password a KDC check', async () => {
    const { verifier, auth } = rig({ maxKdcFailuresPerWindow: 3, guardThreshold: 2 })
    verifier.users.set('alice@EX.TEST', 'Alice-right-1')
    for (const bot of ['x1', 'x2', 'alice']) {
      for (const w of ['123456', 'password', 'qwerty', 'letmein']) await auth(bot, w)
    }
    for (const bot of ['x1', 'x2']) await auth(bot, 'dragon')
    assert.equal((await auth('alice', 'dragon')).stage, 'guard', 'sprayed words are refused')
    assert.equal(
      (await auth('alice', 'Alice-rihgt-1')).reason,
      'bad_password',
      'the typo is checked',
    )
    assert.equal((await auth('alice', 'Alice-right-1')).reason, 'ok')
    assert.ok((verifier.wrongForwarded.get('alice@EX.TEST') ?? 0) <= 3)
  })

  test('unique guesses can use up the reserve, never more than the budget', async () => {
    const { verifier, auth } = rig({ maxKdcFailuresPerWindow: 3 })
    verifier.users.set('alice@EX.TEST', 'Alice-right-1')
    for (let i = 0; i < 50; i++) await auth('alice', `unique-guess-${i}`)
    assert.equal(verifier.wrongForwarded.get('alice@EX.TEST'), 3)
    assert.ok((verifier.failCount.get('alice@EX.TEST') ?? 0) < verifier.maxFailure)
    // The limit of the rule: guesses that look like a real user's password burn the reserve.
    assert.equal((await auth('alice', 'Alice-right-1')).stage, 'guard')
  })

  test('a guessing client address never gets the reserve', async () => {
    const { verifier, pipeline } = rig({ maxKdcFailuresPerWindow: 3, suspectAddressFailures: 3 })
    verifier.users.set('alice@EX.TEST', 'Alice-right-1')
    const from = (login: string, password: string, clientAddress: string) =>
      pipeline.authenticate({ ...request(login, password), clientAddress })
    const bot = '203.0.113.9;40000'
    for (const w of ['123456', 'password', 'qwerty']) await from(`x-${w}`, w, bot)
    assert.equal(verifier.calls, 3)
    // alice's ordinary budget goes to a sprayed word; then the bot tries a unique password.
    await from('alice', '123456', '198.51.100.1;1')
    const calls = verifier.calls
    const r = await from('alice', 'Alice-right-1', '203.0.113.9;40001')
    assert.equal(r.stage, 'guard')
    assert.equal(verifier.calls, calls, 'no KDC check from a guessing address')
    const ok = await from('alice', 'Alice-right-1', '192.0.2.20;51000')
    assert.equal(ok.reason, 'ok', 'the same password from a clean address')
  })

  test('a shed check gives its KDC budget back', async () => {
    const { verifier, auth } = rig({ maxKdcInFlight: 1, maxQueue: 0, maxKdcFailuresPerWindow: 1 })
    verifier.latencyMs = 20
    const [first, second] = await Promise.all([auth('bob', 'a'), auth('bob', 'b')])
    assert.equal(first?.reason, 'unknown_principal')
    assert.ok(second?.reason === 'shed' || second?.reason === 'guard_budget')
    const other = await Promise.all([auth('carol', 'a'), auth('dave', 'b')])
    assert.equal(other[1]?.reason, 'shed')
    verifier.latencyMs = 0
    assert.equal((await auth('dave', 'c')).reason, 'unknown_principal', 'budget was refunded')
  })

  test('offline mode: known-good in, everything else out, within a few ms', async () => {
    const { verifier, auth, c } = rig({ positiveTtlMs: MINUTE, offlineMaxStalenessMs: 60 * MINUTE })
    verifier.users.set('alice@EX.TEST', 'right')
    assert.equal((await auth('alice', 'right')).decision, 'ok')
    c.advance(30 * MINUTE)
    verifier.down = true
    const calls = verifier.calls
    let t0 = performance.now()
    assert.deepEqual(await auth('alice', 'right'), {
      decision: 'ok',
      reason: 'offline_ok',
      stage: 'offline',
    })
    assert.ok(performance.now() - t0 < 200)
    t0 = performance.now()
    assert.equal((await auth('alice', 'other')).reason, 'offline_refused')
    assert.equal((await auth('bob', 'x')).reason, 'offline_refused')
    assert.ok(performance.now() - t0 < 200)
    assert.equal(verifier.calls, calls, 'no KDC traffic offline')
    c.advance(31 * MINUTE)
    assert.equal((await auth('alice', 'right')).reason, 'offline_refused', 'too stale')
  })

  test('a hanging KDC: answered by the deadline; known-good users still let in', async () => {
    const { verifier, auth, c } = rig({ deadlineMs: 150, positiveTtlMs: MINUTE })
    verifier.users.set('alice@EX.TEST', 'right')
    assert.equal((await auth('alice', 'right')).decision, 'ok')
    c.advance(2 * MINUTE)
    verifier.mode = 'hang'
    let t0 = performance.now()
    const known = await auth('alice', 'right')
    assert.deepEqual(known, { decision: 'ok', reason: 'offline_ok', stage: 'offline' })
    assert.ok(performance.now() - t0 < 1000)
    t0 = performance.now()
    const unknown = await auth('bob', 'x')
    assert.deepEqual(unknown, { decision: 'unavailable', reason: 'deadline', stage: 'kerberos' })
    assert.ok(performance.now() - t0 < 1000)
  })

  test('onDecision sees decisions, never the password or a key', async () => {
    const { verifier, auth, events } = rig()
    verifier.users.set('alice@EX.TEST', 'hunter2-secret')
    await auth('alice', 'hunter2-secret')
    await auth('alice', 'hunter2-secret')
    await auth('alice', 'wrong-secret')
    assert.equal(events.length, 3)
    assert.deepEqual(
      events.map((e) => [e.decision, e.reason, e.stage, e.principal, e.cacheHit]),
      [
        ['ok', 'ok', 'kerberos', 'alice@EX.TEST', false],
        ['ok', 'cached_ok', 'cache', 'alice@EX.TEST', true],
        ['invalid', 'bad_password', 'kerberos', 'alice@EX.TEST', false],
      ],
    )
    const dump = JSON.stringify(events)
    assert.ok(!dump.includes('secret'), dump)
    assert.ok(!/[A-Za-z0-9+/]{43}=/.test(dump))
    assert.ok(events.every((e) => e.latencyMs >= 0 && e.queueWaitMs >= 0))
  })

  test('a throwing onDecision hook changes nothing', async () => {
    const verifier = new FakeVerifier()
    verifier.users.set('alice@EX.TEST', 'right')
    const pipeline = new Pipeline({
      verifier,
      mapper,
      onDecision: () => {
        throw new Error('hook bug')
      },
    })
    rigs.push(pipeline)
    assert.equal((await pipeline.authenticate(request('alice', 'right'))).decision, 'ok')
  })

  describe('an exception in any stage fails closed', () => {
    const boom = () => {
      throw new Error('injected')
    }
    const rejecting = async () => {
      throw new Error('injected')
    }
    const cases: [string, (r: Rig, t: import('node:test').TestContext) => void][] = [
      ['mapper', (_r, t) => t.mock.method(mapper, 'map', boom)],
      ['cache keyFor', (_r, t) => t.mock.method(VerdictCache.prototype, 'keyFor', boom)],
      ['cache get', (_r, t) => t.mock.method(VerdictCache.prototype, 'get', boom)],
      ['cache staleOk', (_r, t) => t.mock.method(VerdictCache.prototype, 'staleOk', boom)],
      ['cache set (after an ok)', (_r, t) => t.mock.method(VerdictCache.prototype, 'set', boom)],
      ['guard store get', (_r, t) => t.mock.method(MemoryGuardStore.prototype, 'get', rejecting)],
      [
        'guard store reserve',
        (_r, t) => t.mock.method(MemoryGuardStore.prototype, 'reserveKdc', rejecting),
      ],
      [
        'guard store reset (after an ok)',
        (_r, t) => t.mock.method(MemoryGuardStore.prototype, 'reset', rejecting),
      ],
      ['allKdcsDown', (r, t) => t.mock.method(r.verifier, 'allKdcsDown', boom)],
      ['single flight', (_r, t) => t.mock.method(SingleFlight.prototype, 'run', boom)],
      ['admission', (_r, t) => t.mock.method(Admission.prototype, 'run', rejecting)],
      ['verifier throws', (r, t) => t.mock.method(r.verifier, 'verify', boom)],
      ['verifier rejects', (r, t) => t.mock.method(r.verifier, 'verify', rejecting)],
      [
        'verifier answers nonsense',
        (r, t) =>
          t.mock.method(r.verifier, 'verify', async () => ({ reason: 'cached_ok', roundTrips: 1 })),
      ],
    ]
    for (const [stage, inject] of cases) {
      test(stage, async (t) => {
        const r = rig()
        r.verifier.users.set('alice@EX.TEST', 'right')
        inject(r, t)
        const result = await r.auth('alice', 'right')
        assert.notEqual(result.decision, 'ok')
        assert.deepEqual(result, {
          decision: 'unavailable',
          reason: 'internal_error',
          stage: result.stage,
        })
      })
    }
  })

  test('after close every answer is unavailable; close is idempotent', async () => {
    const { verifier, auth, pipeline } = rig()
    verifier.users.set('alice@EX.TEST', 'right')
    await pipeline.close()
    await pipeline.close()
    assert.equal((await auth('alice', 'right')).decision, 'unavailable')
  })
})

/**
 * The verifier's retry on the primary KDC takes a second unit of the principal's budget
 * through `reserveRetry`; the pipeline keeps or gives back each unit by the same rule.
 */
class RetryingVerifier implements PasswordVerifier {
  readonly granted: boolean[] = []
  constructor(
    /** The answer when the retry is refused (the first verdict). */
    readonly first: VerifyResult,
    /** The answer after a granted retry. */
    readonly retried: VerifyResult,
  ) {}
  async verify(
    _principal: string,
    _password: Buffer,
    _signal: AbortSignal,
    options?: VerifyOptions,
  ): Promise<VerifyResult> {
    const granted = (await options?.reserveRetry?.()) ?? false
    this.granted.push(granted)
    return granted ? this.retried : this.first
  }
  allKdcsDown(): boolean {
    return false
  }
  async close(): Promise<void> {}
}

describe('Pipeline: budget units of a retry on the primary KDC', () => {
  // The refusal hold's timer is unref()ed (a real server's sockets keep the loop alive).
  let keepAlive: NodeJS.Timeout | undefined
  before(() => {
    keepAlive = setInterval(() => {}, 1000)
  })
  after(() => clearInterval(keepAlive))
  const FIRST: VerifyResult = { reason: 'bad_password', roundTrips: 2, preauthSent: true }
  const cases: Array<[string, VerifyResult, number]> = [
    [
      'the primary says OK',
      {
        reason: 'ok',
        roundTrips: 4,
        preauthSent: true,
        retriedOnPrimary: true,
        retryPreauthSent: true,
      },
      0, // a success resets the principal
    ],
    [
      "the primary's PREAUTH_FAILED: both units",
      { ...FIRST, roundTrips: 4, retriedOnPrimary: true, retryPreauthSent: true },
      2,
    ],
    [
      "the primary's unknown principal (no guess sent): both units",
      {
        reason: 'unknown_principal',
        roundTrips: 2,
        preauthSent: false,
        retriedOnPrimary: true,
        retryPreauthSent: false,
      },
      2,
    ],
    [
      'the primary unreachable before a guess: the retry unit back',
      { ...FIRST, roundTrips: 3, retryPreauthSent: false },
      1,
    ],
    [
      'the primary timed out after the guess went out: both units',
      { ...FIRST, roundTrips: 3, retryPreauthSent: true },
      2,
    ],
    [
      'a forged reply from the "primary" before a guess: the retry unit back',
      {
        reason: 'kdc_reply_modified',
        roundTrips: 3,
        preauthSent: true,
        retriedOnPrimary: true,
        retryPreauthSent: false,
      },
      1,
    ],
  ]
  for (const [name, retried, units] of cases) {
    test(name, async () => {
      const store = new MemoryGuardStore()
      const verifier = new RetryingVerifier(FIRST, retried)
      const pipeline = new Pipeline({ verifier, mapper, guardStore: store })
      try {
        await pipeline.authenticate(request('carol', 'pw'))
        assert.deepEqual(verifier.granted, [true])
        assert.equal((await store.get('carol@EX.TEST')).kdcForwarded, units)
      } finally {
        await pipeline.close()
        await store.close()
      }
    })
  }

  test('no unit left after the first: reserveRetry says no, one unit charged', async () => {
    const store = new MemoryGuardStore()
    const verifier = new RetryingVerifier(FIRST, { ...FIRST, retriedOnPrimary: true })
    const pipeline = new Pipeline(
      { verifier, mapper, guardStore: store },
      { maxKdcFailuresPerWindow: 1, cleanPasswordKdcReserve: 0 },
    )
    try {
      const r = await pipeline.authenticate(request('carol', 'pw'))
      assert.equal(r.reason, 'bad_password')
      assert.deepEqual(verifier.granted, [false])
      assert.equal((await store.get('carol@EX.TEST')).kdcForwarded, 1)
    } finally {
      await pipeline.close()
      await store.close()
    }
  })
})
