/**
 * Single-host mode end to end: a real MIT KDC, `saslgate serve` as a child process, and real
 * clients (Debian's `testsaslauthd`, plus a raw-socket client for byte comparisons). One realm
 * for the whole file; each test starts the saslgate it needs.
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { decodeReply, encodeRequest, type RequestFields } from '../../src/saslauthd/codec.js'
import {
  realmUsers,
  runBounded,
  singleHostArgs,
  startSingleHost,
} from '../../src/testing/deployment.js'
import { startBlackholeKdc, startDelayProxy } from '../../src/testing/fake-kdc.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { SASLGATE_BIN as BIN, type SaslgateProcess } from '../../src/testing/saslgate-process.js'
import { TESTSASLAUTHD } from '../support/binaries.js'
import { NEEDS_TESTSASLAUTHD } from '../support/requires.js'

const ALICE = 'Alice pässword 1'
const BOB = 'bob-Secret-22'
const CAROL = 'carol-Secret-333'
const DAVE = 'dave-Secret-4444'
const WRONG = 'wrong-Guess-55555'
const CAROL_WRONG = 'carol-Guess-666666'
/** Every password this file sends: none may ever appear in saslgate's output. */
const SECRETS = [ALICE, BOB, CAROL, DAVE, WRONG, CAROL_WRONG]

let realm: Realm
let dir: string
let seq = 0
const gates: SaslgateProcess[] = []
const children = new Set<ChildProcess>()

before(async () => {
  realm = await startRealm({
    users: realmUsers({ alice: ALICE, bob: BOB, carol: CAROL, dave: DAVE }),
  })
  dir = await mkdtemp(join(tmpdir(), 'saslgate-single-host-'))
})

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const g of gates) await g.stop()
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

function socketPath(): string {
  return join(dir, `mux${++seq}`)
}

/** `saslgate serve` on `socket` against the test realm; stopped in `after` whatever happens. */
async function serve(
  socket: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
): Promise<SaslgateProcess> {
  const gate = await startSingleHost({
    realm,
    socket,
    args: ['--set', 'log.level=debug', ...extraArgs],
    env,
    keepAllOutput: true,
  })
  gates.push(gate)
  return gate
}

/** Runs a command with a hard time bound; the child is killed by PID on timeout. */
const run = (file: string, args: string[], env?: NodeJS.ProcessEnv, timeoutMs = 15_000) =>
  runBounded(file, args, { env, timeoutMs, children })

function testsaslauthd(socket: string, user: string, password: string, realmName?: string) {
  const args = ['-u', user, '-p', password, '-s', 'imap', '-f', socket]
  if (realmName !== undefined) args.push('-r', realmName)
  return run(TESTSASLAUTHD!, args)
}

/** One raw request; resolves with the reply bytes (bounded wait). */
function rawRequest(socket: string, fields: RequestFields, timeoutMs = 5_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const conn = connect(socket)
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      conn.destroy()
      reject(new Error(`no reply within ${timeoutMs} ms`))
    }, timeoutMs)
    conn.on('connect', () => conn.write(encodeRequest(fields)))
    conn.on('data', (d: Buffer) => {
      chunks.push(d)
      const r = decodeReply(Buffer.concat(chunks))
      if (r.status !== 'need-more') {
        clearTimeout(timer)
        conn.destroy()
        resolve(Buffer.concat(chunks))
      }
    })
    conn.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    conn.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    })
  })
}

function replyText(bytes: Buffer): string {
  const r = decodeReply(bytes, true)
  assert.equal(r.status, 'reply', `bad reply bytes ${bytes.toString('hex')}`)
  return r.status === 'reply' ? r.text : ''
}

/** A socket file nobody listens on: a child binds it and is SIGKILLed (no unlink). */
async function staleSocket(path: string): Promise<void> {
  const script = `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`
  const r = await run(process.execPath, ['-e', script], undefined, 5_000)
  assert.equal(r.code, null, r.stderr)
  assert.ok(statSync(path).isSocket(), 'stale socket file exists')
}

// Only the tests that run testsaslauthd skip without it (and fail in CI); the rest always run.
const skip = NEEDS_TESTSASLAUTHD

describe('saslgate serve with a real KDC and real clients', () => {
  let main: SaslgateProcess
  let mainSocket: string

  before(async () => {
    mainSocket = socketPath()
    main = await serve(mainSocket)
  })

  test('testsaslauthd: good -> OK, wrong -> NO, unknown user -> NO', { skip }, async () => {
    const good = await testsaslauthd(mainSocket, 'alice', ALICE)
    assert.equal(good.code, 0, good.stdout + good.stderr)
    assert.match(good.stdout, /^0: OK/)
    const withRealm = await testsaslauthd(mainSocket, 'alice', ALICE, 'SASLGATE.TEST')
    assert.equal(withRealm.code, 0, withRealm.stdout)
    const wrong = await testsaslauthd(mainSocket, 'alice', WRONG)
    assert.notEqual(wrong.code, 0)
    assert.match(wrong.stdout, /^0: NO/)
    const unknown = await testsaslauthd(mainSocket, 'nosuchuser', WRONG)
    assert.notEqual(unknown.code, 0)
    assert.match(unknown.stdout, /^0: NO/)
    assert.equal(wrong.stdout, unknown.stdout)
  })

  test('unknown user and wrong password get byte-identical replies', async () => {
    const wrong = await rawRequest(mainSocket, { login: 'bob', password: WRONG, service: 'imap' })
    const unknown = await rawRequest(mainSocket, {
      login: 'nobody-here',
      password: WRONG,
      service: 'imap',
    })
    assert.match(replyText(wrong), /^NO/)
    assert.deepStrictEqual(unknown, wrong)
    const good = await rawRequest(mainSocket, { login: 'bob', password: BOB, service: 'imap' })
    assert.equal(replyText(good), 'OK')
  })

  test('a 5-field request (with client address) from a raw client works', async () => {
    const fields = { service: 'imap', realm: '', clientAddress: '127.0.0.1;54321' }
    const good = await rawRequest(mainSocket, { login: 'dave', password: DAVE, ...fields })
    assert.equal(replyText(good), 'OK')
    const bad = await rawRequest(mainSocket, { login: 'dave', password: WRONG, ...fields })
    assert.match(replyText(bad), /^NO/)
  })

  test('negative cache: the same wrong password 5 times reaches the KDC once', {
    skip,
  }, async () => {
    const before = await realm.kdcRequestCount()
    const counts: number[] = []
    for (let i = 0; i < 5; i++) {
      const r = await testsaslauthd(mainSocket, 'carol', CAROL_WRONG)
      assert.notEqual(r.code, 0)
      assert.match(r.stdout, /^0: NO/)
      counts.push(await realm.kdcRequestCount())
    }
    await sleep(200) // a late KDC log line would show here
    counts.push(await realm.kdcRequestCount())
    assert.ok(counts[0]! > before, `first wrong password reached the KDC (${before} -> ${counts})`)
    assert.deepStrictEqual(
      counts,
      counts.map(() => counts[0]),
      `KDC requests after each attempt: ${counts}`,
    )
  })

  test('a second serve on a live socket refuses to start; the first keeps answering', {
    skip,
  }, async (t) => {
    const r = await run(
      process.execPath,
      [BIN, ...singleHostArgs(realm, mainSocket)],
      { PATH: process.env.PATH, ...realm.env },
      15_000,
    )
    assert.equal(r.code, 73, `exit 73 (socket in use): ${r.stdout}${r.stderr}`)
    assert.ok((r.stdout + r.stderr).includes(mainSocket), r.stdout + r.stderr)
    t.diagnostic(`second serve: exit ${r.code}: ${r.stderr.trim().split('\n').at(-1)}`)
    assert.ok(existsSync(mainSocket))
    const still = await testsaslauthd(mainSocket, 'alice', ALICE)
    assert.equal(still.code, 0, still.stdout)
  })

  test('a stale socket file is replaced; socketMode 0770 is applied', { skip }, async () => {
    const path = socketPath()
    await staleSocket(path)
    const gate = await serve(path, ['--set', 'saslauthd.socketMode=0770'])
    assert.equal(statSync(path).mode & 0o777, 0o770)
    const r = await testsaslauthd(path, 'alice', ALICE)
    assert.equal(r.code, 0, r.stdout)
    const stopped = await gate.stop()
    assert.equal(stopped.code, 0)
  })

  test('default socket mode is 0777 (saslauthd compatible)', () => {
    assert.equal(statSync(mainSocket).mode & 0o777, 0o777)
  })

  test('SIGTERM: a request in flight still gets its answer, exit 0, socket removed', async (t) => {
    const kdc = realm.kdcs[0]!
    const proxy = await startDelayProxy({
      target: { host: kdc.host, port: kdc.port },
      delayMs: 300,
    })
    t.after(() => proxy.close())
    const path = socketPath()
    const gate = await serve(path, [], {
      SASLGATE_KERBEROS_KDCS: `${realm.name}=127.0.0.1:${proxy.port}`,
    })
    // The readiness probe at start went through the proxy already: count from here.
    const probes = proxy.requests
    const reply = rawRequest(path, { login: 'carol', password: CAROL, service: 'imap' })
    // Wait (bounded) until the check is at the KDC, then ask saslgate to stop.
    for (let i = 0; i < 200 && proxy.requests === probes; i++) await sleep(10)
    assert.ok(proxy.requests > probes, 'request reached the KDC proxy')
    assert.doesNotMatch(gate.output(), /"msg":"decision"/, 'still in flight at SIGTERM')
    gate.child.kill('SIGTERM')
    assert.equal(replyText(await reply), 'OK')
    const exit = await gate.exited
    assert.deepStrictEqual(exit, { code: 0, signal: null })
    assert.equal(existsSync(path), false, 'socket file removed')
    assert.ok(proxy.repliesRelayed > 0)
  })

  test('KDC black-holed: NO within the answer deadline, no hang', { skip }, async (t) => {
    const hole = await startBlackholeKdc()
    t.after(() => hole.close())
    const path = socketPath()
    const gate = await serve(path, [], {
      SASLGATE_KERBEROS_KDCS: `${realm.name}=127.0.0.1:${hole.port}`,
    })
    const r = await testsaslauthd(path, 'alice', ALICE)
    assert.notEqual(r.code, 0)
    assert.match(r.stdout, /^0: NO/)
    t.diagnostic(`black-holed KDC: testsaslauthd answered NO after ${Math.round(r.elapsedMs)} ms`)
    assert.ok(hole.udpPacketsReceived + hole.tcpConnections > 0, 'saslgate tried the KDC')
    // The cause: the Kerberos stage gave up on the silent KDC (its per-attempt timeouts) or
    // the answer deadline (2,000 ms) cut it; either way an `unavailable` decision, logged.
    const decision = gate
      .output()
      .split('\n')
      .find((l) => l.includes('"msg":"decision"'))
    assert.ok(decision !== undefined, gate.output())
    const d = JSON.parse(decision) as { decision: string; reason: string; ms: number }
    assert.equal(d.decision, 'unavailable', decision)
    assert.ok(['kdc_unavailable', 'deadline'].includes(d.reason), decision)
    assert.ok(d.ms <= 2000, `decided after ${d.ms} ms, past the answer deadline`)
    // A loose ceiling for the whole client run (process start included): 1.5x the deadline.
    assert.ok(r.elapsedMs < 3_000, `answer took ${Math.round(r.elapsedMs)} ms`)
  })

  test('config errors name the option, exit non-zero, no stack trace', async () => {
    const base = ['serve', '--saslauthd-socket', socketPath()]
    const env = { PATH: process.env.PATH, ...realm.env }
    const unknown = await run(process.execPath, [BIN, ...base, '--set', 'pipeline.nosuch=1'], env)
    const bad = await run(process.execPath, [BIN, ...base], {
      ...env,
      SASLGATE_PIPELINE_DEADLINE_MS: 'abc',
    })
    for (const [r, name] of [
      [unknown, /pipeline\.nosuch/],
      [bad, /SASLGATE_PIPELINE_DEADLINE_MS|pipeline\.deadlineMs/],
    ] as const) {
      assert.notEqual(r.code, 0)
      assert.notEqual(r.code, null)
      assert.match(r.stderr, name)
      assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at .+:\d+:\d+/, 'stack trace printed')
      assert.doesNotMatch(r.stdout + r.stderr, /saslgate ready/)
    }
  })

  test('no password used in this file appears in any saslgate output (log.level=debug)', () => {
    assert.ok(main.output().includes('"level":20'), 'debug lines were logged')
    for (const gate of gates) {
      const out = gate.output()
      for (const secret of SECRETS) assert.ok(!out.includes(secret), 'a password was printed')
    }
  })
})
