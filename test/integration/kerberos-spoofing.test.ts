/**
 * What a spoofed KDC reply can make saslgate's Kerberos check do (issue 17, items 3, 4, 6):
 * no downgrade to rc4 or des3, no more string-to-key work than 4x the enctype's default,
 * one string-to-key per check, only INITIAL tickets in AS mode, and krb5_rd_req on the
 * local clock. Spoofers are fakes on loopback that record what the client sent; the KDC
 * is a real MIT krb5kdc.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Reasons } from '../../src/errors.js'
import { parseEnctypes } from '../../src/kerberos/enctypes.js'
import { krb5, type NativeSession, type StepResult } from '../../src/kerberos/native.js'
import { deriveKeySync } from '../../src/kerberos/string-to-key.js'
import { KdcClient } from '../../src/kerberos/transport.js'
import {
  KerberosVerifier,
  type RefusedReplyEvent,
  type VerifierOptions,
} from '../../src/kerberos/verifier.js'
import { aesDecrypt, KeyUsage } from '../../src/testing/krb-crypto.js'
import {
  type EtypeInfo2Hint,
  encodeKrbError,
  shiftAsRepTimes,
} from '../../src/testing/krb-messages.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import {
  type RecordingKdc,
  type SpoofAction,
  startRecordingKdc,
} from '../../src/testing/recording-kdc.js'

const PW = 'Spoof-test-pw-1'
const RC4_PW = 'Rc4-only-pw-1'
let realm: Realm
const closers: Array<() => Promise<void>> = []

before(async () => {
  realm = await startRealm({
    users: [
      { name: 'alice', password: PW },
      { name: 'rc4user', password: RC4_PW, enctypes: 'rc4-hmac:normal' },
    ],
  })
  krb5().configure(realm.krb5ConfPath)
})

after(async () => {
  for (const c of closers.reverse()) await c()
  await realm?.close()
})

const realKdc = () => ({ host: '127.0.0.1', port: realm.kdcs[0]!.port })

function verifierAt(port: number, options: Partial<VerifierOptions> = {}) {
  const transport = new KdcClient({
    realms: { [realm.name]: [`127.0.0.1:${port}`] },
    udpAttemptTimeoutMs: 300,
  })
  const v = new KerberosVerifier({
    transport,
    verifyPrincipal: () => realm.servicePrincipal,
    keytab: realm.keytabPath,
    ...options,
  })
  closers.push(() => v.close())
  return v
}

async function spoof(answer: (request: Buffer, index: number) => SpoofAction) {
  const kdc = await startRecordingKdc({ answer, upstream: realKdc() })
  closers.push(() => kdc.close())
  return kdc
}

const preauthRequired = (...hints: EtypeInfo2Hint[]) =>
  encodeKrbError({ errorCode: 25, realm: realm.name, client: ['alice'], etypeInfo2: hints })
const preauthFailed = () => encodeKrbError({ errorCode: 24, realm: realm.name, client: ['alice'] })

const check = (v: KerberosVerifier, user = 'alice', pw = PW) =>
  v.verify(`${user}@${realm.name}`, Buffer.from(pw), AbortSignal.timeout(3000))

const encTimestamps = (kdc: RecordingKdc) =>
  kdc.requests.filter((r) => r.asReq?.encTimestampEtype !== undefined)

describe('item 3: no enctype downgrade through a spoofed PREAUTH_REQUIRED', () => {
  for (const deriveKeys of [true, false]) {
    test(`an rc4-only or des3-only hint is refused, no PA-ENC-TIMESTAMP sent (deriveKeys=${deriveKeys})`, async () => {
      for (const etype of [23, 16]) {
        const kdc = await spoof(() => preauthRequired({ etype }))
        const refused: RefusedReplyEvent[] = []
        const v = verifierAt(kdc.port, { deriveKeys, onRefusedReply: (e) => refused.push(e) })
        const r = await check(v)
        assert.equal(r.reason, 'kdc_enctype_refused')
        assert.equal(Reasons[r.reason].decision, 'unavailable')
        // One AS-REQ, without pre-authentication, asking for the allowed enctypes only.
        assert.equal(kdc.requests.length, 1)
        assert.deepEqual(kdc.requests[0]!.asReq?.padataTypes.includes(2), false)
        assert.deepEqual(kdc.requests[0]!.asReq?.etypes, [18, 17, 20, 19])
        assert.equal(encTimestamps(kdc).length, 0)
        // Logged: which KDC, what it offered; never a password.
        assert.equal(refused.length, 1)
        assert.equal(refused[0]!.kdc, `127.0.0.1:${kdc.port}`)
        assert.match(refused[0]!.detail, new RegExp(`no_allowed_enctype \\(offered ${etype};`))
        assert.ok(!JSON.stringify(refused).includes(PW))
      }
    })
  }

  test('a real rc4-only principal: the KDC is never sent an rc4 PA-ENC-TIMESTAMP', async () => {
    const kdc = await spoof(() => 'relay')
    const refused: RefusedReplyEvent[] = []
    const v = verifierAt(kdc.port, { onRefusedReply: (e) => refused.push(e) })
    const r = await check(v, 'rc4user', RC4_PW)
    // The KDC holds no key of an enctype we asked for, says PREAUTH_REQUIRED with no hint
    // and no usable method: refused as such (unavailable, logged), after one round trip.
    assert.equal(r.reason, 'kdc_enctype_refused')
    assert.equal(r.roundTrips, 1)
    assert.match(refused[0]?.detail ?? '', /no_allowed_enctype \(offered none/)
    assert.equal(kdc.requests.length, 1)
    for (const q of kdc.requests) {
      assert.ok(q.asReq !== undefined, 'only AS-REQs')
      assert.ok(!q.asReq.etypes.includes(23), `asked for ${q.asReq.etypes}`)
      assert.ok(!q.asReq.padataTypes.includes(2), 'a PA-ENC-TIMESTAMP was sent')
    }
  })

  test('control: with rc4 allowed by name the same check passes, and the proxy sees the rc4 PA-ENC-TIMESTAMP', async () => {
    const kdc = await spoof(() => 'relay')
    const v = verifierAt(kdc.port, { enctypes: ['aes256-cts-hmac-sha1-96', 'rc4-hmac'] })
    assert.equal((await check(v, 'rc4user', RC4_PW)).reason, 'ok')
    assert.deepEqual(
      encTimestamps(kdc).map((q) => q.asReq?.encTimestampEtype),
      [23],
    )
    assert.deepEqual(kdc.requests[0]!.asReq?.etypes, [18, 23])
  })

  test('a mixed hint: the allowed enctype is used, never the weak one', async () => {
    for (const deriveKeys of [true, false]) {
      const kdc = await spoof(() => 'relay')
      const v = verifierAt(kdc.port, { deriveKeys })
      assert.equal((await check(v)).reason, 'ok')
      assert.deepEqual(
        encTimestamps(kdc).map((q) => q.asReq?.encTimestampEtype),
        [18],
      )
    }
  })

  test('kerberos.requireDefaultSalt: a chosen salt is refused before any PA-ENC-TIMESTAMP, the default one is not', async () => {
    const salts = ['CHOSEN-SALT', `${realm.name}alice`]
    for (const salt of salts) {
      const kdc = await spoof((_req, i) =>
        i === 0 ? preauthRequired({ etype: 18, salt }) : preauthFailed(),
      )
      const r = await check(verifierAt(kdc.port, { requireDefaultSalt: true }))
      if (salt === 'CHOSEN-SALT') {
        assert.equal(r.reason, 'unsafe_kdc_reply')
        assert.equal(encTimestamps(kdc).length, 0)
      } else {
        assert.equal(r.reason, 'bad_password')
        assert.equal(encTimestamps(kdc).length, 1)
      }
    }
    // Off by default: the chosen salt is used.
    const kdc = await spoof((_req, i) =>
      i === 0 ? preauthRequired({ etype: 18, salt: 'CHOSEN-SALT' }) : preauthFailed(),
    )
    assert.equal((await check(verifierAt(kdc.port))).reason, 'bad_password')
    // And a real KDC with default salts passes with it on.
    const real = await spoof(() => 'relay')
    assert.equal((await check(verifierAt(real.port, { requireDefaultSalt: true }))).reason, 'ok')
  })

  test('unknown enctype names are a configuration error naming the option', () => {
    assert.throws(
      () => verifierAt(1, { enctypes: ['aes256-cts-hmac-sha1-96', 'des-cbc-md5'] }),
      /kerberos\.enctypes: unknown enctype "des-cbc-md5"/,
    )
  })
})

describe('item 6: iteration ceiling per enctype, one string-to-key per check', () => {
  test('4x the default is accepted, one more iteration is refused before any PA-ENC-TIMESTAMP', async () => {
    for (const [etype, ceiling] of [
      [18, 16_384],
      [17, 16_384],
      [20, 131_072],
      [19, 131_072],
    ] as const) {
      for (const iterations of [ceiling, ceiling + 1]) {
        const kdc = await spoof((_req, i) =>
          i === 0 ? preauthRequired({ etype, salt: 'SALT', iterations }) : preauthFailed(),
        )
        const r = await check(verifierAt(kdc.port))
        if (iterations === ceiling) {
          assert.equal(r.reason, 'bad_password', `${etype} at ${iterations}`)
          assert.deepEqual(
            encTimestamps(kdc).map((q) => q.asReq?.encTimestampEtype),
            [etype],
          )
        } else {
          assert.equal(r.reason, 'unsafe_kdc_reply', `${etype} at ${iterations}`)
          assert.equal(kdc.requests.length, 1)
        }
      }
    }
  })

  test('kerberos.maxS2kIterations > 0 is one ceiling for every enctype', async () => {
    const sha1 = ['aes256-cts-hmac-sha1-96', 'aes128-cts-hmac-sha1-96']
    for (const [iterations, reason] of [
      [20_000, 'bad_password'], // above the per-enctype 16,384, within the override
      [20_001, 'unsafe_kdc_reply'],
    ] as const) {
      const kdc = await spoof((_req, i) =>
        i === 0 ? preauthRequired({ etype: 18, salt: 'SALT', iterations }) : preauthFailed(),
      )
      const v = verifierAt(kdc.port, { maxS2kIterations: 20_000, enctypes: sha1 })
      assert.equal((await check(v)).reason, reason, `${iterations}`)
    }
    assert.throws(() => verifierAt(1, { maxS2kIterations: -1 }), /maxIterations/)
    // Below an allowed enctype's default every check with it would fail: refused at start.
    assert.throws(
      () => verifierAt(1, { maxS2kIterations: 20_000 }),
      /kerberos\.maxS2kIterations: 20000 is below the default count of enctype 20/,
    )
  })

  for (const deriveKeys of [true, false]) {
    test(`replies naming new string-to-key parameters do not make a second key (deriveKeys=${deriveKeys})`, async () => {
      // First hint: salt A. After the PA-ENC-TIMESTAMP the spoofer asks again with salt B
      // (and a costlier count), then fails the pre-authentication naming salt C.
      const kdc = await spoof((_req, i) => {
        if (i === 0) return preauthRequired({ etype: 18, salt: 'SALT-A' })
        if (i === 1) return preauthRequired({ etype: 18, salt: 'SALT-B', iterations: 16_384 })
        if (i === 2)
          return encodeKrbError({
            errorCode: 24,
            realm: realm.name,
            client: ['alice'],
            etypeInfo2: [{ etype: 18, salt: 'SALT-C' }],
          })
        return preauthFailed()
      })
      const r = await check(verifierAt(kdc.port, { deriveKeys }))
      assert.notEqual(Reasons[r.reason].decision, 'ok')
      const key = (salt: string, iterations = 4096) =>
        deriveKeySync({ etype: 18, password: Buffer.from(PW), salt: Buffer.from(salt), iterations })
      const [a, b, c] = [key('SALT-A'), key('SALT-B', 16_384), key('SALT-C')]
      const stamps = encTimestamps(kdc)
      assert.ok(stamps.length >= 2, `${stamps.length} PA-ENC-TIMESTAMPs`)
      for (const q of stamps) {
        const cipher = q.asReq!.encTimestampCipher!
        assert.ok(aesDecrypt(a, KeyUsage.paEncTimestamp, cipher) !== undefined, 'not under key A')
        assert.equal(aesDecrypt(b, KeyUsage.paEncTimestamp, cipher), undefined)
        assert.equal(aesDecrypt(c, KeyUsage.paEncTimestamp, cipher), undefined)
      }
    })
  }
})

/** Drives one exchange of a raw session against the real KDC. */
async function drive(
  transport: KdcClient,
  first: StepResult,
  next: (reply: Buffer) => Promise<StepResult>,
): Promise<StepResult> {
  let step = first
  for (let i = 0; i < 8 && step.code === 0 && step.continue; i++) {
    const sent = await transport.send(realm.name, step.out!, { signal: AbortSignal.timeout(2000) })
    step = await next(sent.reply)
  }
  return step
}

describe('item 4: the verify step', () => {
  const enctypes = parseEnctypes(['aes256-cts-hmac-sha1-96', 'aes128-cts-hmac-sha1-96'])

  async function tgsIssuedTicket(requireInitial: boolean): Promise<StepResult> {
    const { Session } = krb5()
    const transport = new KdcClient({ realms: { [realm.name]: [`127.0.0.1:${realKdc().port}`] } })
    closers.push(() => transport.close())
    // A TGT for the user, then a ticket for the verify principal from a TGS exchange: what a
    // forwarded TGT, S4U2Proxy or constrained delegation would hand a spoofer.
    const s: NativeSession = new Session({
      client: `alice@${realm.name}`,
      server: realm.servicePrincipal,
      asService: false,
      requireInitial,
      enctypes,
    })
    try {
      const as = await drive(transport, await s.asStart(Buffer.from(PW)), (r) => s.asStep(r))
      assert.equal(as.code, 0)
      const tgs = await drive(transport, await s.tgsStart(), (r) => s.tgsStep(r))
      assert.equal(tgs.code, 0)
      return await s.verify(realm.keytabPath)
    } finally {
      s.close()
    }
  }

  test('a TGS-issued ticket (no INITIAL flag) is refused when INITIAL is required', async () => {
    const refused = await tgsIssuedTicket(true)
    assert.equal(refused.code, krb5().codes.KRB5KRB_AP_ERR_TKT_INVALID)
    assert.match(refused.message ?? '', /INITIAL/)
    // The same ticket verifies when the flag is not required: the flag is the only cause.
    assert.equal((await tgsIssuedTicket(false)).code, 0)
  })

  test('AS mode requires INITIAL and a real AS ticket has it', async () => {
    const kdc = await spoof(() => 'relay')
    assert.equal((await check(verifierAt(kdc.port, { serviceTicketVia: 'as' }))).reason, 'ok')
  })

  test('an AS-REP whose times moved by an hour does not move the rd_req clock', async () => {
    // With kdc_timesync (on by default) libkrb5 sets the session context's clock offset from
    // the AS-REP's authtime. The rewritten reply puts it an hour back; in that clock the
    // (real) ticket would not be valid yet (KRB5KRB_AP_ERR_TKT_NYV). rd_req runs in a
    // context of its own, on the local clock, and the ticket verifies.
    const key = deriveKeySync({
      etype: 18,
      password: Buffer.from(PW),
      salt: Buffer.from(`${realm.name}alice`),
      iterations: 4096,
    })
    const kdc = await startRecordingKdc({
      upstream: realKdc(),
      rewriteReply: (reply) => shiftAsRepTimes(reply, key, -3_600_000),
    })
    closers.push(() => kdc.close())
    const r = await check(verifierAt(kdc.port, { serviceTicketVia: 'as' }))
    assert.equal(kdc.rewritten, 1, 'the AS-REP was rewritten')
    assert.equal(r.reason, 'ok')
  })
})
