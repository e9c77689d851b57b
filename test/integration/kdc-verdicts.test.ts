/**
 * Only the user's own verdicts are cached and counted (issue 17): a real MIT KDC, with a
 * spoofing proxy in front of it (src/testing/spoofing-kdc.ts) that answers error 29, forges
 * errors before or racing the real answer, alters the AS-REP or says the clock is skewed;
 * and a verify principal the KDC does not know.
 */
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { Writable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import { buildLocalAuthenticator } from '../../src/authenticate-local.js'
import type { AuthResult } from '../../src/authenticator.js'
import { loadConfig } from '../../src/config.js'
import { isSaslgateError, Reasons } from '../../src/errors.js'
import { krb5 } from '../../src/kerberos/native.js'
import { resolveKerberosSettings } from '../../src/kerberos/setup.js'
import { KdcClient } from '../../src/kerberos/transport.js'
import { KerberosVerifier, type VerifierOptions } from '../../src/kerberos/verifier.js'
import { Pipeline, type PipelineOptions } from '../../src/pipeline/pipeline.js'
import { createPrincipalMapper } from '../../src/pipeline/principal.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import {
  alterAsRepClient,
  corruptAsRepEncPart,
  FORWARD,
  forgeKrbError,
  messageType,
  type SpoofingKdc,
  startSpoofingKdc,
} from '../../src/testing/spoofing-kdc.js'

const PW = 'Alice-pw-1'
let realm: Realm
const closers: Array<() => Promise<void>> = []

before(async () => {
  realm = await startRealm({
    users: [
      { name: 'alice', password: PW },
      { name: 'bob', password: 'Bob-pw-1' },
      { name: 'carol', password: 'Carol-pw-1' },
      { name: 'dave', password: 'Dave-pw-1' },
    ],
    extraKdcs: 1,
  })
  krb5().configure(realm.krb5ConfPath)
})

after(async () => {
  for (const c of closers.reverse()) await c()
  await realm?.close()
})

const kdcOf = (i: number) => `127.0.0.1:${realm.kdcs[i]!.port}`

async function spoof(i = 0): Promise<SpoofingKdc> {
  const s = await startSpoofingKdc({ host: '127.0.0.1', port: realm.kdcs[i]!.port })
  closers.push(() => s.close())
  return s
}

function verifier(kdcs: string[], options: Partial<VerifierOptions> = {}) {
  const transport = new KdcClient({
    realms: { [realm.name]: kdcs },
    udpAttemptTimeoutMs: 300,
    breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 60_000 },
  })
  const v = new KerberosVerifier({
    transport,
    verifyPrincipal: () => realm.servicePrincipal,
    keytab: realm.keytabPath,
    ...options,
  })
  closers.push(() => v.close())
  return { v, transport }
}

const check = (v: KerberosVerifier, user: string, pw: string) =>
  v.verify(`${user}@${realm.name}`, Buffer.from(pw), AbortSignal.timeout(3000))

function pipeline(kdcs: string[], options: Partial<PipelineOptions> = {}) {
  const { v } = verifier(kdcs)
  const mapper = createPrincipalMapper({ defaultRealm: realm.name, realms: [realm.name] })
  const p = new Pipeline({ verifier: v, mapper }, options)
  closers.push(() => p.close())
  return p
}

const login = (p: Pipeline, user: string, password: string): Promise<AuthResult> =>
  p.authenticate({
    login: user,
    password: Buffer.from(password),
    service: 'imap',
    realm: '',
    signal: AbortSignal.timeout(3000),
  })

/** Request n of an AS exchange for a wrong password: 0 plain, 1 pre-authenticated. */
const preauthenticated = (n: number) => n % 2 === 1

describe('error 29 (KDC_ERR_SVC_UNAVAILABLE)', () => {
  test('the next KDC answers; the KDC that said 29 is charged on its breaker', async () => {
    const sick = await spoof(0)
    sick.plan = () => ({ kind: 'answer', reply: forgeKrbError(29, realm.name) })
    const { v, transport } = verifier([sick.kdc, kdcOf(1)])
    const r = await check(v, 'alice', PW)
    assert.equal(r.reason, 'ok')
    assert.equal(transport.breakerStates()[sick.kdc], 'open')
    assert.equal(transport.breakerStates()[kdcOf(1)], 'closed')
  })

  test('only a KDC saying 29: unavailable, never a verdict on the user', async () => {
    const sick = await spoof(0)
    sick.plan = () => ({ kind: 'answer', reply: forgeKrbError(29, realm.name) })
    const { v } = verifier([sick.kdc])
    const r = await check(v, 'alice', PW)
    assert.equal(r.reason, 'kdc_unavailable')
    assert.equal(r.preauthSent, false)
  })
})

describe('forged and altered replies are not verdicts on the user', () => {
  test('PREAUTH_FAILED to a request without pre-authentication is not a wrong password', async () => {
    const s = await spoof(0)
    s.plan = (_req, n) =>
      n === 0 ? { kind: 'answer', reply: forgeKrbError(24, realm.name) } : FORWARD
    const { v } = verifier([s.kdc])
    const forged = await check(v, 'alice', PW)
    // libkrb5 1.20 takes the forged error as a request for pre-authentication; the verifier
    // derives the key once and goes on with the real KDC, which then accepts the right
    // password (ok), or the exchange fails as modified (unavailable). Never a verdict that
    // the password is wrong.
    assert.notEqual(forged.reason, 'bad_password', JSON.stringify(forged))
    assert.notEqual(Reasons[forged.reason].decision, 'invalid', JSON.stringify(forged))
    assert.equal((await check(v, 'alice', PW)).reason, 'ok')
  })

  test('an AS-REP whose client name was altered: kdc_reply_modified, the password then works', async () => {
    const s = await spoof(0)
    s.plan = () => ({
      kind: 'forward',
      rewrite: (reply) => (messageType(reply) === 11 ? alterAsRepClient(reply) : reply),
    })
    const { v } = verifier([s.kdc])
    const r = await check(v, 'alice', PW)
    assert.equal(r.reason, 'kdc_reply_modified', JSON.stringify(r))
    assert.equal(r.preauthSent, true)
    s.plan = () => FORWARD
    assert.equal((await check(v, 'alice', PW)).reason, 'ok')
  })

  test('an AS-REP that fails integrity after the KDC accepted our pre-authentication', async () => {
    const s = await spoof(0)
    s.plan = () => ({
      kind: 'forward',
      rewrite: (reply) => (messageType(reply) === 11 ? corruptAsRepEncPart(reply) : reply),
    })
    const { v } = verifier([s.kdc])
    const r = await check(v, 'alice', PW)
    assert.equal(r.reason, 'kdc_reply_modified', JSON.stringify(r))
    assert.equal(Reasons[r.reason].decision, 'unavailable')
  })

  test('a skewed reply (KRB_AP_ERR_SKEW, the KDC clock 2 h away): kdc_clock_skew', async () => {
    const s = await spoof(0)
    const stime = new Date(Date.now() + 2 * 3600_000)
    s.plan = (_req, n) =>
      n === 0 ? FORWARD : { kind: 'answer', reply: forgeKrbError(37, realm.name, { stime }) }
    const { v } = verifier([s.kdc])
    const r = await check(v, 'alice', PW)
    assert.equal(r.reason, 'kdc_clock_skew', JSON.stringify(r))
    assert.equal(r.preauthSent, true)
  })
})

describe('the KDC budget and the pipeline', () => {
  test('a forged error racing the real PREAUTH_FAILED: not cached, and the guess is not free', async () => {
    const s = await spoof(0)
    // The pre-authenticated request reaches the real KDC (which counts it); the forger answers
    // first with an error that says nothing about the user.
    s.plan = (_req, n) =>
      preauthenticated(n)
        ? { kind: 'answer', reply: forgeKrbError(60, realm.name), forward: true }
        : FORWARD
    const p = pipeline([s.kdc], { maxKdcFailuresPerWindow: 2, cleanPasswordKdcReserve: 0 })
    const kdcBefore = await realm.kdcRequestCount()
    const raced = await login(p, 'bob', 'guess-1')
    assert.equal(raced.reason, 'kdc_refused')
    assert.equal(raced.decision, 'unavailable')
    assert.equal(s.forwarded, 2, 'both requests reached the real KDC')
    await eventuallyCount(kdcBefore + 2)
    assert.deepEqual(p.stats().cache, { positive: 0, negative: 0 }, 'nothing cached')
    s.plan = () => FORWARD
    const real = await login(p, 'bob', 'guess-1')
    assert.equal(real.reason, 'bad_password', 'the same guess goes to the KDC: it was not cached')
    const third = await login(p, 'bob', 'guess-2')
    assert.equal(third.reason, 'guard_budget', 'the raced guess stayed charged')
  })

  test('a forged error before any pre-authentication gives the budget unit back', async () => {
    const s = await spoof(0)
    s.plan = (_req, n) =>
      n === 0 ? { kind: 'answer', reply: forgeKrbError(60, realm.name) } : FORWARD
    const p = pipeline([s.kdc], { maxKdcFailuresPerWindow: 1, cleanPasswordKdcReserve: 0 })
    const forged = await login(p, 'carol', 'guess-1')
    assert.equal(forged.reason, 'kdc_refused')
    assert.equal(s.forwarded, 0)
    const real = await login(p, 'carol', 'guess-2')
    assert.equal(real.reason, 'bad_password', 'the refunded unit paid for this one')
    assert.equal((await login(p, 'carol', 'guess-3')).reason, 'guard_budget')
  })
})

async function eventuallyCount(atLeast: number): Promise<void> {
  const until = Date.now() + 3000
  while ((await realm.kdcRequestCount()) < atLeast) {
    if (Date.now() > until) assert.fail(`the KDC logged fewer than ${atLeast} requests`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('a verify principal the KDC does not know', () => {
  for (const via of ['as', 'tgs'] as const) {
    test(`every check unavailable with one clear log line, nothing cached; fixed once it exists (${via})`, async () => {
      const name = `host/missing-${via}.test`
      const keytab = `${realm.dir}/missing-${via}.keytab`
      const lines: Array<{ level: number; msg: string; verifyPrincipal?: string }> = []
      const sink = new Writable({
        write(chunk, _enc, cb) {
          for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line))
          cb()
        },
      })
      // The keytab holds the principal's key (saslgate checks that at start), but the KDC no
      // longer knows it (deleted, a database restored from before it was made).
      await realm.kadmin(`addprinc -randkey ${name}`)
      await realm.kadmin(`ktadd -k ${keytab} ${name}`)
      await realm.kadmin(`delprinc -force ${name}`)
      const config = loadConfig({
        env: {},
        settings: {
          'kerberos.config': realm.krb5ConfPath,
          'kerberos.keytab': keytab,
          'kerberos.verifyPrincipal': name,
          'kerberos.serviceTicketVia': via,
          'kerberos.kdcs': { [realm.name]: [kdcOf(0)] },
        },
      })
      const local = await buildLocalAuthenticator(config, {}, pino({ level: 'info' }, sink))
      closers.push(() => local.close())
      const p = local.pipeline
      const results = [
        await login(p, 'alice', PW),
        await login(p, 'alice', 'wrong-pw'),
        await login(p, 'nosuchuser', 'x-pw-1'),
        await login(p, 'alice', PW),
      ]
      for (const r of results) {
        assert.equal(r.decision, 'unavailable', JSON.stringify(r))
        assert.equal(r.reason, 'verify_principal_unknown', JSON.stringify(r))
      }
      assert.deepEqual(p.stats().cache, { positive: 0, negative: 0 })
      const full = `${name}@${realm.name}`
      // One line from the checks (not one per check), and at most one from the readiness
      // probe at start (C_PRINCIPAL_UNKNOWN to its AS-REQ); both name the principal.
      const errors = lines.filter((l) => l.level === 50)
      const fromChecks = errors.filter((l) => /S_PRINCIPAL_UNKNOWN/.test(l.msg))
      const fromProbe = errors.filter((l) => /readiness probe/.test(l.msg))
      assert.equal(fromChecks.length, 1, 'one line from the checks, not one per check')
      assert.ok(fromProbe.length <= 1, 'at most one line from the readiness probe')
      assert.equal(errors.length, fromChecks.length + fromProbe.length, 'no other error line')
      for (const e of errors) {
        assert.equal(e.verifyPrincipal, full)
        assert.match(e.msg, new RegExp(`does not know the verify principal ${full}`))
      }
      assert.ok(!lines.some((l) => JSON.stringify(l).includes(PW)), 'no password in any log line')

      // Made again: new keys under the same kvno 1, so the keytab is written anew (an old
      // entry of the same kvno would be found first and fail the ticket: verify_failed).
      await realm.kadmin(`addprinc -randkey ${name}`)
      await rm(keytab, { force: true })
      await realm.kadmin(`ktadd -k ${keytab} ${name}`)
      // In TGS mode alice's checks sent pre-authenticated requests (the KDC's TGS error is
      // unauthenticated, so they stay charged): her budget is spent; another user shows it.
      const user = via === 'as' ? 'alice' : 'dave'
      const password = via === 'as' ? PW : 'Dave-pw-1'
      assert.equal((await login(p, user, password)).reason, 'ok')
      if (via === 'tgs') assert.equal((await login(p, 'alice', PW)).reason, 'guard_budget')
      assert.ok(lines.some((l) => l.level === 30 && /knows the verify principal again/.test(l.msg)))
    })
  }
})

describe('AS mode with a verify principal of another realm', () => {
  test('is refused at start, naming the option; TGS mode is accepted', async () => {
    const settings = (via: 'as' | 'tgs') =>
      resolveKerberosSettings(
        loadConfig({
          env: {},
          settings: {
            'kerberos.config': realm.krb5ConfPath,
            'kerberos.verifyPrincipal': 'host/x.other.test@OTHER.TEST',
            'kerberos.serviceTicketVia': via,
          },
        }),
        {},
      )
    await assert.rejects(
      settings('as'),
      (e) =>
        isSaslgateError(e, 'SASLGATE_ERR_CONFIG') &&
        /kerberos\.verifyPrincipal/.test(e.message) &&
        /serviceTicketVia=tgs/.test(e.message),
    )
    const ok = await settings('tgs')
    assert.equal(ok.verifyPrincipal(realm.name), 'host/x.other.test@OTHER.TEST')
    // the same realm as the logins is fine in AS mode
    const same = await resolveKerberosSettings(
      loadConfig({
        env: {},
        settings: {
          'kerberos.config': realm.krb5ConfPath,
          'kerberos.verifyPrincipal': `host/x@${realm.name}`,
        },
      }),
      {},
    )
    assert.equal(same.verifyPrincipal(realm.name), `host/x@${realm.name}`)
  })
})
