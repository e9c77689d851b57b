/**
 * HTTP Negotiate between the shim's initiator and the service's acceptor, against a real MIT KDC.
 *
 * GSSAPI state (KRB5_* variables, ccache) is process-wide, so every initiator runs in a child
 * process (test/support/negotiate-initiator-child.ts) that sets its own client keytab, ccache and
 * krb5.conf at runtime; the acceptor runs here with KRB5_KTNAME set at runtime by its `keytab`
 * option and its own replay cache directory.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { isSaslgateError } from '../../src/errors.js'
import { NegotiateAcceptor, type NegotiateResult } from '../../src/service/negotiate.js'
import { SessionTokens } from '../../src/service/session-token.js'
import { NegotiateInitiator } from '../../src/shim/negotiate-initiator.js'
import { type BlackholeKdc, startBlackholeKdc } from '../../src/testing/fake-kdc.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'

const HTTP = 'HTTP/saslgate.test'
const OTHER_HTTP = 'HTTP/other.test'
const FE1 = 'host/fe1.saslgate.test'
const FE2 = 'host/fe2.saslgate.test'
const INITIATOR = 'test/support/negotiate-initiator-child.ts'
const ACCEPTOR = 'test/support/negotiate-acceptor-child.ts'
/** A SPNEGO NegTokenInit that proposes Kerberos but carries no mechanism token. */
const SPNEGO_WITHOUT_MECH_TOKEN = Buffer.from(
  '601b06062b0601050502a011300fa00d300b06092a864886f712010202',
  'hex',
).toString('base64')

let realm: Realm
let hole: BlackholeKdc | undefined
let fe1: string
const kt: Record<string, string> = {}
const conf: Record<string, string> = {}
const children = new Set<ChildProcess>()
const acceptors: NegotiateAcceptor[] = []
const ENV_KEYS = ['KRB5_KTNAME', 'KRB5_CONFIG', 'KRB5RCACHEDIR', 'KRB5RCACHENAME'] as const
const savedEnv = new Map<string, string | undefined>()

interface ChildOutput {
  tokens: string[]
  ms: number[]
  error?: { code: string; message: string }
}

/**
 * Runs a support script with a JSON job and a bare environment; resolves on its first output
 * line, then kills it (a GSSAPI call lingering after a timeout keeps Node from exiting).
 */
function runChild<T>(script: string, job: object, boundMs = 20_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(job)], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.add(child)
    let out = ''
    let err = ''
    let done = false
    const finish = (fn: () => void) => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      fn()
    }
    const timer = setTimeout(
      () => finish(() => reject(new Error(`${script} gave no answer in ${boundMs} ms: ${err}`))),
      boundMs,
    )
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8')
      const nl = out.indexOf('\n')
      if (nl >= 0) finish(() => resolve(JSON.parse(out.slice(0, nl)) as T))
    })
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString('utf8')
    })
    child.on('error', (e) => finish(() => reject(e)))
    child.on('close', (code) => {
      children.delete(child)
      finish(() => reject(new Error(`${script} exited ${code} without an answer: ${err}`)))
    })
  })
}

function initiate(job: {
  service: string
  count: number
  clientKeytab: string
  ccache?: string
  krb5Config?: string
  principal?: string
  timeoutMs?: number
  mech?: 'spnego' | 'krb5'
}): Promise<ChildOutput> {
  return runChild<ChildOutput>(INITIATOR, {
    ccache: 'MEMORY:saslgate-test',
    krb5Config: conf.client,
    ...job,
  })
}

async function tokens(count: number, clientKeytab = fe1, service = 'HTTP@saslgate.test') {
  const r = await initiate({ service, count, clientKeytab })
  assert.equal(r.error, undefined, JSON.stringify(r.error))
  assert.equal(r.tokens.length, count)
  return r
}

function acceptor(options: Partial<ConstructorParameters<typeof NegotiateAcceptor>[0]> = {}) {
  const a = new NegotiateAcceptor({
    principal: HTTP,
    allow: [realm.principal(FE1)],
    keytab: kt.http,
    ...options,
  })
  acceptors.push(a)
  return a
}

function rejected(r: NegotiateResult, reason?: string): void {
  assert.equal(r.ok, false, JSON.stringify(r))
  if (!r.ok) {
    assert.equal(r.code, 'SASLGATE_ERR_NEGOTIATE_REJECTED')
    if (reason !== undefined) assert.equal(r.reason, reason, JSON.stringify(r))
  }
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)

before(async () => {
  for (const k of ENV_KEYS) savedEnv.set(k, process.env[k])
  realm = await startRealm({})
  for (const p of [HTTP, OTHER_HTTP, FE1, FE2]) await realm.kadmin(`addprinc -randkey ${p}`)
  for (const name of ['http', 'httpCopy', 'httpAgain', 'fe1', 'fe2', 'fe21']) {
    kt[name] = join(realm.dir, `${name}.keytab`)
  }
  await realm.kadmin(`ktadd -k ${kt.http} ${HTTP} ${OTHER_HTTP}`)
  await copyFile(kt.http!, kt.httpCopy!)
  await realm.kadmin(`ktadd -norandkey -k ${kt.httpAgain} ${HTTP}`)
  await realm.kadmin(`ktadd -k ${kt.fe1} ${FE1}`)
  await realm.kadmin(`ktadd -k ${kt.fe2} ${FE2}`)
  await realm.kadmin(`ktadd -norandkey -k ${kt.fe21} ${FE2} ${FE1}`)
  fe1 = kt.fe1!
  // The shim's krb5.conf: no DNS canonicalization of the service host (see negotiate-initiator.ts).
  const base = await readFile(realm.krb5ConfPath, 'utf8')
  const noDns = '[libdefaults]\n  dns_canonicalize_hostname = false\n'
  conf.client = join(realm.dir, 'client-krb5.conf')
  await writeFile(conf.client, base.replace('[libdefaults]\n', noDns))
  process.env.KRB5_CONFIG = realm.krb5ConfPath
  process.env.KRB5RCACHEDIR = realm.env.KRB5RCACHEDIR
  delete process.env.KRB5RCACHENAME
})

after(async () => {
  for (const a of acceptors) await a.close()
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  await hole?.close()
  await realm?.close()
  for (const [k, v] of savedEnv) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
})

describe('HTTP Negotiate against a real MIT KDC', () => {
  test('an allowed client is accepted with its principal; later tokens need no KDC', async (t) => {
    const before = await realm.kdcRequestCount()
    const out = await tokens(21)
    const kdcRequests = (await realm.kdcRequestCount()) - before
    // The MEMORY ccache started empty: GSSAPI got a TGT from the client keytab by itself, then
    // a service ticket; both are reused by every later token.
    assert.ok(kdcRequests >= 2 && kdcRequests <= 3, `${kdcRequests} KDC requests`)
    const a = acceptor()
    const first = await a.accept(out.tokens[0]!)
    assert.deepEqual(first.ok && first.principal, realm.principal(FE1))
    assert.ok(first.ok && typeof first.replyToken === 'string' && first.replyToken.length > 0)
    const acceptMs: number[] = []
    for (const tok of out.tokens.slice(1)) {
      const t0 = performance.now()
      const r = await a.accept(tok)
      acceptMs.push(performance.now() - t0)
      assert.equal(r.ok, true, JSON.stringify(r))
    }
    t.diagnostic(
      `initiator token(): first ${out.ms[0]!.toFixed(1)} ms (AS+TGS, ${kdcRequests} KDC requests), ` +
        `then ${mean(out.ms.slice(1)).toFixed(2)} ms mean over ${out.ms.length - 1}; ` +
        `acceptor accept(): ${mean(acceptMs).toFixed(2)} ms mean over ${acceptMs.length} ` +
        `(max ${Math.max(...acceptMs).toFixed(2)})`,
    )
    assert.equal(a.inFlight, 0)
  })

  test('a FILE ccache ends up holding the TGT got from the client keytab', async () => {
    const ccache = `FILE:${join(realm.dir, 'fe1.ccache')}`
    const out = await initiate({
      service: 'HTTP@saslgate.test',
      count: 1,
      clientKeytab: fe1,
      ccache,
    })
    assert.equal(out.error, undefined, JSON.stringify(out.error))
    const klist = spawnSync('klist', ['-c', ccache], { encoding: 'utf8', timeout: 5000 })
    assert.equal(klist.status, 0, klist.stderr)
    assert.match(klist.stdout, new RegExp(`Default principal: ${realm.principal(FE1)}`))
    assert.match(klist.stdout, new RegExp(`krbtgt/${realm.name}@${realm.name}`))
    assert.match(klist.stdout, /HTTP\/saslgate\.test@/)
    const r = await acceptor().accept(out.tokens[0]!)
    assert.equal(r.ok && r.principal, realm.principal(FE1))
  })

  test('the same token a second time is refused (replay cache)', async () => {
    const {
      tokens: [tok],
    } = await tokens(1)
    const a = acceptor()
    assert.equal((await a.accept(tok!)).ok, true)
    const again = await a.accept(tok!)
    rejected(again, 'gssapi')
    assert.match(String(!again.ok && again.detail), /replay/i)
  })

  test('a client not on the allow-list is NOT_ALLOWED (and matching is exact)', async () => {
    const out = await tokens(3, kt.fe2)
    const r = await acceptor().accept(out.tokens[0]!)
    assert.equal(r.ok, false)
    assert.ok(!r.ok && r.code === 'SASLGATE_ERR_NEGOTIATE_NOT_ALLOWED', JSON.stringify(r))
    assert.equal(!r.ok && r.principal, realm.principal(FE2))
    // case and realm matter
    const upper = acceptor({ allow: [realm.principal(FE2).toUpperCase()] })
    assert.equal((await upper.accept(out.tokens[1]!)).ok, false)
    const noRealm = acceptor({ allow: [`${FE2}@OTHER.TEST`] })
    assert.equal((await noRealm.accept(out.tokens[2]!)).ok, false)
  })

  test('the initiator picks the client principal it is told to', async () => {
    const out = await initiate({
      service: 'HTTP@saslgate.test',
      count: 2,
      clientKeytab: kt.fe21!,
      principal: realm.principal(FE1),
    })
    assert.equal(out.error, undefined, JSON.stringify(out.error))
    const r = await acceptor().accept(out.tokens[0]!)
    assert.equal(r.ok && r.principal, realm.principal(FE1))
    // without it: the first principal in the client keytab (fe2 here)
    const dflt = await tokens(1, kt.fe21)
    const d = await acceptor({ allow: [realm.principal(FE2)] }).accept(dflt.tokens[0]!)
    assert.equal(d.ok && d.principal, realm.principal(FE2))
  })

  test('garbage, empty, truncated and incomplete tokens are rejected, never thrown', async () => {
    const {
      tokens: [tok],
    } = await tokens(1)
    const a = acceptor()
    const bad: Array<[unknown, string]> = [
      ['', 'malformed'],
      ['!!!!', 'malformed'],
      ['YII', 'malformed'],
      [`${tok} `, 'malformed'],
      [`${tok}\0`, 'malformed'],
      [tok!.replace(/[+/]/g, (c) => (c === '+' ? '-' : '_')), 'malformed'], // base64url
      ['A'.repeat(70_000), 'malformed'],
      [undefined, 'malformed'],
      [42, 'malformed'],
      ['AAAA', 'gssapi'],
      [Buffer.from('hello, I am a Kerberos ticket').toString('base64'), 'gssapi'],
      [tok!.slice(0, 400), 'gssapi'],
      [tok!.slice(0, tok!.length - 8), 'gssapi'],
      [Buffer.from(tok!, 'base64').subarray(0, 300).toString('base64'), 'gssapi'],
      [SPNEGO_WITHOUT_MECH_TOKEN, 'gssapi'],
    ]
    for (const [input, reason] of bad) {
      rejected(await a.accept(input as string), reason)
    }
    // a flipped byte inside the ticket
    const raw = Buffer.from(tok!, 'base64')
    raw[raw.length - 40]! ^= 0x55
    rejected(await a.accept(raw.toString('base64')), 'gssapi')
    // the untouched token still works afterwards
    assert.equal((await a.accept(tok!)).ok, true)
  })

  test('a token for another service principal is rejected', async () => {
    const other = await tokens(2, fe1, 'HTTP@other.test')
    // other.test's key is in the keytab, so GSSAPI accepts it; the principal check refuses it
    rejected(await acceptor().accept(other.tokens[0]!), 'wrong_service')
    const any = await acceptor({ principal: '' }).accept(other.tokens[1]!)
    assert.equal(any.ok && any.principal, realm.principal(FE1), 'principal "" = any key')
    // a realm that does not match
    const { tokens: mine } = await tokens(2)
    rejected(await acceptor({ principal: `${HTTP}@OTHER.TEST` }).accept(mine[0]!), 'wrong_service')
    const hostBased = await acceptor({ principal: 'HTTP@saslgate.test' }).accept(mine[1]!)
    assert.equal(hostBased.ok, true)
    // a service whose key is not in the keytab at all
    const host = await tokens(1, fe1, realm.servicePrincipal.replace(/\/(.*)@.*$/, '@$1'))
    rejected(await acceptor({ principal: '' }).accept(host.tokens[0]!), 'gssapi')
  })

  test('raw krb5 (non-SPNEGO) tokens are accepted too', async () => {
    const out = await initiate({
      service: 'HTTP@saslgate.test',
      count: 1,
      clientKeytab: fe1,
      mech: 'krb5',
    })
    assert.equal(out.error, undefined, JSON.stringify(out.error))
    const r = await acceptor().accept(out.tokens[0]!)
    assert.equal(r.ok && r.principal, realm.principal(FE1))
  })

  test('a hung GSSAPI accept answers at its deadline; maxInFlight sheds the next at once', async () => {
    const { tokens: two } = await tokens(2)
    const fifo = join(realm.dir, 'rcache.fifo')
    const mk = spawnSync('mkfifo', [fifo], { timeout: 5000 })
    assert.equal(mk.status, 0, String(mk.stderr))
    const out = await runChild<{
      first: NegotiateResult
      firstMs: number
      second: NegotiateResult
      inFlightAfter: number
    }>(ACCEPTOR, {
      keytab: kt.http,
      rcacheName: `file2:${fifo}`,
      tokens: two,
      timeoutMs: 300,
      allow: [realm.principal(FE1)],
    })
    rejected(out.first, 'timeout')
    assert.ok(out.firstMs >= 290 && out.firstMs < 2000, `answered after ${out.firstMs} ms`)
    assert.equal(out.inFlightAfter, 1, 'the hung call still holds its pool thread')
    rejected(out.second, 'busy')
  })

  test('initiator errors: unknown service, unreachable KDC (bounded), closed', async () => {
    const unknown = await initiate({ service: 'HTTP@nosuch.test', count: 1, clientKeytab: fe1 })
    assert.equal(unknown.error?.code, 'SASLGATE_ERR_KRB5', JSON.stringify(unknown))
    hole = await startBlackholeKdc()
    const base = await readFile(conf.client!, 'utf8')
    conf.hole = join(realm.dir, 'hole-krb5.conf')
    await writeFile(
      conf.hole,
      base.replace(/kdc = 127\.0\.0\.1:\d+/g, `kdc = 127.0.0.1:${hole.port}`),
    )
    const t0 = performance.now()
    const dead = await initiate({
      service: 'HTTP@saslgate.test',
      count: 1,
      clientKeytab: fe1,
      krb5Config: conf.hole,
      ccache: 'MEMORY:empty',
      timeoutMs: 500,
    })
    const ms = performance.now() - t0
    assert.equal(dead.error?.code, 'SASLGATE_ERR_DEADLINE', JSON.stringify(dead))
    assert.ok(ms < 5000, `child answered after ${ms} ms`)
    assert.ok(hole.udpPacketsReceived + hole.tcpConnections > 0)
    // closed (this process has no client keytab: close is checked before any GSSAPI call)
    const i = new NegotiateInitiator({ service: 'HTTP@saslgate.test' })
    await i.close()
    await assert.rejects(i.token(), (e) => isSaslgateError(e, 'SASLGATE_ERR_CLOSED'))
  })

  test('bad options are configuration errors; a closed acceptor rejects', async () => {
    const config = (e: unknown) => isSaslgateError(e, 'SASLGATE_ERR_CONFIG')
    const allow = [realm.principal(FE1)]
    assert.throws(() => new NegotiateAcceptor({ allow: [] }), config)
    assert.throws(() => new NegotiateAcceptor({ allow: ['host/fe1.saslgate.test'] }), config)
    assert.throws(() => new NegotiateAcceptor({ allow, principal: 'HTTP' }), config)
    assert.throws(() => new NegotiateAcceptor({ allow, principal: 'a/b/c@R' }), config)
    assert.throws(() => new NegotiateAcceptor({ allow, timeoutMs: 0 }), config)
    assert.throws(() => new NegotiateInitiator({ service: 'saslgate.test' }), config)
    assert.throws(() => new NegotiateInitiator({ service: 'HTTP@x', principal: 'nope' }), config)
    const a = acceptor()
    await a.close()
    rejected(await a.accept('AAAA'), 'closed')
  })
})

describe('session tokens keyed by the acceptor keytab', () => {
  test('two copies (and a re-export) of one keytab interoperate; another keytab does not', async () => {
    const a = await SessionTokens.fromKeytab(kt.http!, { principal: HTTP })
    const copy = await SessionTokens.fromKeytab(`FILE:${kt.httpCopy}`, { principal: HTTP })
    const again = await SessionTokens.fromKeytab(kt.httpAgain!, { principal: HTTP })
    const other = await SessionTokens.fromKeytab(kt.fe1!)
    const whole = await SessionTokens.fromKeytab(kt.http!) // both principals: another key
    const now = Date.now()
    const { token } = a.issue(realm.principal(FE1), 60_000, now)
    assert.equal(copy.verify(token, now), realm.principal(FE1))
    // ktadd -norandkey wrote the same keys with other timestamps: not byte-equal, same key
    const [x, y] = await Promise.all([readFile(kt.http!), readFile(kt.httpAgain!)])
    assert.equal(x.equals(y), false)
    assert.equal(again.verify(token, now), realm.principal(FE1))
    assert.equal(other.verify(token, now), null)
    assert.equal(whole.verify(token, now), null)
    // a key rotation (new kvno) gives another key
    await realm.kadmin(`ktadd -k ${kt.httpCopy} ${HTTP}`)
    const rotated = await SessionTokens.fromKeytab(kt.httpCopy!, { principal: HTTP })
    assert.equal(rotated.verify(token, now), null)
  })
})
