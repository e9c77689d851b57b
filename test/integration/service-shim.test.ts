/**
 * The service and the shim end to end: testsaslauthd -> `saslgate shim` (unix socket) ->
 * `saslgate serve` (RPC over loopback) -> a real MIT KDC. Caller authentication by token,
 * by client certificate (mTLS), and the failure modes the shim must survive: the service
 * stopped, frozen, or one of two replicas killed under load.
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createClient } from '@connectrpc/connect'
import { createGrpcTransport } from '@connectrpc/connect-node'
import { AuthService, Decision } from '../../src/gen/saslgate/v1/auth_pb.js'
import { SessionTokens } from '../../src/service/session-token.js'
import { saslauthdCheck } from '../../src/storm/saslauthd-client.js'
import {
  mutualTlsArgs,
  realmUsers,
  runBounded,
  startService,
  startShim,
} from '../../src/testing/deployment.js'
import { startPki, type TestPki } from '../../src/testing/pki.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { SASLGATE_BIN as BIN, type SaslgateProcess } from '../../src/testing/saslgate-process.js'
import { TESTSASLAUTHD } from '../support/binaries.js'
import { NEEDS_TESTSASLAUTHD } from '../support/requires.js'

const ALICE = 'alice-Shim-Secret-1'
const BOB = 'bob-Shim-Secret-22'
const WRONG = 'wrong-Shim-Guess-333'
const TOKEN = 'saslgate-test-token-0123456789abcdef0123456789'
const SECRETS = [ALICE, BOB, WRONG, TOKEN]

let realm: Realm
let pki: TestPki
let dir: string
let tokenFile: string
let seq = 0
const procs: SaslgateProcess[] = []
const children = new Set<ChildProcess>()

before(async () => {
  realm = await startRealm({ users: realmUsers({ alice: ALICE, bob: BOB }) })
  pki = await startPki()
  dir = await mkdtemp(join(tmpdir(), 'saslgate-service-shim-'))
  tokenFile = join(dir, 'token')
  await writeFile(tokenFile, `# the shims' token\n${TOKEN}\n`, { mode: 0o600 })
})

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGCONT')
    } catch {}
    await p.stop(5000)
  }
  await realm?.close()
  await pki?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

async function service(args: string[] = [], env: Record<string, string> = {}) {
  const svc = await startService({
    realm,
    args: ['--set', 'log.level=debug', ...args],
    env,
    keepAllOutput: true,
  })
  procs.push(svc.proc)
  return svc
}

async function shim(upstreams: string[], args: string[] = [], env: Record<string, string> = {}) {
  const socket = join(dir, `mux${++seq}`)
  const p = await startShim({
    socket,
    upstream: upstreams,
    args: ['--set', 'log.level=debug', ...args],
    env,
    keepAllOutput: true,
  })
  procs.push(p)
  return { proc: p, socket }
}

const run = (file: string, args: string[], env?: NodeJS.ProcessEnv) =>
  runBounded(file, args, { env, children })

const testsaslauthd = (socket: string, user: string, password: string) =>
  run(TESTSASLAUTHD as string, ['-u', user, '-p', password, '-s', 'imap', '-f', socket])

async function assertGoodAndBad(socket: string): Promise<void> {
  const good = await testsaslauthd(socket, 'alice', ALICE)
  assert.equal(good.code, 0, good.stdout + good.stderr)
  assert.match(good.stdout, /^0: OK/)
  const wrong = await testsaslauthd(socket, 'alice', WRONG)
  assert.match(wrong.stdout, /^0: NO/)
  const unknown = await testsaslauthd(socket, 'nosuchuser', WRONG)
  assert.match(unknown.stdout, /^0: NO/)
  assert.equal(wrong.stdout, unknown.stdout)
}

/** Runs `fn`; on failure, the processes' last output lines join the error (debugging CI). */
async function explained(ps: SaslgateProcess[], fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch (err) {
    const tails = ps.map((p) => p.output().split('\n').slice(-15).join('\n')).join('\n---\n')
    ;(err as Error).message += `\n--- saslgate output ---\n${tails}`
    throw err
  }
}

function assertNoSecrets(...procsToCheck: SaslgateProcess[]): void {
  for (const p of procsToCheck) {
    const out = p.output()
    for (const s of SECRETS) assert.ok(!out.includes(s), 'a secret appeared in saslgate output')
  }
}

// Only the tests that run testsaslauthd skip without it (and fail in CI); the rest always run.
const skip = NEEDS_TESTSASLAUTHD

describe('shim -> service -> real KDC', () => {
  test('bearer token over plain HTTP: good -> OK, wrong and unknown -> NO', { skip }, async () => {
    const svc = await service(['--token-file', tokenFile])
    const sh = await shim([`http://127.0.0.1:${svc.port}`], ['--token-file', tokenFile])
    await assertGoodAndBad(sh.socket)
    assertNoSecrets(svc.proc, sh.proc)
    await sh.proc.stop()
    await svc.proc.stop()
  })

  test('the contract is curl-able (Connect JSON over HTTP/1.1) and speaks gRPC over h2c', async () => {
    const svc = await service(['--token-file', tokenFile])
    const url = `http://127.0.0.1:${svc.port}/saslgate.v1.AuthService/Authenticate`
    const body = JSON.stringify({
      login: 'bob',
      password: Buffer.from(BOB).toString('base64'),
      service: 'imap',
    })
    const curl = await run('curl', [
      '-sS',
      '--max-time',
      '5',
      '-H',
      'content-type: application/json',
      '-H',
      `authorization: Bearer ${TOKEN}`,
      '--data-binary',
      body,
      url,
    ])
    assert.equal(curl.code, 0, curl.stderr)
    assert.deepEqual(JSON.parse(curl.stdout), { decision: 'DECISION_OK' })

    const grpc = createClient(
      AuthService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${svc.port}` }),
    )
    const res = await grpc.authenticate(
      { login: 'bob', password: Buffer.from(WRONG), service: 'imap' },
      { headers: { authorization: `Bearer ${TOKEN}` }, timeoutMs: 5000 },
    )
    assert.equal(res.decision, Decision.INVALID)
    await svc.proc.stop()
  })

  test('unauthenticated and wrongly authenticated RPCs never reach the pipeline', async () => {
    const svc = await service(['--token-file', tokenFile])
    const url = `http://127.0.0.1:${svc.port}/saslgate.v1.AuthService/Authenticate`
    const body = JSON.stringify({ login: 'alice', password: Buffer.from(ALICE).toString('base64') })
    for (const auth of [
      undefined,
      'Bearer not-the-token-not-the-token-not-the-token',
      `Basic ${TOKEN}`,
    ]) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body,
        signal: AbortSignal.timeout(5000),
      })
      assert.equal(res.status, 401)
      const json = (await res.json()) as { code: string }
      assert.equal(json.code, 'unauthenticated')
    }
    const grpc = createClient(
      AuthService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${svc.port}` }),
    )
    await assert.rejects(
      grpc.authenticate({ login: 'alice', password: Buffer.from(ALICE) }, { timeoutMs: 5000 }),
      (err: Error) => /unauthenticated/i.test(err.message),
    )
    // Nothing got decided: no decision line in the service's debug log.
    assert.doesNotMatch(svc.proc.output(), /"msg":"decision"|"decision":/)
    // Health says nothing about users and needs no credentials.
    const ready = await fetch(`http://127.0.0.1:${svc.port}/readyz`)
    assert.equal(ready.status, 200)
    assert.deepEqual(await ready.json(), { status: 'ready' })
    assertNoSecrets(svc.proc)
    await svc.proc.stop()
  })

  test('mutual TLS: a client certificate from the CA authenticates; another CA does not', {
    skip,
  }, async () => {
    const client = await pki.issueClient('fe1.saslgate.test')
    const foreign = await pki.issueClient('fe1.saslgate.test', { foreign: true })
    const svc = await service(mutualTlsArgs(pki, 'fe1.saslgate.test'))
    assert.doesNotMatch(svc.proc.output(), /any certificate signed by service\.clientCa/)
    const url = `https://127.0.0.1:${svc.port}`
    const sh = await shim(
      [url],
      ['--ca', pki.ca, '--tls-cert', client.cert, '--tls-key', client.key],
    )
    await assertGoodAndBad(sh.socket)
    // A certificate from another CA: the shim answers NO (the service refused it), at once.
    const bad = await shim(
      [url],
      ['--ca', pki.ca, '--tls-cert', foreign.cert, '--tls-key', foreign.key],
    )
    const r = await testsaslauthd(bad.socket, 'alice', ALICE)
    assert.match(r.stdout, /^0: NO/)
    assert.match(bad.proc.output(), /"outcome":"unauthenticated"/)
    // The same with curl: no certificate, or a foreign one -> 401 unauthenticated.
    const body = JSON.stringify({ login: 'alice', password: Buffer.from(ALICE).toString('base64') })
    for (const extra of [[], ['--cert', foreign.cert, '--key', foreign.key]]) {
      const c = await run('curl', [
        '-sS',
        '--max-time',
        '5',
        '--cacert',
        pki.ca,
        ...extra,
        '-w',
        '\n%{http_code}',
        '-H',
        'content-type: application/json',
        '--data-binary',
        body,
        `${url}/saslgate.v1.AuthService/Authenticate`,
      ])
      const [json, status] = c.stdout.split('\n')
      assert.equal(status, '401', c.stdout + c.stderr)
      assert.equal(JSON.parse(json as string).code, 'unauthenticated')
    }
    // A shim that does not trust the service's CA refuses to talk to it.
    const untrusting = await shim(
      [url],
      ['--ca', pki.otherCa, '--tls-cert', client.cert, '--tls-key', client.key],
    )
    const decisions = () => svc.proc.output().match(/"msg":"decision"/g)?.length ?? 0
    const decided = decisions()
    assert.match((await testsaslauthd(untrusting.socket, 'alice', ALICE)).stdout, /^0: NO/)
    // The NO is the shim's TLS verification refusing the service's certificate: the failed
    // attempt names a certificate-chain error, and the service decided nothing.
    const failure = untrusting.proc
      .output()
      .split('\n')
      .find((l) => l.includes('"msg":"upstream attempt failed"'))
    assert.ok(failure !== undefined, untrusting.proc.output())
    assert.match(
      failure,
      /"cause":"(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)"/,
    )
    assert.equal(decisions(), decided, 'no request reached the service pipeline')
    assertNoSecrets(svc.proc, sh.proc, bad.proc, untrusting.proc)
    for (const p of [untrusting, bad, sh]) await p.proc.stop()
    await svc.proc.stop()
    // No service.clientNames: any certificate of the CA is a caller, and the start says so.
    const open = await service(mutualTlsArgs(pki, 'x').slice(0, -2))
    assert.match(
      open.proc.output(),
      /"option":"service\.clientNames".*any certificate signed by service\.clientCa is accepted/,
    )
    await open.proc.stop()
  })

  test('Negotiate: the shim authenticates with its host keytab, an allow-list decides', {
    skip,
  }, async () => {
    const http = 'HTTP/saslgate.test'
    const fe1 = 'host/fe1.saslgate.test'
    const fe2 = 'host/fe2.saslgate.test'
    for (const p of [http, fe1, fe2]) await realm.kadmin(`addprinc -randkey ${p}`)
    const httpKeytab = join(dir, 'http.keytab')
    const fe1Keytab = join(dir, 'fe1.keytab')
    const fe2Keytab = join(dir, 'fe2.keytab')
    await realm.kadmin(`ktadd -k ${httpKeytab} ${http}`)
    await realm.kadmin(`ktadd -k ${fe1Keytab} ${fe1}`)
    await realm.kadmin(`ktadd -k ${fe2Keytab} ${fe2}`)
    const svc = await service([
      '--set',
      'service.negotiate=true',
      '--set',
      `service.negotiatePrincipal=${http}`,
      '--set',
      `service.negotiateKeytab=${httpKeytab}`,
      '--set',
      `service.negotiateAllow=${fe1}@${realm.name}`,
    ])
    const upstream = `http://127.0.0.1:${svc.port}`
    const kenv = { KRB5_CONFIG: realm.krb5ConfPath }
    const sh = await shim(
      [upstream],
      [
        '--set',
        'shim.negotiateService=HTTP@saslgate.test',
        '--set',
        `shim.clientKeytab=${fe1Keytab}`,
      ],
      kenv,
    )
    await explained([svc.proc, sh.proc], () => assertGoodAndBad(sh.socket))
    // One exchange for many logins: a single session token was issued.
    for (let i = 0; i < 5; i++)
      assert.equal((await saslauthdCheck(sh.socket, 'alice', ALICE)).ok, true)
    const issued = svc.proc.output().match(/session token issued/g) ?? []
    assert.equal(issued.length, 1, 'one Negotiate exchange, not one per login')
    assert.match(svc.proc.output(), new RegExp(`"principal":"${fe1}@${realm.name}"`))
    // A front-end whose principal is not on the allow-list gets NO for everything.
    const other = await shim(
      [upstream],
      [
        '--set',
        'shim.negotiateService=HTTP@saslgate.test',
        '--set',
        `shim.clientKeytab=${fe2Keytab}`,
      ],
      kenv,
    )
    assert.match((await testsaslauthd(other.socket, 'alice', ALICE)).stdout, /^0: NO/)
    assert.match(svc.proc.output(), /"reason":"not_allowed"/)
    // A forged session token is refused like no token.
    const forged = await fetch(`${upstream}/saslgate.v1.AuthService/Authenticate`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer sgs1.eyJwIjoieCJ9.AAAA',
      },
      body: '{}',
      signal: AbortSignal.timeout(5000),
    })
    assert.equal(forged.status, 401)
    // A session token is checked against negotiateAllow on every use, not only when issued.
    // Minted here with the key every replica derives from the keytab (as a replica would).
    const keyed = await SessionTokens.fromKeytab(httpKeytab, { principal: http })
    const fe1Token = keyed.issue(`${fe1}@${realm.name}`, 60_000).token
    const fe2Token = keyed.issue(`${fe2}@${realm.name}`, 60_000).token
    const rpcWith = (port: number, token: string) =>
      fetch(`http://127.0.0.1:${port}/saslgate.v1.AuthService/Authenticate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ login: 'alice', password: Buffer.from(ALICE).toString('base64') }),
        signal: AbortSignal.timeout(5000),
      })
    const allowed = await rpcWith(svc.port, fe1Token)
    assert.equal(allowed.status, 200, 'control: the minted token is one the service accepts')
    assert.equal(((await allowed.json()) as { decision: string }).decision, 'DECISION_OK')
    assert.equal((await rpcWith(svc.port, fe2Token)).status, 401, 'signed, but not on the list')
    // fe1 taken off the list (a replica restarted with the new config): its token is refused.
    const removed = await service([
      '--set',
      'service.negotiate=true',
      '--set',
      `service.negotiatePrincipal=${http}`,
      '--set',
      `service.negotiateKeytab=${httpKeytab}`,
      '--set',
      `service.negotiateAllow=${fe2}@${realm.name}`,
    ])
    const refused = await rpcWith(removed.port, fe1Token)
    assert.equal(refused.status, 401)
    assert.equal(((await refused.json()) as { code: string }).code, 'unauthenticated')
    assert.equal((await rpcWith(removed.port, fe2Token)).status, 200, 'fe2 now is on the list')
    // And the shim holding fe1's session token gets NO from it (it negotiates again: not allowed).
    const moved = await shim(
      [`http://127.0.0.1:${removed.port}`],
      [
        '--set',
        'shim.negotiateService=HTTP@saslgate.test',
        '--set',
        `shim.clientKeytab=${fe1Keytab}`,
      ],
      kenv,
    )
    assert.match((await testsaslauthd(moved.socket, 'alice', ALICE)).stdout, /^0: NO/)
    await moved.proc.stop()
    await removed.proc.stop()
    assertNoSecrets(svc.proc, sh.proc, other.proc)
    const token = /sgs1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/
    for (const p of [svc.proc, sh.proc])
      assert.doesNotMatch(p.output(), token, 'a session token was logged')
    await other.proc.stop()
    await sh.proc.stop()
    await svc.proc.stop()
  })

  test('service stopped: the shim answers NO within its deadline, not a hang or a socket error', async () => {
    const svc = await service(['--token-file', tokenFile])
    const sh = await shim(
      [`http://127.0.0.1:${svc.port}`],
      ['--token-file', tokenFile, '--set', 'shim.deadlineMs=1500'],
    )
    assert.equal((await saslauthdCheck(sh.socket, 'alice', ALICE)).ok, true)
    await svc.proc.stop()
    for (let i = 0; i < 5; i++) {
      const r = await saslauthdCheck(sh.socket, 'alice', ALICE, { timeoutMs: 5000 })
      assert.equal(r.ok, false)
      assert.equal(r.timedOut, false)
      assert.equal(r.error, undefined)
      assert.match(r.reply, /^NO/)
      assert.ok(r.latencyMs < 1600, `answered after ${r.latencyMs} ms`)
    }
    await sh.proc.stop()
  })

  test('service frozen (SIGSTOP): NO at the shim deadline, then OK again once it thaws', async () => {
    const svc = await service(['--token-file', tokenFile])
    const sh = await shim(
      [`http://127.0.0.1:${svc.port}`],
      ['--token-file', tokenFile, '--set', 'shim.deadlineMs=800'],
    )
    assert.equal((await saslauthdCheck(sh.socket, 'alice', ALICE)).ok, true)
    process.kill(svc.proc.pid, 'SIGSTOP')
    try {
      const rs = await Promise.all(
        Array.from({ length: 5 }, () =>
          saslauthdCheck(sh.socket, 'alice', ALICE, { timeoutMs: 5000 }),
        ),
      )
      for (const r of rs) {
        assert.match(r.reply, /^NO/)
        assert.ok(r.latencyMs >= 750 && r.latencyMs < 1300, `answered after ${r.latencyMs} ms`)
      }
    } finally {
      process.kill(svc.proc.pid, 'SIGCONT')
    }
    let ok = false
    for (let i = 0; i < 20 && !ok; i++) {
      ok = (await saslauthdCheck(sh.socket, 'alice', ALICE)).ok
      if (!ok) await new Promise((r) => setTimeout(r, 250))
    }
    assert.ok(ok, 'logins work again after the service thaws (ejection ends, no restart)')
    await sh.proc.stop()
    await svc.proc.stop()
  })

  test('two replicas, one killed mid-load: no wrong answer, logins continue', async () => {
    const a = await service(['--token-file', tokenFile])
    const b = await service(['--token-file', tokenFile])
    const sh = await shim(
      [`http://127.0.0.1:${a.port}`, `http://127.0.0.1:${b.port}`],
      ['--token-file', tokenFile],
    )
    // Warm both replicas' caches so the load measures the hop, not the KDC.
    for (let i = 0; i < 6; i++) await saslauthdCheck(sh.socket, 'alice', ALICE)
    const tally = {
      goodOk: 0,
      goodNo: 0,
      badOk: 0,
      badNo: 0,
      afterKillGoodOk: 0,
      afterKillGoodNo: 0,
    }
    let killedAt = Number.POSITIVE_INFINITY
    const endAt = performance.now() + 4000
    const worker = async (n: number) => {
      for (let i = 0; i < 2000 && performance.now() < endAt; i++) {
        const good = (i + n) % 4 !== 0
        const r = await saslauthdCheck(sh.socket, good ? 'alice' : 'bob', good ? ALICE : WRONG)
        const after = performance.now() > killedAt + 500
        if (good) {
          if (r.ok) tally.goodOk++
          else tally.goodNo++
          if (after) r.ok ? tally.afterKillGoodOk++ : tally.afterKillGoodNo++
        } else if (r.ok) tally.badOk++
        else tally.badNo++
      }
    }
    const load = Promise.all(Array.from({ length: 8 }, (_, n) => worker(n)))
    await new Promise((r) => setTimeout(r, 1500))
    killedAt = performance.now()
    await a.proc.kill()
    await load
    assert.equal(tally.badOk, 0, 'a wrong password was let in')
    assert.ok(tally.afterKillGoodOk > 50, `logins continued: ${JSON.stringify(tally)}`)
    assert.equal(
      tally.afterKillGoodNo,
      0,
      `good logins refused after the kill: ${JSON.stringify(tally)}`,
    )
    assert.ok(
      tally.goodNo <= 8,
      `at most the in-flight requests of the killed replica fail: ${JSON.stringify(tally)}`,
    )
    assertNoSecrets(b.proc, sh.proc)
    await sh.proc.stop()
    await b.proc.stop()
  })

  test('config errors name the option and exit 78', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['serve', '--listen', '127.0.0.1:notaport'], /service\.listen/],
      [['serve', '--listen', '127.0.0.1:0'], /service\.tokenFile/],
      [
        ['serve', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'missing')],
        /service\.tokenFile.*cannot read/,
      ],
      [['serve', '--listen', '127.0.0.1:0', '--client-ca', pki.ca], /service\.clientCa.*TLS/],
      // Plain HTTP on an address other hosts can reach needs service.insecure.
      [['serve', '--listen', '0.0.0.0:0', '--token-file', tokenFile], /service\.insecure/],
      [['serve', '--listen', '[::]:0', '--token-file', tokenFile], /service\.insecure/],
      [
        [
          'serve',
          '--listen',
          '127.0.0.1:0',
          '--token-file',
          tokenFile,
          '--set',
          'service.negotiate=true',
          '--set',
          `service.negotiateAllow=host/fe1.saslgate.test@${realm.name}`,
        ],
        /service\.negotiatePrincipal/,
      ],
      [
        [
          'shim',
          '--socket',
          join(dir, 'x'),
          '--upstream',
          'http://192.0.2.1:1',
          '--token-file',
          tokenFile,
        ],
        /shim\.insecure/,
      ],
      [
        [
          'shim',
          '--socket',
          join(dir, 'x'),
          '--upstream',
          'https://127.0.0.1:1,http://saslgate.example.org:8443',
          '--token-file',
          tokenFile,
        ],
        /shim\.insecure.*http:\/\/saslgate\.example\.org:8443/,
      ],
      [['shim', '--socket', join(dir, 'x'), '--token-file', tokenFile], /shim\.upstreams/],
      [
        ['shim', '--socket', join(dir, 'x'), '--upstream', 'ftp://x', '--token-file', tokenFile],
        /shim\.upstreams/,
      ],
      [['shim', '--socket', join(dir, 'x'), '--upstream', 'http://127.0.0.1:1'], /shim\.tokenFile/],
      [
        [
          'shim',
          '--socket',
          join(dir, 'x'),
          '--upstream',
          'http://127.0.0.1:1',
          '--token-file',
          tokenFile,
          '--set',
          'shim.deadlineMs=5000',
        ],
        /shim\.deadlineMs/,
      ],
    ]
    for (const [args, pattern] of cases) {
      const r = await run(process.execPath, [BIN, ...args], {
        PATH: process.env.PATH,
        ...realm.env,
        // a keytab without host/<this machine> stops the start first (exit 78 as well)
        SASLGATE_KERBEROS_VERIFY_PRINCIPAL: realm.servicePrincipal,
      })
      assert.equal(r.code, 78, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, pattern, args.join(' '))
    }
    const short = join(dir, 'short-token')
    await writeFile(short, 'too-short\n')
    const r = await run(
      process.execPath,
      [BIN, 'serve', '--listen', '127.0.0.1:0', '--token-file', short],
      {
        PATH: process.env.PATH,
        ...realm.env,
        SASLGATE_KERBEROS_VERIFY_PRINCIPAL: realm.servicePrincipal,
      },
    )
    assert.equal(r.code, 78)
    assert.match(r.stderr, /service\.tokenFile.*shorter than 32/)
    assert.ok(!r.stderr.includes('too-short'), 'the token itself is not echoed')
  })

  test('service.insecure and shim.insecure: plain HTTP to the network starts only when asked, and says so', async () => {
    // The last --listen wins: every address of the host, plain HTTP.
    const svc = await service([
      '--token-file',
      tokenFile,
      '--listen',
      '0.0.0.0:0',
      '--set',
      'service.insecure=true',
    ])
    assert.match(svc.proc.output(), /"option":"service\.insecure".*in the clear/)
    await svc.proc.stop()
    const loop = await service(['--token-file', tokenFile])
    assert.doesNotMatch(loop.proc.output(), /service\.insecure/, 'loopback needs no option')
    await loop.proc.stop()
    const sh = await shim(
      ['http://192.0.2.1:1'],
      ['--token-file', tokenFile, '--set', 'shim.insecure=true'],
    )
    assert.match(sh.proc.output(), /"option":"shim\.insecure".*in the clear/)
    await sh.proc.stop()
  })
})
