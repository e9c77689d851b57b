/**
 * The retry on the primary KDC after a replica's PREAUTH_FAILED (issue 17 item 8), with real
 * MIT KDCs: the "primary" holds the new passwords, the "replica" is a second real krb5kdc of
 * the same realm name whose database still has the old ones (so its PREAUTH_FAILED is a real
 * KDC's). A recording relay in front of each counts the pre-authenticated AS-REQs; a guard
 * store that counts reservations and refunds counts the budget units.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { AuthResult } from '../../src/authenticator.js'
import { loadConfig } from '../../src/config.js'
import { krb5 } from '../../src/kerberos/native.js'
import { createKerberos, resolveKerberosSettings } from '../../src/kerberos/setup.js'
import { KdcClient } from '../../src/kerberos/transport.js'
import type { VerifyResult } from '../../src/kerberos/types.js'
import { KerberosVerifier, type PrimaryRetryEvent } from '../../src/kerberos/verifier.js'
import { Pipeline, type PipelineOptions } from '../../src/pipeline/pipeline.js'
import { createPrincipalMapper } from '../../src/pipeline/principal.js'
import { MemoryGuardStore } from '../../src/state/memory-store.js'
import { type Realm, startRealm, startRogueKdc } from '../../src/testing/realm.js'
import { type RecordingKdc, startRecordingKdc } from '../../src/testing/recording-kdc.js'

/** Passwords: the primary has the new one, the replica the old one. */
const CAROL_NEW = 'Carol-new-pw-2'
const CAROL_OLD = 'Carol-old-pw-1'
const FRANK_NEW = 'Frank-new-pw-2'
let primary: Realm
let replica: Realm
let primaryKdc: RecordingKdc
let replicaKdc: RecordingKdc
const closers: Array<() => Promise<void>> = []

before(async () => {
  primary = await startRealm({
    users: [
      { name: 'carol', password: CAROL_NEW },
      { name: 'frank', password: FRANK_NEW },
    ],
  })
  replica = await startRogueKdc(primary.name, [
    { name: 'carol', password: CAROL_OLD },
    // Keys salted without the realm: the replica's hint names another salt than the primary's.
    { name: 'frank', password: 'Frank-old-pw-1', enctypes: 'aes256-cts-hmac-sha1-96:norealm' },
  ])
  krb5().configure(primary.krb5ConfPath)
  primaryKdc = await startRecordingKdc({
    upstream: { host: '127.0.0.1', port: primary.kdcs[0]!.port },
  })
  replicaKdc = await startRecordingKdc({
    upstream: { host: '127.0.0.1', port: replica.kdcs[0]!.port },
  })
})

after(async () => {
  for (const c of closers.reverse()) await c()
  await primaryKdc?.close()
  await replicaKdc?.close()
  await replica?.close()
  await primary?.close()
})

/** A real memory store that also counts the budget units taken and given back. */
class CountingStore extends MemoryGuardStore {
  reserved = 0
  refunded = 0
  override async reserveKdc(principal: string, max: number, windowMs: number): Promise<boolean> {
    const taken = await super.reserveKdc(principal, max, windowMs)
    if (taken) this.reserved++
    return taken
  }
  override async refundKdc(principal: string): Promise<void> {
    this.refunded++
    await super.refundKdc(principal)
  }
  /** Units still charged. */
  get units(): number {
    return this.reserved - this.refunded
  }
}

const key = (k: RecordingKdc) => `${k.host}:${k.port}`

function verifierWith(
  retryOnPrimary: boolean,
  deriveKeys = true,
  events: PrimaryRetryEvent[] = [],
): KerberosVerifier {
  const transport = new KdcClient({
    // The replica first: the first exchange goes there.
    realms: { [primary.name]: [key(replicaKdc), key(primaryKdc)] },
    primaries: { [primary.name]: [key(primaryKdc)] },
    udpAttemptTimeoutMs: 500,
  })
  const verifier = new KerberosVerifier({
    transport,
    verifyPrincipal: () => primary.servicePrincipal,
    keytab: primary.keytabPath,
    retryOnPrimary,
    deriveKeys,
    onPrimaryRetry: (e) => events.push(e),
  })
  closers.push(() => verifier.close())
  return verifier
}

function build(retryOnPrimary: boolean, options: Partial<PipelineOptions> = {}) {
  const verifier = verifierWith(retryOnPrimary)
  const store = new CountingStore()
  const mapper = createPrincipalMapper({ defaultRealm: primary.name, realms: [primary.name] })
  const pipeline = new Pipeline({ verifier, mapper, guardStore: store }, options)
  closers.push(async () => {
    await pipeline.close()
    await store.close()
  })
  return { pipeline, store }
}

const login = (p: Pipeline, user: string, password: string): Promise<AuthResult> =>
  p.authenticate({
    login: user,
    password: Buffer.from(password),
    service: 'imap',
    realm: '',
    signal: AbortSignal.timeout(1900),
  })

/** AS-REQs with a PA-ENC-TIMESTAMP (a guess the KDC counts) and all requests, since `mark`. */
function traffic(k: RecordingKdc, mark: number): { preauth: number; all: number } {
  const since = k.requests.slice(mark)
  return {
    preauth: since.filter((r) => r.asReq?.encTimestampEtype !== undefined).length,
    all: since.length,
  }
}

function marks(): { p: number; r: number } {
  return { p: primaryKdc.requests.length, r: replicaKdc.requests.length }
}

describe('retry on the primary KDC after a replica says PREAUTH_FAILED', () => {
  test('the new password gets OK through the retry: two pre-authenticated requests, two units', async () => {
    const { pipeline, store } = build(true)
    const m = marks()
    const r = await login(pipeline, 'carol', CAROL_NEW)
    assert.equal(r.decision, 'ok')
    assert.equal(r.reason, 'ok')
    assert.deepEqual(traffic(replicaKdc, m.r).preauth, 1)
    assert.deepEqual(traffic(primaryKdc, m.p).preauth, 1)
    assert.equal(store.reserved, 2)
    assert.equal(store.refunded, 0)
  })

  test('the verifier reports the retry: retriedOnPrimary, both requests counted', async () => {
    const verifier = verifierWith(true)
    let asked = 0
    const r: VerifyResult = await verifier.verify(
      primary.principal('carol'),
      Buffer.from(CAROL_NEW),
      AbortSignal.timeout(3000),
      {
        reserveRetry: async () => {
          asked++
          return true
        },
      },
    )
    assert.equal(r.reason, 'ok')
    assert.equal(r.retriedOnPrimary, true)
    assert.equal(r.retryPreauthSent, true)
    assert.equal(r.preauthSent, true)
    assert.equal(asked, 1)
    // 2 round trips on the replica, 2 on the primary.
    assert.equal(r.roundTrips, 4)
  })

  test('a wrong password costs exactly two units and answers NO once', async () => {
    const { pipeline, store } = build(true)
    const m = marks()
    const r = await login(pipeline, 'carol', 'not-carols-password')
    assert.equal(r.decision, 'invalid')
    assert.equal(r.reason, 'bad_password')
    assert.equal(traffic(replicaKdc, m.r).preauth, 1)
    assert.equal(traffic(primaryKdc, m.p).preauth, 1)
    assert.equal(store.units, 2)
    assert.equal(store.refunded, 0)
    // One failure on the guard, not two: one answer.
    assert.equal((await store.get(primary.principal('carol'))).failures, 1)
  })

  test('with the budget used up by the first request there is no retry: the replica stands', async () => {
    const { pipeline, store } = build(true, {
      maxKdcFailuresPerWindow: 1,
      cleanPasswordKdcReserve: 0,
    })
    const m = marks()
    const r = await login(pipeline, 'carol', CAROL_NEW)
    assert.equal(r.decision, 'invalid')
    assert.equal(r.reason, 'bad_password')
    assert.equal(traffic(replicaKdc, m.r).preauth, 1)
    assert.deepEqual(traffic(primaryKdc, m.p), { preauth: 0, all: 0 })
    assert.equal(store.reserved, 1)
    assert.equal(store.units, 1)
  })

  test('with the option off there is no retry: the replica verdict stands', async () => {
    const { pipeline, store } = build(false)
    const m = marks()
    const r = await login(pipeline, 'carol', CAROL_NEW)
    assert.equal(r.decision, 'invalid')
    assert.equal(r.reason, 'bad_password')
    assert.deepEqual(traffic(primaryKdc, m.p), { preauth: 0, all: 0 })
    assert.equal(store.units, 1)
  })

  test('an unknown user is retried too and costs two units, as a wrong password does', async () => {
    const { pipeline, store } = build(true)
    const m = marks()
    const r = await login(pipeline, 'nobody-here', 'whatever-pw')
    assert.equal(r.decision, 'invalid')
    assert.equal(r.reason, 'unknown_principal')
    assert.deepEqual(traffic(replicaKdc, m.r), { preauth: 0, all: 1 })
    assert.deepEqual(traffic(primaryKdc, m.p), { preauth: 0, all: 1 })
    assert.equal(store.units, 2)
  })

  test('libkrb5 string-to-key (deriveKeys off): the retry reuses the key and gets OK', async () => {
    const verifier = verifierWith(true, false)
    const r = await verifier.verify(
      primary.principal('carol'),
      Buffer.from(CAROL_NEW),
      AbortSignal.timeout(3000),
      { reserveRetry: async () => true },
    )
    assert.equal(r.reason, 'ok')
    assert.equal(r.retriedOnPrimary, true)
  })

  test('another salt on the primary: node:crypto derives again; libkrb5 would, so no retry', async () => {
    const derived = await verifierWith(true, true).verify(
      primary.principal('frank'),
      Buffer.from(FRANK_NEW),
      AbortSignal.timeout(3000),
      { reserveRetry: async () => true },
    )
    assert.equal(derived.reason, 'ok')
    assert.equal(derived.retriedOnPrimary, true)

    const m = marks()
    const events: PrimaryRetryEvent[] = []
    const given = await verifierWith(true, false, events).verify(
      primary.principal('frank'),
      Buffer.from(FRANK_NEW),
      AbortSignal.timeout(3000),
      { reserveRetry: async () => true },
    )
    // Given up when the primary's hint came: no guess reached it, the replica's verdict stands.
    assert.equal(given.reason, 'bad_password')
    assert.equal(given.retriedOnPrimary, undefined)
    assert.equal(given.retryPreauthSent, false)
    assert.deepEqual(traffic(primaryKdc, m.p), { preauth: 0, all: 1 })
    assert.deepEqual(
      events.map((e) => [e.outcome, e.replicaReason, e.reason]),
      [['given_up', 'bad_password', 'bad_password']],
    )
  })

  test('the retry unit is refunded when the primary cannot be reached before a guess', async () => {
    const transport = new KdcClient({
      realms: { [primary.name]: [key(replicaKdc)] },
      // Nothing listens there: refused at once.
      primaries: { [primary.name]: ['127.0.0.1:1'] },
      udpAttemptTimeoutMs: 300,
    })
    const events: PrimaryRetryEvent[] = []
    const verifier = new KerberosVerifier({
      transport,
      verifyPrincipal: () => primary.servicePrincipal,
      keytab: primary.keytabPath,
      retryOnPrimary: true,
      onPrimaryRetry: (e) => events.push(e),
    })
    closers.push(() => verifier.close())
    const store = new CountingStore()
    const mapper = createPrincipalMapper({ defaultRealm: primary.name, realms: [primary.name] })
    const pipeline = new Pipeline({ verifier, mapper, guardStore: store })
    closers.push(async () => {
      await pipeline.close()
      await store.close()
    })
    const r = await login(pipeline, 'carol', CAROL_NEW)
    assert.equal(r.reason, 'bad_password')
    assert.equal(store.reserved, 2)
    assert.equal(store.refunded, 1)
    assert.deepEqual(
      events.map((e) => e.outcome),
      ['unreached'],
    )
  })
})

/** A krb5.conf naming the replica first and the primary as `primary_kdc`. */
async function retryConf(): Promise<string> {
  const conf = join(primary.dir, 'retry-krb5.conf')
  await writeFile(
    conf,
    [
      '[libdefaults]',
      `  default_realm = ${primary.name}`,
      '[realms]',
      `  ${primary.name} = {`,
      `    kdc = ${key(replicaKdc)}`,
      `    kdc = ${key(primaryKdc)}`,
      `    primary_kdc = ${key(primaryKdc)}`,
      '  }',
      '',
    ].join('\n'),
  )
  return conf
}

describe('retry on the primary, configured as the service configures it', () => {
  test("krb5.conf's primary_kdc with kerberos.retryOnPrimary: the retry runs and is reported", async () => {
    const conf = await retryConf()
    const run = async (retry: boolean) => {
      const config = loadConfig({
        env: {},
        settings: {
          'kerberos.config': conf,
          'kerberos.keytab': primary.keytabPath,
          'kerberos.verifyPrincipal': primary.servicePrincipal,
          'kerberos.retryOnPrimary': String(retry),
        },
      })
      const settings = await resolveKerberosSettings(config, {})
      assert.deepEqual(settings.primaryKdcs, { [primary.name]: [key(primaryKdc)] })
      const events: PrimaryRetryEvent[] = []
      const { verifier } = createKerberos(config, settings, {
        onPrimaryRetry: (e) => events.push(e),
      })
      try {
        const r = await verifier.verify(
          primary.principal('carol'),
          Buffer.from(CAROL_NEW),
          AbortSignal.timeout(3000),
          { reserveRetry: async () => true },
        )
        return { r, events }
      } finally {
        await verifier.close()
      }
    }
    try {
      const on = await run(true)
      assert.equal(on.r.reason, 'ok')
      assert.deepEqual(on.events, [
        {
          realm: primary.name,
          replica: key(replicaKdc),
          replicaReason: 'bad_password',
          outcome: 'answered',
          reason: 'ok',
        },
      ])
      const off = await run(false)
      assert.equal(off.r.reason, 'bad_password')
      assert.deepEqual(off.events, [])
    } finally {
      krb5().configure(primary.krb5ConfPath) // createKerberos set the profile to this file
    }
  })

  test('saslgate verify retries on the primary and says so; the password appears nowhere', async () => {
    const conf = await retryConf()
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, ['bin/saslgate.js', 'verify', '--principal', 'carol'], {
        env: {
          PATH: process.env.PATH,
          KRB5_CONFIG: conf,
          KRB5_KTNAME: primary.keytabPath,
          SASLGATE_KERBEROS_VERIFY_PRINCIPAL: primary.servicePrincipal,
          SASLGATE_KERBEROS_RETRY_ON_PRIMARY: 'true',
        },
      })
      let out = ''
      let err = ''
      child.stdout.on('data', (d) => {
        out += d
      })
      child.stderr.on('data', (d) => {
        err += d
      })
      child.on('close', (code) => resolve({ code, out, err }))
      child.stdin.end(CAROL_NEW)
    })
    assert.equal(r.code, 0, r.err)
    assert.match(
      r.out,
      /^ok \(ok\) carol@\S+ in [\d.]+ ms, 4 KDC round trips \(retried on the primary KDC\)\n$/,
    )
    assert.ok(!r.out.includes(CAROL_NEW) && !r.err.includes(CAROL_NEW))
  })
})
