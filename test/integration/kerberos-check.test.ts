import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { promises as dns } from 'node:dns'
import { readFile } from 'node:fs/promises'
import { after, before, describe, test } from 'node:test'
import { Reasons } from '../../src/errors.js'
import { krb5 } from '../../src/kerberos/native.js'
import { KdcClient } from '../../src/kerberos/transport.js'
import { KerberosVerifier, type VerifierOptions } from '../../src/kerberos/verifier.js'
import { startBlackholeKdc, startRefusingKdc } from '../../src/testing/fake-kdc.js'
import { type Realm, startRealm, startRogueKdc } from '../../src/testing/realm.js'

const PW = 'Corr3ct-horse-battery'
let realm: Realm
let rogue: Realm
const verifiers: KerberosVerifier[] = []
const closers: Array<() => Promise<void>> = []

function makeVerifier(kdcs: string[], options: Partial<VerifierOptions> = {}, keytab?: string) {
  const transport = new KdcClient({ realms: { [realm.name]: kdcs }, udpAttemptTimeoutMs: 300 })
  const v = new KerberosVerifier({
    transport,
    verifyPrincipal: () => realm.servicePrincipal,
    keytab: keytab ?? realm.keytabPath,
    ...options,
  })
  verifiers.push(v)
  return v
}
const kdcOf = (r: Realm, i = 0) => `127.0.0.1:${r.kdcs[i]!.port}`
const check = (v: KerberosVerifier, user: string, pw: string | Buffer, ms = 2000) =>
  v.verify(
    `${user}@${realm.name}`,
    Buffer.isBuffer(pw) ? pw : Buffer.from(pw),
    AbortSignal.timeout(ms),
  )

before(async () => {
  realm = await startRealm({
    users: [
      { name: 'alice', password: PW },
      { name: 'bob', password: 'bob-Secret-1' },
      { name: 'changer', password: 'Old-pass-1' },
    ],
    expiredUsers: [{ name: 'carol', password: 'carol-Secret-1' }],
    disabledUsers: [{ name: 'dave', password: 'dave-Secret-1' }],
    extraKdcs: 1,
  })
  rogue = await startRogueKdc(realm.name, [{ name: 'alice', password: 'rogue-chosen-pw' }])
  krb5().configure(realm.krb5ConfPath)
})

after(async () => {
  for (const v of verifiers) await v.close()
  for (const c of closers) await c()
  await rogue?.close()
  await realm?.close()
})

describe('Kerberos password check against a real MIT KDC', () => {
  for (const deriveKeys of [true, false]) {
    for (const via of ['as', 'tgs'] as const) {
      test(`good and wrong passwords (deriveKeys=${deriveKeys}, service ticket via ${via})`, async () => {
        const v = makeVerifier([kdcOf(realm)], { deriveKeys, serviceTicketVia: via })
        const ok = await check(v, 'alice', PW)
        assert.equal(ok.reason, 'ok')
        assert.equal(ok.roundTrips, via === 'as' ? 2 : 3)
        assert.equal((await check(v, 'alice', 'wrong-password')).reason, 'bad_password')
        assert.equal((await check(v, 'bob', PW)).reason, 'bad_password')
      })
    }
  }

  test('unknown, expired and disabled principals are invalid', async () => {
    const v = makeVerifier([kdcOf(realm)])
    const unknown = await check(v, 'nosuchuser', PW)
    assert.equal(unknown.reason, 'unknown_principal')
    assert.equal(Reasons[unknown.reason].decision, 'invalid')
    const expired = await check(v, 'carol', 'carol-Secret-1')
    assert.equal(expired.reason, 'password_expired')
    const disabled = await check(v, 'dave', 'dave-Secret-1')
    assert.equal(Reasons[disabled.reason].decision, 'invalid')
    assert.notEqual(disabled.reason, 'ok')
  })

  test('a rogue KDC cannot make a password pass: its ticket fails against our keytab', async () => {
    const v = makeVerifier([kdcOf(rogue)])
    const r = await check(v, 'alice', 'rogue-chosen-pw')
    assert.equal(r.reason, 'verify_failed')
    assert.equal(Reasons[r.reason].decision, 'invalid')
    // and the real password does not pass there either
    assert.equal(Reasons[(await check(v, 'alice', PW)).reason].decision, 'invalid')
    // without key derivation (libkrb5's own string-to-key) the same holds
    const v2 = makeVerifier([kdcOf(rogue)], { deriveKeys: false })
    assert.equal((await check(v2, 'alice', 'rogue-chosen-pw')).reason, 'verify_failed')
  })

  test('a black-holed KDC gives unavailable within the deadline, and fs/dns are not delayed', async () => {
    const hole = await startBlackholeKdc()
    closers.push(() => hole.close())
    const v = makeVerifier([`127.0.0.1:${hole.port}`])
    const started = performance.now()
    const pending = check(v, 'alice', PW, 1500)
    // While it hangs, the thread pool is free: fs and dns answer at once.
    const t0 = performance.now()
    await readFile(realm.krb5ConfPath)
    await dns.lookup('localhost')
    const sideMs = performance.now() - t0
    const r = await pending
    const ms = performance.now() - started
    assert.equal(Reasons[r.reason].decision, 'unavailable')
    assert.ok(ms < 2000, `answered after ${ms} ms`)
    assert.ok(sideMs < 200, `fs + dns took ${sideMs} ms while the KDC hung`)
    assert.ok(hole.udpPacketsReceived > 0)
  })

  test('failover: first KDC black-holed, second answers -> ok', async () => {
    const hole = await startBlackholeKdc()
    closers.push(() => hole.close())
    const v = makeVerifier([`127.0.0.1:${hole.port}`, kdcOf(realm, 1)])
    const r = await check(v, 'alice', PW)
    assert.equal(r.reason, 'ok')
  })

  test('failover: a refusing KDC is skipped at once', async () => {
    const refusing = await startRefusingKdc()
    closers.push(() => refusing.close())
    const v = makeVerifier([`127.0.0.1:${refusing.port}`, kdcOf(realm)])
    await check(v, 'alice', PW) // warm up (first step in a process loads plugins)
    const t0 = performance.now()
    const r = await check(v, 'alice', PW)
    const ms = performance.now() - t0
    assert.equal(r.reason, 'ok')
    assert.ok(ms < 250, `took ${ms} ms`)
  })

  test('NUL in the login or password is invalid with no KDC traffic', async () => {
    const v = makeVerifier([kdcOf(realm)])
    const before = await realm.kdcRequestCount()
    const a = await check(v, 'alice', Buffer.from(`${PW}\0junk`))
    const b = await v.verify(`alice\0x@${realm.name}`, Buffer.from(PW), AbortSignal.timeout(1000))
    const c = await check(v, 'alice', Buffer.alloc(0))
    for (const r of [a, b, c]) assert.equal(r.reason, 'malformed_request')
    assert.equal(await realm.kdcRequestCount(), before)
  })

  test('a password change is honoured', async () => {
    const v = makeVerifier([kdcOf(realm)])
    assert.equal((await check(v, 'changer', 'Old-pass-1')).reason, 'ok')
    await realm.changePassword('changer', 'New-pass-2')
    assert.equal((await check(v, 'changer', 'Old-pass-1')).reason, 'bad_password')
    assert.equal((await check(v, 'changer', 'New-pass-2')).reason, 'ok')
  })

  test('a wrong keytab fails closed', async () => {
    const v = makeVerifier([kdcOf(realm)], {}, rogue.keytabPath)
    assert.equal((await check(v, 'alice', PW)).reason, 'verify_failed')
  })
})

describe('saslgate verify (CLI)', () => {
  function run(
    principal: string,
    stdin: string,
  ): Promise<{ code: number | null; out: string; err: string }> {
    return new Promise((resolve) => {
      const child = spawn(
        process.execPath,
        ['bin/saslgate.js', 'verify', '--principal', principal],
        {
          env: {
            PATH: process.env.PATH,
            KRB5_CONFIG: realm.krb5ConfPath,
            KRB5_KTNAME: realm.keytabPath,
            SASLGATE_KERBEROS_VERIFY_PRINCIPAL: realm.servicePrincipal,
          },
        },
      )
      let out = ''
      let err = ''
      child.stdout.on('data', (d) => {
        out += d
      })
      child.stderr.on('data', (d) => {
        err += d
      })
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      child.on('close', (code) => {
        clearTimeout(timer)
        resolve({ code, out, err })
      })
      child.stdin.end(stdin)
    })
  }

  test('exit 0 for a good password, 1 for a wrong one; the password never appears in the output', async () => {
    const good = await run('alice', `${PW}\n`)
    assert.equal(good.code, 0, good.err)
    assert.match(good.out, /^ok \(ok\) alice@SASLGATE\.TEST in [\d.]+ ms/)
    const bad = await run(`alice@${realm.name.toLowerCase()}`, 'nope\n')
    assert.equal(bad.code, 1, bad.err)
    assert.match(bad.out, /^invalid/)
    for (const r of [good, bad]) {
      assert.ok(!r.out.includes(PW) && !r.err.includes(PW))
      assert.ok(!r.out.includes('nope') && !r.err.includes('nope'))
    }
  })

  test('exit 2 when no KDC answers', async () => {
    const hole = await startBlackholeKdc()
    closers.push(() => hole.close())
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, ['bin/saslgate.js', 'verify', '--principal', 'alice'], {
        env: {
          PATH: process.env.PATH,
          KRB5_CONFIG: realm.krb5ConfPath,
          KRB5_KTNAME: realm.keytabPath,
          // the keytab holds this one, not host/<this machine> (else exit 78 before any KDC)
          SASLGATE_KERBEROS_VERIFY_PRINCIPAL: realm.servicePrincipal,
          SASLGATE_KERBEROS_KDCS: `${realm.name}=127.0.0.1:${hole.port}`,
          SASLGATE_PIPELINE_DEADLINE_MS: '800',
        },
      })
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
      })
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      child.on('close', (code) => {
        clearTimeout(timer)
        resolve({ code, out })
      })
      child.stdin.end(PW)
    })
    assert.equal(r.code, 2, r.out)
    assert.match(r.out, /^unavailable/)
  })
})
