/**
 * The throw-away realm against the real MIT tools: krb5kdc serves, kinit/kvno (Debian
 * krb5-user) get or are refused tickets, and close() leaves nothing behind.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { type Realm, startRealm, startRogueKdc } from '../../src/testing/realm.js'

const PW = {
  alice: 'alice "quoted" pw \\ #; $x', // exercises kadmin's quoting
  bob: 'bob-pw-1',
  locky: 'locky-pw',
  old: 'old-pw',
  gone: 'gone-pw',
  rogueAlice: 'attacker-chosen',
}
const LOCKOUT = { maxFailure: 3, failureCountIntervalS: 60, lockoutDurationS: 60 }

let work: string
let ccN = 0

interface RunResult {
  code: number | null
  output: string
}

/** Runs a krb5 client with the realm's env, a fresh FILE ccache (unless given) and stdin. */
function run(
  realm: Realm,
  cmd: string,
  args: string[],
  input = '',
  extraEnv: Record<string, string> = {},
): Promise<RunResult> {
  const env = {
    PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/bin`,
    LANG: 'C',
    ...realm.env,
    KRB5CCNAME: `FILE:${join(work, `cc-${++ccN}`)}`,
    ...extraEnv,
  }
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString()
    })
    child.stderr.on('data', (b: Buffer) => {
      output += b.toString()
    })
    child.stdin.on('error', () => {})
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
    child.stdin.end(input)
  })
}

function kinit(realm: Realm, user: string, password: string, env: Record<string, string> = {}) {
  return run(realm, 'kinit', [realm.principal(user)], `${password}\n`, env)
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('throw-away MIT realm', () => {
  let realm: Realm
  let rogue: Realm
  const started: Realm[] = []

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'saslgate-realm-test-'))
    realm = await startRealm({
      users: [
        { name: 'alice', password: PW.alice },
        { name: 'bob', password: PW.bob },
        { name: 'locky', password: PW.locky },
      ],
      expiredUsers: [{ name: 'old', password: PW.old }],
      disabledUsers: [{ name: 'gone', password: PW.gone }],
      lockout: LOCKOUT,
      extraKdcs: 1,
    })
    started.push(realm)
    rogue = await startRogueKdc(realm.name, [{ name: 'alice', password: PW.rogueAlice }])
    started.push(rogue)
  })

  after(async () => {
    for (const r of started) await r.close()
    await rm(work, { recursive: true, force: true })
  })

  test('krb5.conf lists every KDC, and the KDCs run', async () => {
    assert.equal(realm.kdcs.length, 2)
    const conf = await readFile(realm.krb5ConfPath, 'utf8')
    for (const k of realm.kdcs) {
      assert.ok(conf.includes(`kdc = 127.0.0.1:${k.port}`), `KDC ${k.port} missing`)
      assert.ok(k.running && alive(k.pid))
    }
    assert.notEqual(realm.kdcs[0]?.port, realm.kdcs[1]?.port)
    for (const opt of ['noaddresses = true', 'dns_lookup_kdc = false', 'rdns = false']) {
      assert.ok(conf.includes(opt), opt)
    }
    assert.ok(conf.includes(`default_realm = ${realm.name}`))
    assert.equal(realm.servicePrincipal, 'host/saslgate.test@SASLGATE.TEST')
    assert.equal(realm.env.KRB5_CONFIG, realm.krb5ConfPath)
    assert.equal(process.env.KRB5_CONFIG === realm.krb5ConfPath, false)
  })

  test('a good password gets a ticket; kdcRequestCount moves by the AS exchange', async () => {
    const before = await realm.kdcRequestCount()
    const cc = `FILE:${join(work, 'alice.cc')}`
    const r = await kinit(realm, 'alice', PW.alice, { KRB5CCNAME: cc })
    assert.equal(r.code, 0, r.output)
    const list = await run(realm, 'klist', [], '', { KRB5CCNAME: cc })
    assert.match(list.output, /Default principal: alice@SASLGATE\.TEST/)
    // preauth: AS_REQ (NEEDED_PREAUTH) + AS_REQ (ISSUE); the readiness probes are not counted
    assert.equal((await realm.kdcRequestCount()) - before, 2)
  })

  test('a wrong password, the expired and the disabled user are refused', async () => {
    const wrong = await kinit(realm, 'bob', 'not-the-password')
    assert.notEqual(wrong.code, 0)
    assert.match(wrong.output, /Password incorrect/)
    const expired = await kinit(realm, 'old', PW.old)
    assert.notEqual(expired.code, 0)
    assert.match(expired.output, /Password expired/i)
    const disabled = await kinit(realm, 'gone', PW.gone)
    assert.notEqual(disabled.code, 0)
    assert.match(disabled.output, /revoked/i)
    const unknown = await kinit(realm, 'nobody', 'x')
    assert.match(unknown.output, /not found in Kerberos database/)
  })

  test('the keytab works: kinit -k and kvno -k', async () => {
    const k = await run(realm, 'kinit', ['-k', '-t', realm.keytabPath, realm.servicePrincipal])
    assert.equal(k.code, 0, k.output)
    const cc = `FILE:${join(work, 'kvno.cc')}`
    assert.equal((await kinit(realm, 'bob', PW.bob, { KRB5CCNAME: cc })).code, 0)
    const v = await run(realm, 'kvno', ['-k', realm.keytabPath, realm.servicePrincipal], '', {
      KRB5CCNAME: cc,
    })
    assert.equal(v.code, 0, v.output)
    assert.match(v.output, /keytab entry valid/)
  })

  test('the lockout policy locks a user after maxFailure wrong passwords', async () => {
    for (let i = 0; i < LOCKOUT.maxFailure; i++) {
      assert.notEqual((await kinit(realm, 'locky', `wrong-${i}`)).code, 0)
    }
    const locked = await kinit(realm, 'locky', PW.locky)
    assert.notEqual(locked.code, 0)
    assert.match(locked.output, /revoked/i)
    assert.match(await realm.kadmin('getprinc locky'), /Policy: saslgate-lockout/)
  })

  test('addUser and changePassword take effect on the running KDC', async () => {
    await realm.addUser('dave', 'dave')
    assert.equal((await kinit(realm, 'dave', 'dave')).code, 0)
    await realm.changePassword('dave', 'dave-2')
    assert.notEqual((await kinit(realm, 'dave', 'dave')).code, 0)
    assert.equal((await kinit(realm, 'dave', 'dave-2')).code, 0)
    await assert.rejects(realm.addUser('dave', 'again'), (err: Error) => {
      assert.equal((err as { code?: string }).code, 'SASLGATE_ERR_TEST_REALM')
      assert.match(err.message, /already exists/)
      assert.ok(!err.message.includes('again'), 'password in the error message')
      return true
    })
  })

  test('the second KDC answers when the first is stopped; the first restarts', async () => {
    const first = realm.kdcs[0]!
    await realm.stopKdc(0)
    assert.equal(realm.kdcs[0]?.running, false)
    assert.equal(alive(first.pid), false)
    const before = await realm.kdcRequestCount()
    const r = await kinit(realm, 'bob', PW.bob)
    assert.equal(r.code, 0, r.output)
    assert.ok((await realm.kdcRequestCount()) > before)
    const log1 = await readFile(join(realm.dir, 'kdc-1.log'), 'utf8')
    assert.match(log1, /AS_REQ .*ISSUE: .*bob@SASLGATE\.TEST/)

    await realm.startKdc(0)
    const restarted = realm.kdcs[0]!
    assert.ok(restarted.running && alive(restarted.pid))
    assert.equal(restarted.port, first.port)
    await realm.stopKdc(1)
    assert.equal((await kinit(realm, 'bob', PW.bob)).code, 0)
    await realm.startKdc(1)
  })

  test('a KDC that cannot bind its port fails with its log in the error', async (t) => {
    const port = realm.kdcs[1]!.port
    await realm.stopKdc(1)
    const squatter = createSocket('udp4')
    let bound = true
    t.after(() => {
      if (bound) squatter.close()
    })
    await new Promise<void>((resolve) => squatter.bind(port, '127.0.0.1', resolve))
    await assert.rejects(realm.startKdc(1), (err: Error) => {
      assert.equal((err as { code?: string }).code, 'SASLGATE_ERR_TEST_REALM')
      assert.match(err.message, /did not start \(clash\)/)
      assert.match(err.message, /Address already in use/)
      return true
    })
    assert.equal(realm.kdcs[1]?.running, false)
    squatter.close()
    bound = false
    await realm.startKdc(1)
    assert.equal(realm.kdcs[1]?.running, true)
  })

  test('the rogue KDC accepts its own password; the real one refuses it', async () => {
    assert.equal(rogue.name, realm.name)
    const cc = `FILE:${join(work, 'rogue.cc')}`
    const atRogue = await kinit(rogue, 'alice', PW.rogueAlice, { KRB5CCNAME: cc })
    assert.equal(atRogue.code, 0, atRogue.output)
    assert.notEqual((await kinit(realm, 'alice', PW.rogueAlice)).code, 0)
    assert.notEqual((await kinit(rogue, 'alice', PW.alice)).code, 0)
    // The spoof fails where it must: the rogue's service ticket does not decrypt with our keytab.
    const spoof = await run(rogue, 'kvno', ['-k', realm.keytabPath, rogue.servicePrincipal], '', {
      KRB5CCNAME: cc,
    })
    assert.notEqual(spoof.code, 0, spoof.output)
    const own = await run(rogue, 'kvno', ['-k', rogue.keytabPath, rogue.servicePrincipal], '', {
      KRB5CCNAME: cc,
    })
    assert.equal(own.code, 0, own.output)
  })

  test('a dump-cached realm loads and serves', async () => {
    const cacheDir = join(work, 'cache')
    const opts = { realm: 'CACHE.TEST', users: [{ name: 'carol', password: 'c-pw' }], cacheDir }
    const first = await startRealm({ ...opts, cache: true })
    started.push(first)
    assert.equal(first.fromCache, false)
    await first.close()
    const second = await startRealm({ ...opts, cache: true })
    started.push(second)
    assert.equal(second.fromCache, true)
    assert.equal((await kinit(second, 'carol', 'c-pw')).code, 0)
    const k = await run(second, 'kinit', ['-k', '-t', second.keytabPath, second.servicePrincipal])
    assert.equal(k.code, 0, k.output)
    await second.close()
  })

  test('bad options are refused without echoing a password', async () => {
    await assert.rejects(
      startRealm({ users: [{ name: 'bad name', password: 'secret-zz' }] }),
      (err: Error) => {
        assert.equal((err as { code?: string }).code, 'SASLGATE_ERR_CONFIG')
        assert.ok(!err.message.includes('secret-zz'))
        return true
      },
    )
    await assert.rejects(startRealm({ bogus: 1 } as never), { code: 'SASLGATE_ERR_CONFIG' })
    await assert.rejects(startRealm({ users: [{ name: 'x', password: 'a\nb' }] }), {
      code: 'SASLGATE_ERR_CONFIG',
    })
  })

  test('close() kills our KDCs, removes the dir, and is idempotent', async () => {
    const pids = [...realm.kdcs, ...rogue.kdcs].map((k) => k.pid)
    const dirs = [realm.dir, rogue.dir]
    await Promise.all([realm.close(), realm.close(), rogue.close()])
    await realm.close()
    for (const pid of pids) assert.equal(alive(pid), false, `KDC ${pid} still alive`)
    for (const dir of dirs) assert.equal(existsSync(dir), false, `${dir} still there`)
    await assert.rejects(realm.kdcRequestCount(), { code: 'SASLGATE_ERR_CLOSED' })
  })
})
