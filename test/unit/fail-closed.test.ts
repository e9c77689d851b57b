/**
 * Fail closed, exhaustively: an exception injected into any method of any pipeline stage,
 * on any path a request can take, yields a NO (never OK), never a throw out of
 * `authenticate`, never an answer after the deadline, and leaves nothing stuck (the same
 * pipeline decides correctly once the fault is gone).
 *
 * The injection sites are found by reflection (every method on the prototypes of the
 * verdict cache, cache keys, guard, guard store, single flight and admission, plus the
 * mapper and the verifier), and a site is exercised on every path that calls it, as
 * recorded by a fault-free baseline run of that path. A method added to a stage later is
 * covered without editing this file. Sync methods get a throw; methods returning promises
 * get both a throw and a rejection.
 *
 * test/unit/pipeline.test.ts has the hand-written examples; the front doors' own fail-closed
 * tests (listener, RPC handler) are at the end of this file and in saslauthd-listener.test.ts.
 */
import assert from 'node:assert/strict'
import { after, before, describe, type TestContext, test } from 'node:test'
import { create } from '@bufbuild/protobuf'
import type { ContextValues } from '@connectrpc/connect'
import { createContextValues } from '@connectrpc/connect'
import type { Authenticator, AuthRequest, AuthResult } from '../../src/authenticator.js'
import type { Reason } from '../../src/errors.js'
import { AuthenticateRequestSchema, Decision } from '../../src/gen/saslgate/v1/auth_pb.js'
import type { PasswordVerifier, VerifyResult } from '../../src/kerberos/types.js'
import { Admission } from '../../src/pipeline/admission.js'
import { Guard } from '../../src/pipeline/guard.js'
import { Pipeline, type PrincipalMapper } from '../../src/pipeline/pipeline.js'
import { SingleFlight } from '../../src/pipeline/single-flight.js'
import { CacheKey, VerdictCache } from '../../src/pipeline/verdict-cache.js'
import { authenticateHandler, kCaller } from '../../src/service/rpc.js'
import { MemoryGuardStore } from '../../src/state/memory-store.js'

const REALM = 'EX.TEST'
const POSITIVE_TTL_MS = 1000
const DEADLINE_MS = 500

/** A KDC stand-in: alice's password is `right`; switchable to down or unavailable. */
class FakeVerifier implements PasswordVerifier {
  down = false
  unavailable = false
  calls = 0

  async verify(principal: string, password: Buffer): Promise<VerifyResult> {
    this.calls++
    await Promise.resolve()
    if (this.unavailable) return { reason: 'kdc_unavailable', roundTrips: 1 }
    const pw = password.toString()
    if (principal === `alice@${REALM}`)
      return { reason: pw === 'right' ? 'ok' : 'bad_password', roundTrips: 2 }
    if (principal === `carol@${REALM}`)
      return { reason: pw === 'carol-right' ? 'ok' : 'bad_password', roundTrips: 2 }
    return { reason: 'unknown_principal', roundTrips: 1 }
  }

  allKdcsDown(): boolean {
    return this.down
  }

  async close(): Promise<void> {}
}

function makeMapper(): PrincipalMapper {
  return {
    map: (login) =>
      login.includes('/')
        ? { ok: false, reason: 'unmappable_login' }
        : { ok: true, principal: `${login}@${REALM}`, realm: REALM },
  }
}

interface Rig {
  pipeline: Pipeline
  verifier: FakeVerifier
  mapper: PrincipalMapper
  advance(ms: number): void
  auth(login: string, password: string): Promise<AuthResult>
}

const pipelines: Pipeline[] = []

function rig(): Rig {
  const verifier = new FakeVerifier()
  const mapper = makeMapper()
  let now = 1_700_000_000_000
  const pipeline = new Pipeline(
    { verifier, mapper, wallClock: () => now },
    { deadlineMs: DEADLINE_MS, positiveTtlMs: POSITIVE_TTL_MS, guardBackoffBaseMs: 60_000 },
  )
  pipelines.push(pipeline)
  const auth = (login: string, password: string) =>
    pipeline.authenticate(request(login, password, AbortSignal.timeout(DEADLINE_MS + 100)))
  return {
    pipeline,
    verifier,
    mapper,
    advance: (ms) => {
      now += ms
    },
    auth,
  }
}

function request(login: string, password: string, signal: AbortSignal): AuthRequest {
  return { login, password: Buffer.from(password), service: 'imap', realm: '', signal }
}

/** The paths a request can take: how to get there, and the request that takes it. */
interface Path {
  name: string
  prime(r: Rig): Promise<void>
  login: string
  password: string
  /** True when the request's credentials are right (OK is a correct answer without a fault). */
  good: boolean
}

const knownGoodStale = async (r: Rig) => {
  assert.equal((await r.auth('alice', 'right')).decision, 'ok')
  r.advance(POSITIVE_TTL_MS + 1) // expired as a cache hit, still known good (staleness 24 h)
}

const PATHS: Path[] = [
  {
    name: 'cold good password',
    prime: async () => {},
    login: 'alice',
    password: 'right',
    good: true,
  },
  {
    name: 'cold wrong password',
    prime: async () => {},
    login: 'alice',
    password: 'w1',
    good: false,
  },
  { name: 'unknown user', prime: async () => {}, login: 'nobody', password: 'w1', good: false },
  {
    name: 'cached good password',
    prime: async (r) => {
      assert.equal((await r.auth('alice', 'right')).decision, 'ok')
    },
    login: 'alice',
    password: 'right',
    good: true,
  },
  {
    name: 'cached wrong password',
    prime: async (r) => {
      assert.equal((await r.auth('alice', 'w1')).decision, 'invalid')
    },
    login: 'alice',
    password: 'w1',
    good: false,
  },
  {
    name: 'blocked principal, known-good password',
    prime: async (r) => {
      await knownGoodStale(r)
      for (let i = 0; i < 8; i++) await r.auth('alice', `guess-${i}`)
      const blocked = await r.auth('alice', 'guess-new')
      assert.match(blocked.reason, /^guard_/)
    },
    login: 'alice',
    password: 'right',
    good: true,
  },
  {
    name: 'blocked principal, wrong password',
    prime: async (r) => {
      for (let i = 0; i < 8; i++) await r.auth('alice', `guess-${i}`)
      // The path under test starts blocked: a fresh wrong password is refused by the guard.
      const blocked = await r.auth('alice', 'guess-probe')
      assert.match(blocked.reason, /^guard_/)
    },
    login: 'alice',
    password: 'guess-new',
    good: false,
  },
  {
    name: 'offline, known-good password',
    prime: async (r) => {
      await knownGoodStale(r)
      r.verifier.down = true
    },
    login: 'alice',
    password: 'right',
    good: true,
  },
  {
    name: 'offline, wrong password',
    prime: async (r) => {
      await knownGoodStale(r)
      r.verifier.down = true
    },
    login: 'alice',
    password: 'w1',
    good: false,
  },
  {
    name: 'KDC unavailable, known-good fallback',
    prime: async (r) => {
      await knownGoodStale(r)
      r.verifier.unavailable = true
    },
    login: 'alice',
    password: 'right',
    good: true,
  },
  {
    name: 'KDC unavailable, wrong password',
    prime: async (r) => {
      r.verifier.unavailable = true
    },
    login: 'alice',
    password: 'w1',
    good: false,
  },
]

/** An injection site: `method` of `target` (a prototype, or an instance of the rig). */
interface Site {
  label: string
  target: (r: Rig) => object
  method: string
}

function prototypeSites(label: string, proto: object): Site[] {
  return Object.getOwnPropertyNames(proto)
    .filter((name) => name !== 'constructor')
    .filter((name) => typeof Object.getOwnPropertyDescriptor(proto, name)?.value === 'function')
    .map((method) => ({ label: `${label}.${method}`, target: () => proto, method }))
}

const SITES: Site[] = [
  { label: 'mapper.map', target: (r) => r.mapper, method: 'map' },
  ...prototypeSites('VerdictCache', VerdictCache.prototype),
  ...prototypeSites('CacheKey', CacheKey.prototype),
  ...prototypeSites('Guard', Guard.prototype),
  ...prototypeSites('MemoryGuardStore', MemoryGuardStore.prototype),
  ...prototypeSites('SingleFlight', SingleFlight.prototype),
  ...prototypeSites('Admission', Admission.prototype),
  { label: 'verifier.allKdcsDown', target: (r) => r.verifier, method: 'allKdcsDown' },
  { label: 'verifier.verify', target: (r) => r.verifier, method: 'verify' },
]

interface Baseline {
  result: AuthResult
  /** Sites the path calls, and whether each returned a promise. */
  called: Map<Site, { promise: boolean }>
}

type AnyFn = (...args: unknown[]) => unknown

/** Runs `path` without faults, spying on every site. */
async function baseline(t: TestContext, path: Path): Promise<Baseline> {
  const r = rig()
  await path.prime(r)
  const spies = SITES.map((site) => {
    const target = site.target(r) as Record<string, AnyFn>
    return { site, spy: t.mock.method(target, site.method) }
  })
  const result = await r.auth(path.login, path.password)
  const called = new Map<Site, { promise: boolean }>()
  for (const { site, spy } of spies) {
    if (spy.mock.callCount() === 0) continue
    const promise = spy.mock.calls.some(
      (c) => typeof (c.result as { then?: unknown } | undefined)?.then === 'function',
    )
    called.set(site, { promise })
  }
  t.mock.restoreAll()
  return { result, called }
}

function injected(): Error {
  const err = new Error('injected fault')
  err.name = 'InjectedFault'
  return err
}

describe('fail closed: a fault in any stage on any path is a NO', () => {
  // Pipeline timers are unref()ed (a real server's sockets keep the loop alive).
  let keepAlive: NodeJS.Timeout | undefined
  before(() => {
    keepAlive = setInterval(() => {}, 1000)
  })
  after(async () => {
    clearInterval(keepAlive)
    for (const p of pipelines) await p.close()
  })

  for (const path of PATHS) {
    test(path.name, async (t) => {
      const base = await baseline(t, path)
      // Without faults the path answers as it should.
      assert.equal(base.result.decision === 'ok', path.good, JSON.stringify(base.result))
      assert.ok(base.called.size >= 3, `only ${base.called.size} sites on this path`)
      let cases = 0
      for (const [site, { promise }] of base.called) {
        for (const mode of promise ? (['throw', 'reject'] as const) : (['throw'] as const)) {
          cases++
          const r = rig()
          await path.prime(r)
          const target = site.target(r) as Record<string, AnyFn>
          const fault = t.mock.method(
            target,
            site.method,
            mode === 'throw'
              ? () => {
                  throw injected()
                }
              : () => Promise.reject(injected()),
          )
          const t0 = performance.now()
          let result: AuthResult
          try {
            result = await r.auth(path.login, path.password)
          } catch (err) {
            assert.fail(`${site.label} (${mode}): authenticate threw ${String(err)}`)
          }
          const ms = performance.now() - t0
          const where = `${path.name} / ${site.label} (${mode}): ${JSON.stringify(result)}`
          fault.mock.restore()
          assert.ok(ms < DEADLINE_MS + 50, `${where} after ${ms.toFixed(0)} ms`)
          // The baseline ran this site on this very path, so the fault must have been met.
          assert.ok(fault.mock.callCount() > 0, `${where}: the injected fault was never reached`)
          assert.notEqual(result.decision, 'ok', where)
          assert.equal(result.reason, 'internal_error' satisfies Reason, where)
          if (!path.good) assert.notEqual(result.decision, 'ok', where)
          // Nothing stuck: the same pipeline decides another user correctly afterwards.
          r.verifier.down = false
          r.verifier.unavailable = false
          assert.equal((await r.auth('carol', 'carol-right')).decision, 'ok', `after ${where}`)
          assert.equal((await r.auth('carol', 'carol-wrong')).decision, 'invalid', `after ${where}`)
          const s = r.pipeline.stats()
          assert.equal(s.kdcInFlight + s.queued + s.flights, 0, `left behind: ${JSON.stringify(s)}`)
        }
      }
      t.diagnostic(`${base.called.size} sites on this path, ${cases} faults injected`)
    })
  }

  test('every stage class contributes injection sites (reflection found them)', () => {
    for (const label of [
      'VerdictCache.get',
      'VerdictCache.set',
      'Guard.check',
      'MemoryGuardStore.reserveKdc',
      'SingleFlight.run',
      'Admission.run',
    ]) {
      assert.ok(
        SITES.some((s) => s.label === label),
        `${label} missing`,
      )
    }
  })

  test('a verifier that lies about its result shape never yields OK', async () => {
    const lies: unknown[] = [
      { reason: 'cached_ok', roundTrips: 1 },
      { reason: 'remote_ok', roundTrips: 1 },
      { reason: 'offline_ok', roundTrips: 0 },
      { reason: 'OK', roundTrips: 1 },
      { reason: 'ok ', roundTrips: 1 },
      { reason: undefined, roundTrips: 1 },
      { decision: 'ok' },
      {},
      null,
      undefined,
      'ok',
      42,
    ]
    for (const lie of lies) {
      const r = rig()
      r.verifier.verify = async () => lie as VerifyResult
      const result = await r.auth('alice', 'wrong-but-the-verifier-lies')
      assert.notEqual(result.decision, 'ok', JSON.stringify(lie))
      // The lie is not cached as a positive verdict either.
      r.verifier.verify = async () => ({ reason: 'bad_password', roundTrips: 2 })
      const again = await r.auth('alice', 'wrong-but-the-verifier-lies')
      assert.notEqual(again.decision, 'ok', `cached lie ${JSON.stringify(lie)}`)
    }
  })

  test('a hook that throws on every decision changes no decision', async () => {
    const verifier = new FakeVerifier()
    const pipeline = new Pipeline({
      verifier,
      mapper: makeMapper(),
      onDecision: () => {
        throw injected()
      },
    })
    pipelines.push(pipeline)
    const ask = (l: string, p: string) =>
      pipeline.authenticate(request(l, p, AbortSignal.timeout(2000)))
    assert.equal((await ask('alice', 'right')).decision, 'ok')
    assert.equal((await ask('alice', 'right')).decision, 'ok')
    assert.equal((await ask('alice', 'w')).decision, 'invalid')
    assert.equal((await ask('a/b', 'w')).decision, 'invalid')
  })
})

describe('fail closed at the RPC front door', () => {
  const caller: ContextValues = createContextValues().set(kCaller, { method: 'token', name: 't' })
  const rpcRequest = () =>
    create(AuthenticateRequestSchema, {
      login: 'alice',
      password: Buffer.from('right'),
      service: 'imap',
    })
  const answers: Array<[string, Authenticator['authenticate']]> = [
    [
      'throws',
      () => {
        throw injected()
      },
    ],
    ['rejects', () => Promise.reject(injected())],
    [
      'returns a decision that is not one',
      async () => ({ decision: 'OK' }) as unknown as AuthResult,
    ],
    ['returns null', async () => null as unknown as AuthResult],
  ]
  for (const [name, authenticate] of answers) {
    test(`an authenticator that ${name}: never DECISION_OK`, async () => {
      const handler = authenticateHandler({
        authenticator: { authenticate, close: async () => {} },
        ready: () => true,
      })
      const res = await handler(rpcRequest(), {
        signal: AbortSignal.timeout(2000),
        values: caller,
      })
      assert.notEqual(res.decision, Decision.OK)
    })
  }
})
