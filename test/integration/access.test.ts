/**
 * Who may ask at all.
 *
 * The saslauthd socket: its mode and group are what the configuration says
 * (`saslauthd.socketMode`, `saslauthd.socketGroup`, by flag or environment, single host and
 * shim), and the kernel enforces them: a local user outside the group cannot connect, a
 * member can; the saslauthd layout (socket 0777 in a root:sasl 0710 directory) keeps
 * non-members out the same way. Clients run as `nobody` through setpriv(1).
 *
 * The RPC: what service-shim.test.ts does not already show (no credentials, a wrong token,
 * a certificate from another CA are there): the shim's binary path with a wrong, truncated or
 * extended token; a certificate from the right CA whose name is not allowed; and health and
 * metrics endpoints, open to anyone, that name no user after logins.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { accessSync, chmodSync, chownSync, constants, readFileSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { create, toBinary } from '@bufbuild/protobuf'
import { AuthenticateRequestSchema } from '../../src/gen/saslgate/v1/auth_pb.js'
import { encodeRequest } from '../../src/saslauthd/codec.js'
import { saslauthdCheck } from '../../src/storm/saslauthd-client.js'
import {
  mutualTlsArgs,
  OTEL_OFF,
  realmUsers,
  startService,
  startShim,
  startSingleHost,
  writeTokenFile,
} from '../../src/testing/deployment.js'
import { startPki, type TestPki } from '../../src/testing/pki.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import type { SaslgateProcess } from '../../src/testing/saslgate-process.js'
import { needs } from '../support/requires.js'

const TOKEN = 'saslgate-access-token-0123456789abcdef0123456789'
const ALICE = 'Access-alice-pw-1'
const CAROL = 'Access-carol-pw-3'
const NOBODY = 65534

/** gid of the `sasl` group (Debian's sasl2-bin creates it), or undefined. */
function groupId(name: string): number | undefined {
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`))
  return line === undefined ? undefined : Number(line.split(':')[2])
}
const SASL_GID = groupId('sasl')
const NO_SASL_GROUP = needs(SASL_GID === undefined && 'no sasl group (Debian package sasl2-bin)')

function canSwitchUser(): boolean {
  if (process.getuid?.() !== 0) return false
  try {
    accessSync('/usr/bin/setpriv', constants.X_OK)
    return true
  } catch {
    return false
  }
}

let realm: Realm
let pki: TestPki
let dir: string
let tokenFile: string
const procs: SaslgateProcess[] = []
let seq = 0

before(async () => {
  realm = await startRealm({ users: realmUsers({ alice: ALICE, carol: CAROL }) })
  pki = await startPki()
  dir = await mkdtemp(join(tmpdir(), 'saslgate-access-'))
  chmodSync(dir, 0o755) // other users may traverse it; each test's own directory decides
  tokenFile = writeTokenFile(dir, TOKEN)
})

after(async () => {
  for (const p of procs) await p.stop(3000)
  await realm?.close()
  await pki?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

async function serveSocket(socket: string, args: string[] = [], env: Record<string, string> = {}) {
  const p = await startSingleHost({ realm, socket, args, env: { ...OTEL_OFF, ...env } })
  procs.push(p)
  return p
}

/**
 * One saslauthd request from another user: `setpriv` drops to uid/gid nobody with the given
 * supplementary groups. Resolves to the reply text, or the errno of the connect (EACCES).
 */
function checkAs(groups: number[], socket: string, login: string, password: string) {
  const frame = encodeRequest({ login, password, service: 'imap', realm: '' }).toString('hex')
  const script = `
    const s = require('node:net').connect(${JSON.stringify(socket)})
    let buf = Buffer.alloc(0)
    s.on('connect', () => s.end(Buffer.from('${frame}', 'hex')))
    s.on('data', (d) => { buf = Buffer.concat([buf, d]) })
    s.on('error', (e) => { process.stdout.write(e.code); process.exit(0) })
    s.on('close', () => { process.stdout.write(buf.subarray(2).toString('latin1')); process.exit(0) })
    setTimeout(() => { process.stdout.write('TIMEOUT'); process.exit(0) }, 5000).unref()
  `
  const groupArgs = groups.length > 0 ? [`--groups=${groups.join(',')}`] : ['--clear-groups']
  return new Promise<string>((resolve, reject) => {
    execFile(
      '/usr/bin/setpriv',
      [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, ...groupArgs, process.execPath, '-e', script],
      { timeout: 10_000, env: { PATH: process.env.PATH } },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message} ${stderr}`)) : resolve(stdout),
    )
  })
}

describe('the saslauthd socket: permissions as configured, enforced by the kernel', () => {
  test('single host: saslauthd.socketMode and socketGroup by flag; mode by environment', {
    skip: NO_SASL_GROUP,
  }, async () => {
    const a = join(dir, `mux${++seq}`)
    const pa = await serveSocket(a, [
      '--set',
      'saslauthd.socketMode=0660',
      '--set',
      'saslauthd.socketGroup=sasl',
    ])
    const st = statSync(a)
    assert.ok(st.isSocket())
    assert.equal((st.mode & 0o7777).toString(8), '660')
    assert.equal(st.gid, SASL_GID)
    const b = join(dir, `mux${++seq}`)
    await serveSocket(b, [], {
      SASLGATE_SASLAUTHD_SOCKET_MODE: '0600',
      SASLGATE_SASLAUTHD_SOCKET_GROUP: String(SASL_GID),
    })
    assert.equal((statSync(b).mode & 0o7777).toString(8), '600')
    assert.equal(statSync(b).gid, SASL_GID)
    // The socket answers root (the owner) as usual.
    assert.equal((await saslauthdCheck(a, 'alice', ALICE)).ok, true)
    await pa.stop()
  })

  test('shim: the same options, the same result', {
    skip: NO_SASL_GROUP,
  }, async () => {
    const svc = await startService({ realm, tokenFile })
    procs.push(svc.proc)
    const socket = join(dir, `mux${++seq}`)
    const sh = await startShim({
      socket,
      upstream: svc.url,
      tokenFile,
      args: ['--set', 'saslauthd.socketMode=0640', '--set', 'saslauthd.socketGroup=sasl'],
    })
    procs.push(sh)
    assert.equal((statSync(socket).mode & 0o7777).toString(8), '640')
    assert.equal(statSync(socket).gid, SASL_GID)
    assert.equal((await saslauthdCheck(socket, 'alice', ALICE)).ok, true)
  })

  test('socket 0660 root:sasl: a local user outside the group cannot connect, a member can', {
    skip: NO_SASL_GROUP || needs(!canSwitchUser() && 'needs root and setpriv (util-linux)'),
  }, async () => {
    const socket = join(dir, `mux${++seq}`)
    await serveSocket(socket, [
      '--set',
      'saslauthd.socketMode=0660',
      '--set',
      'saslauthd.socketGroup=sasl',
    ])
    assert.equal(await checkAs([], socket, 'alice', ALICE), 'EACCES')
    assert.equal(await checkAs([SASL_GID as number], socket, 'alice', ALICE), 'OK')
    assert.match(await checkAs([SASL_GID as number], socket, 'alice', 'wrong'), /^NO/)
  })

  test('the saslauthd layout (socket 0777 in a root:sasl 0710 directory) keeps non-members out', {
    skip: NO_SASL_GROUP || needs(!canSwitchUser() && 'needs root and setpriv (util-linux)'),
  }, async () => {
    const runDir = join(dir, `run${++seq}`)
    await mkdir(runDir)
    chownSync(runDir, 0, SASL_GID as number)
    chmodSync(runDir, 0o710)
    const socket = join(runDir, 'mux')
    await serveSocket(socket) // default mode 0777, like saslauthd
    assert.equal((statSync(socket).mode & 0o777).toString(8), '777')
    assert.equal(await checkAs([], socket, 'alice', ALICE), 'EACCES')
    assert.equal(await checkAs([SASL_GID as number], socket, 'alice', ALICE), 'OK')
  })
})

describe('the RPC: refusals service-shim.test.ts does not cover', () => {
  let base: string

  before(async () => {
    const svc = await startService({
      realm,
      tokenFile,
      args: ['--set', 'log.level=debug'],
      keepAllOutput: true,
    })
    procs.push(svc.proc)
    base = svc.url
  })

  const binary = (headers: Record<string, string>) =>
    fetch(`${base}/saslgate.v1.AuthService/Authenticate`, {
      method: 'POST',
      headers: { 'content-type': 'application/proto', 'connect-protocol-version': '1', ...headers },
      body: toBinary(
        AuthenticateRequestSchema,
        create(AuthenticateRequestSchema, { login: 'alice', password: Buffer.from(ALICE) }),
      ),
      signal: AbortSignal.timeout(5000),
    })

  test("the shim's binary path: only the exact token gets an answer", async () => {
    const good = await binary({ authorization: `Bearer ${TOKEN}` })
    assert.equal(good.status, 200)
    for (const authorization of [
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.toUpperCase()}`,
      `Bearer  `,
      'Bearer',
      `Token ${TOKEN}`,
      `${TOKEN}`,
      `Bearer ${TOKEN}, Bearer ${TOKEN}`,
    ]) {
      const r = await binary({ authorization })
      assert.equal(r.status, 401, `${authorization.replace(TOKEN, '<token>')}: ${r.status}`)
      const json = (await r.json()) as { code: string }
      assert.equal(json.code, 'unauthenticated')
    }
  })

  test('health and metrics, open to anyone, name no user and no password', async () => {
    // Logins first, so there is something to leak: each one decided as it should be.
    const metricsBefore = await (await fetch(`${base}/metrics`)).text()
    for (const [login, pw, want] of [
      ['alice', ALICE, 'DECISION_OK'],
      ['carol', 'carol-wrong-guess', 'DECISION_INVALID'],
      ['zed-nosuch-user', 'zed-guess', 'DECISION_INVALID'],
    ] as const) {
      const r = await fetch(`${base}/saslgate.v1.AuthService/Authenticate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ login, password: Buffer.from(pw).toString('base64') }),
        signal: AbortSignal.timeout(5000),
      })
      assert.equal(r.status, 200, login)
      assert.equal(((await r.json()) as { decision: string }).decision, want, login)
    }
    // And the metrics did count them (so the scan below reads pages that saw these logins).
    const decided = (text: string, decision: string) =>
      text
        .split('\n')
        .filter(
          (l) => l.startsWith('saslgate_decisions_total{') && l.includes(`decision="${decision}"`),
        )
        .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0)
    const metricsAfter = await (await fetch(`${base}/metrics`)).text()
    assert.ok(decided(metricsAfter, 'ok') >= decided(metricsBefore, 'ok') + 1, metricsAfter)
    assert.ok(decided(metricsAfter, 'invalid') >= decided(metricsBefore, 'invalid') + 2)
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const r = await fetch(base + path, { signal: AbortSignal.timeout(5000) })
      assert.equal(r.status, 200, path)
      const text = await r.text()
      for (const secret of [
        'alice',
        'carol',
        'zed-nosuch-user',
        ALICE,
        'carol-wrong-guess',
        'zed-guess',
        TOKEN,
      ])
        assert.ok(
          !text.includes(secret),
          `${path} shows ${secret.length > 12 ? 'a secret' : secret}`,
        )
    }
  })
})

describe('the RPC: client certificates', () => {
  test('a certificate from the right CA with a name not on service.clientNames is refused', async () => {
    const allowed = await pki.issueClient('fe1.saslgate.test')
    const other = await pki.issueClient('fe9.saslgate.test')
    const svc = await startService({
      realm,
      args: mutualTlsArgs(pki, 'fe1.saslgate.test'),
    })
    procs.push(svc.proc)
    const port = svc.port
    const curl = (cert: { cert: string; key: string }) =>
      new Promise<string>((resolve, reject) =>
        execFile(
          'curl',
          [
            '-sS',
            '--max-time',
            '5',
            '--cacert',
            pki.ca,
            '--cert',
            cert.cert,
            '--key',
            cert.key,
            '-w',
            '\n%{http_code}',
            '-H',
            'content-type: application/json',
            '--data-binary',
            JSON.stringify({ login: 'alice', password: Buffer.from(ALICE).toString('base64') }),
            `https://127.0.0.1:${port}/saslgate.v1.AuthService/Authenticate`,
          ],
          { timeout: 10_000 },
          (err, stdout) => (err ? reject(err) : resolve(stdout)),
        ),
      )
    assert.match(await curl(allowed), /DECISION_OK[\s\S]*\n200$/)
    const refused = await curl(other)
    assert.match(refused, /unauthenticated[\s\S]*\n401$/)
  })
})
