/**
 * Faults under load: the KDC dead (black-holed, refusing), slow, flapping every second and
 * lying (a rogue KDC for the same realm name); the service restarted mid-storm; one of two
 * replicas killed; Valkey stopped and restarted; the disk holding the logs full.
 *
 * In every case, with a storm of wrong passwords and unknown users running alongside real
 * logins through the saslauthd socket (single-host mode, or shim -> service):
 *   - no wrong OK: a wrong password or unknown user is never answered OK;
 *   - no answer later than the deadline (saslauthd.answerDeadlineMs, 2 s, plus slack for
 *     three processes on two shared cores), no client timeout, no socket error;
 *   - recovery without a restart: once the fault ends, logins never seen before, and
 *     logins tried during the fault, succeed again on the same saslgate processes.
 *
 * Real parts: an MIT KDC and a rogue one (src/testing/realm.ts), the delay/black-hole and
 * flapping proxies, redis-server, `saslgate serve` / `saslgate shim` as child processes.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, type TestContext, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { type SaslauthdCheckResult, saslauthdCheck } from '../../src/storm/saslauthd-client.js'
import {
  OTEL_OFF_WITH_LOGS,
  singleHostArgs,
  startService,
  startShim,
  startSingleHost,
  writeTokenFile,
} from '../../src/testing/deployment.js'
import { startDelayProxy } from '../../src/testing/fake-kdc.js'
import { startFlappingProxy } from '../../src/testing/flapping-proxy.js'
import { type Realm, startRealm, startRogueKdc } from '../../src/testing/realm.js'
import { SASLGATE_BIN, type SaslgateProcess } from '../../src/testing/saslgate-process.js'
import { haveRedis, startRedis } from '../support/redis.js'
import { needs } from '../support/requires.js'

/** saslauthd.answerDeadlineMs (the default). */
const DEADLINE_MS = 2000
/** Longest answer accepted: the deadline + 25% for accept queues and timers on 2 shared cores. */
const BOUND_MS = DEADLINE_MS * 1.25
const TOKEN = 'saslgate-faults-token-0123456789abcdef0123456789'
// Every child runs with OTEL_OFF_WITH_LOGS: with OTLP exporters and no collector, a stop after
// traffic waits for their export timeouts, which would make the restart case slow.

interface Cred {
  login: string
  password: string
}

/** Real users; each case takes fresh ones, so "never seen before" stays true. */
const USERS: Cred[] = Array.from({ length: 40 }, (_, i) => ({
  login: `fu${String(i).padStart(2, '0')}`,
  password: `Fault-user-${i}-pw!`,
}))
/** Real users the storms attack (never used as fresh users: an account under attack may be
 * refused its first login, by design; see README, "first-time users under attack"). */
const ATTACKED: Cred[] = Array.from({ length: 10 }, (_, i) => ({
  login: `fa${String(i).padStart(2, '0')}`,
  password: `Fault-attacked-${i}-pw!`,
}))
let nextUser = 0
function fresh(): Cred {
  const u = USERS[nextUser++]
  if (u === undefined) throw new Error('out of fresh users: raise USERS')
  return u
}

let realm: Realm
let dir: string
let tokenFile: string
const procs: SaslgateProcess[] = []
const closers: Array<() => Promise<void>> = []
const children = new Set<ChildProcess>()
let seq = 0

before(async () => {
  realm = await startRealm({
    users: [...USERS, ...ATTACKED].map((u) => ({ name: u.login, password: u.password })),
  })
  dir = await mkdtemp(join(tmpdir(), 'saslgate-faults-'))
  tokenFile = writeTokenFile(dir, TOKEN)
})

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const p of procs) await p.stop(3000)
  for (const close of closers.reverse()) await close().catch(() => {})
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

const kdcOf = (port: number) => `127.0.0.1:${port}`
const realKdc = () => kdcOf(realm.kdcs[0]!.port)

/** `saslgate serve --saslauthd-socket` against the given KDCs (in order). */
async function singleHost(kdcs: string[], extra: string[] = [], keepAllOutput = false) {
  const socket = join(dir, `mux${++seq}`)
  const proc = await startSingleHost({
    realm,
    socket,
    keepAllOutput,
    args: ['--set', 'kerberos.breakerResetTimeoutMs=1000', ...extra],
    env: { ...OTEL_OFF_WITH_LOGS, SASLGATE_KERBEROS_KDCS: `${realm.name}=${kdcs.join(' ')}` },
  })
  procs.push(proc)
  return { proc, socket }
}

async function service(port?: number) {
  const svc = await startService({
    realm,
    tokenFile,
    port,
    args: ['--set', 'service.drainTimeoutMs=1000', '--set', 'kerberos.breakerResetTimeoutMs=1000'],
    env: OTEL_OFF_WITH_LOGS,
  })
  procs.push(svc.proc)
  return svc
}

async function shim(ports: number[]) {
  const socket = join(dir, `mux${++seq}`)
  const proc = await startShim({
    socket,
    upstream: ports.map((p) => `http://127.0.0.1:${p}`),
    tokenFile,
    args: ['--set', 'shim.ejectMs=500'],
    env: OTEL_OFF_WITH_LOGS,
  })
  procs.push(proc)
  return { proc, socket }
}

// ---------------------------------------------------------------------------------------------
// The storm and its verdicts

interface Tally {
  requests: number
  goodOk: number
  goodNo: number
  wrongOk: number
  wrongNo: number
  timeouts: number
  errors: Record<string, number>
  maxMs: number
  /** Answers later than BOUND_MS. */
  late: number
}

const newTally = (): Tally => ({
  requests: 0,
  goodOk: 0,
  goodNo: 0,
  wrongOk: 0,
  wrongNo: 0,
  timeouts: 0,
  errors: {},
  maxMs: 0,
  late: 0,
})

function count(t: Tally, r: SaslauthdCheckResult, good: boolean): void {
  t.requests++
  t.maxMs = Math.max(t.maxMs, r.latencyMs)
  if (r.latencyMs > BOUND_MS) t.late++
  if (r.timedOut) t.timeouts++
  else if (r.error !== undefined) t.errors[r.error] = (t.errors[r.error] ?? 0) + 1
  if (good) r.ok ? t.goodOk++ : t.goodNo++
  else r.ok ? t.wrongOk++ : t.wrongNo++
}

/** One answer of a storm, with wall-clock times (Date.now()) to place it around events. */
interface Answer {
  good: boolean
  ok: boolean
  sentAt: number
  answeredAt: number
}

/**
 * `workers` closed-loop clients for `ms`: one request in four is a real login from `good`
 * (cycled), the others are guesses: wrong passwords on real users and unknown users. With
 * `answers`, every answer is also pushed there, timestamped.
 */
async function storm(
  socket: string,
  o: {
    ms: number
    good: readonly Cred[]
    workers?: number
    onTick?: () => void
    answers?: Answer[]
  },
): Promise<Tally> {
  const t = newTally()
  const end = performance.now() + o.ms
  let n = 0
  const check = async (c: Cred, good: boolean) => {
    const sentAt = Date.now()
    const r = await saslauthdCheck(socket, c.login, c.password, { timeoutMs: 5000 })
    o.answers?.push({ good, ok: r.ok, sentAt, answeredAt: Date.now() })
    count(t, r, good)
  }
  const worker = async (w: number) => {
    for (let i = 0; i < 100_000 && performance.now() < end; i++) {
      const k = n++
      if (k % 4 === 0 && o.good.length > 0) {
        await check(o.good[(k / 4) % o.good.length] as Cred, true)
      } else {
        const u = ATTACKED[k % ATTACKED.length] as Cred
        const c =
          k % 3 === 0
            ? { login: `nosuch${k % 97}`, password: `guess-${k}` }
            : k % 3 === 1
              ? { login: u.login, password: `guess-${w}-${i}` }
              : { login: u.login, password: `${u.password}x` }
        await check(c, false)
      }
    }
  }
  await Promise.all(Array.from({ length: o.workers ?? 8 }, (_, w) => worker(w)))
  return t
}

function assertSafe(t: Tally, label: string): void {
  const s = `${label}: ${JSON.stringify(t)}`
  assert.equal(t.wrongOk, 0, `wrong OK! ${s}`)
  assert.equal(t.timeouts, 0, `client timeouts (hang) ${s}`)
  assert.deepEqual(t.errors, {}, `socket errors ${s}`)
  assert.equal(t.late, 0, `answers later than ${BOUND_MS} ms ${s}`)
  assert.ok(t.requests > 20, `too little traffic ${s}`)
}

/** Polls `cred` until OK (bounded); resolves with the ms it took. On failure the message
 * holds the last decision lines of `proc` (principals hashed, never a password). */
async function recovers(
  socket: string,
  cred: Cred,
  withinMs = 10_000,
  proc?: SaslgateProcess,
): Promise<number> {
  const t0 = performance.now()
  let last: SaslauthdCheckResult | undefined
  for (let i = 0; i < 200 && performance.now() - t0 < withinMs; i++) {
    last = await saslauthdCheck(socket, cred.login, cred.password, { timeoutMs: 5000 })
    if (last.ok) return performance.now() - t0
    await sleep(200)
  }
  const decisions = (proc?.output() ?? '')
    .split('\n')
    .filter((l) => l.includes('"decision"'))
    .slice(-4)
    .join('\n')
  assert.fail(
    `${cred.login} did not get in again within ${withinMs} ms: ${JSON.stringify(last)}\n${decisions}`,
  )
}

/** The reasons of the decision lines in a stretch of saslgate output. */
function decisionReasons(output: string): Set<string> {
  const reasons = new Set<string>()
  for (const line of output.split('\n')) {
    if (!line.includes('"msg":"decision"')) continue
    const reason = (JSON.parse(line) as { reason?: string }).reason
    if (reason !== undefined) reasons.add(reason)
  }
  return reasons
}

function lastDecision(output: string): { reason?: string; stage?: string } | undefined {
  const line = output
    .split('\n')
    .filter((l) => l.includes('"msg":"decision"'))
    .at(-1)
  return line === undefined ? undefined : JSON.parse(line)
}

async function ok(socket: string, cred: Cred): Promise<void> {
  const r = await saslauthdCheck(socket, cred.login, cred.password, { timeoutMs: 5000 })
  assert.equal(r.ok, true, `${cred.login}: ${JSON.stringify(r)}`)
}

function report(t: TestContext, label: string, tally: Tally, extra = ''): void {
  t.diagnostic(
    `${label}: ${tally.requests} requests, good ${tally.goodOk} OK/${tally.goodNo} NO, wrong ${tally.wrongNo} NO/${tally.wrongOk} OK, max ${tally.maxMs.toFixed(0)} ms${extra}`,
  )
}

// ---------------------------------------------------------------------------------------------

describe('faults: the KDC', () => {
  test('black-holed: NO within the deadline, known users in, recovery by itself', async (t) => {
    const proxy = await startDelayProxy({ target: realm.kdcs[0]! })
    closers.push(() => proxy.close())
    const { socket } = await singleHost([kdcOf(proxy.port)])
    const known = fresh()
    const during = fresh()
    const never = fresh()
    await ok(socket, known)
    proxy.setBlackhole(true)
    const tally = await storm(socket, { ms: 2000, good: [known, during] })
    assertSafe(tally, 'black hole')
    assert.ok(tally.goodOk > 0, 'the known user still got in from the cache')
    proxy.setBlackhole(false)
    const ms = await recovers(socket, during)
    await ok(socket, never)
    report(t, 'black hole', tally, `, recovered in ${ms.toFixed(0)} ms`)
  })

  test('refusing (krb5kdc stopped): NO at once, recovery when it is back', async (t) => {
    // Every decision logged (no rate limit) and all output kept: the probe's own line is what
    // the test reads, and a limited log could drop it after the storm or end with another
    // reason's summary.
    const { proc, socket } = await singleHost(
      [realKdc()],
      ['--set', 'telemetry.decisionLogsPerSecond=100000'],
      true,
    )
    const known = fresh()
    const during = fresh()
    const probe = fresh()
    await ok(socket, known)
    await realm.stopKdc(0)
    let tally: Tally
    let probeResult: SaslauthdCheckResult
    let probeFrom = 0
    const logFrom = proc.output().length
    try {
      tally = await storm(socket, { ms: 2000, good: [known, during] })
      probeFrom = proc.output().length
      // A real user never seen before, once the breaker has opened: refused at once.
      probeResult = await saslauthdCheck(socket, probe.login, probe.password, { timeoutMs: 5000 })
    } finally {
      await realm.startKdc(0)
    }
    assertSafe(tally, 'refusing')
    assert.ok(tally.goodOk > 0, 'the known user still got in')
    // The path: refused connections (kdc_unavailable) until the breaker opened, then the
    // open breaker (offline mode); never the deadline waited out.
    const reasons = decisionReasons(proc.output().slice(logFrom))
    assert.ok(reasons.has('offline_refused'), `the open breaker refused: ${[...reasons]}`)
    assert.ok(!reasons.has('deadline'), `a request waited out the deadline: ${[...reasons]}`)
    assert.equal(probeResult.ok, false)
    assert.ok(
      probeResult.latencyMs < DEADLINE_MS / 4,
      `probe refused after ${probeResult.latencyMs} ms: not "at once"`,
    )
    // The probe's own decision (the only request after the storm): the open breaker's.
    const last = lastDecision(proc.output().slice(probeFrom))
    assert.equal(last?.reason, 'offline_refused', JSON.stringify(last))
    const ms = await recovers(socket, during)
    await ok(socket, fresh())
    report(t, 'refusing', tally, `, recovered in ${ms.toFixed(0)} ms`)
  })

  test('slow: +300 ms per round trip still OK; +2.5 s is NO at the deadline; then recovery', async (t) => {
    const proxy = await startDelayProxy({ target: realm.kdcs[0]!, delayMs: 300 })
    closers.push(() => proxy.close())
    const { socket } = await singleHost([kdcOf(proxy.port)])
    const slowButFine = fresh()
    const r = await saslauthdCheck(socket, slowButFine.login, slowButFine.password)
    assert.equal(r.ok, true, JSON.stringify(r))
    assert.ok(r.latencyMs >= 550, `two delayed round trips, got ${r.latencyMs} ms`)
    proxy.setDelay(2500)
    const during = fresh()
    const tally = await storm(socket, { ms: 2500, good: [slowButFine, during] })
    assertSafe(tally, 'slow')
    assert.ok(tally.goodOk > 0, 'the known user still got in')
    proxy.setDelay(0)
    const ms = await recovers(socket, during)
    report(
      t,
      'slow',
      tally,
      `, first login ${r.latencyMs.toFixed(0)} ms, recovered in ${ms.toFixed(0)} ms`,
    )
  })

  test('flapping (dead/alive every second): no wrong OK, no late answer, recovery', async (t) => {
    const flap = await startFlappingProxy({ target: realm.kdcs[0]!, periodMs: 1000 })
    closers.push(() => flap.close())
    const { socket } = await singleHost([kdcOf(flap.port)])
    const known = fresh()
    await recovers(socket, known, 5000) // the proxy may be dead at first
    const cold = [fresh(), fresh(), fresh()]
    const tally = await storm(socket, { ms: 4000, good: [known, ...cold] })
    assert.ok(flap.flips >= 3, `flapped ${flap.flips} times`)
    assertSafe(tally, 'flapping')
    flap.settle()
    for (const c of cold) await recovers(socket, c)
    await ok(socket, fresh())
    report(t, 'flapping', tally, `, ${flap.flips} flips`)
  })

  test('lying (a rogue KDC for the same realm): nothing it says lets anyone in; recovery', async (t) => {
    const victim = fresh() // the rogue knows this user's real password
    const guessed = fresh() // the rogue has its own password for this user
    const rogue = await startRogueKdc(realm.name, [
      { name: victim.login, password: victim.password },
      { name: guessed.login, password: 'Rogue-chosen-pw-1' },
      { name: 'mallory', password: 'Mallory-pw-1' },
    ])
    closers.push(() => rogue.close())
    // The rogue is listed first: it answers everything while it runs.
    const { proc, socket } = await singleHost(
      [kdcOf(rogue.kdcs[0]!.port), realKdc()],
      ['--set', 'log.level=debug'],
    )
    const lies = [
      { login: guessed.login, password: 'Rogue-chosen-pw-1' },
      { login: 'mallory', password: 'Mallory-pw-1' },
      { login: victim.login, password: victim.password },
    ]
    const tally = newTally()
    for (let round = 0; round < 3; round++) {
      // The victim tries once: each try sent a pre-authenticated request, so it spends one of
      // the principal's KDC budget units for the window (the forwarded request may have
      // reached the real KDC: SECURITY.md, threat 8), and three would spend them all.
      for (const c of round === 0 ? lies : lies.slice(0, 2)) {
        count(tally, await saslauthdCheck(socket, c.login, c.password), false)
      }
    }
    assert.equal(tally.wrongNo, 7, `the rogue's answers: ${JSON.stringify(tally)}`)
    assert.equal(tally.late + tally.timeouts, 0, JSON.stringify(tally))
    const storming = await storm(socket, { ms: 1500, good: [] })
    assertSafe(storming, 'rogue storm')
    await rogue.close() // its port now refuses: saslgate fails over to the real KDC
    const ms = await recovers(socket, fresh())
    // The user whose real password went to the rogue gets in too (nothing poisoned).
    const victimMs = await recovers(socket, victim, 10_000, proc)
    report(
      t,
      'rogue',
      tally,
      `, recovered in ${ms.toFixed(0)} ms, victim in ${victimMs.toFixed(0)} ms`,
    )
  })
})

describe('faults: the service and its state', () => {
  test('service restarted mid-storm: NO during the gap, never a wrong OK, then OK again', async (t) => {
    const svc = await service()
    const sh = await shim([svc.port])
    const known = fresh()
    await ok(sh.socket, known)
    const answers: Answer[] = []
    const stormStart = Date.now()
    const storming = storm(sh.socket, { ms: 6000, good: [known], answers })
    await sleep(1000)
    await svc.proc.stop()
    const stoppedAt = Date.now() // no service process exists from here ...
    await sleep(500)
    const spawnedAt = Date.now() // ... to here
    const again = await service(svc.port)
    const readyAt = Date.now()
    const tally = await storming
    const stormEnd = Date.now()
    assertSafe(tally, 'restart')
    // The restart fell inside the storm, with traffic on both sides of it.
    assert.ok(stormStart < stoppedAt && readyAt < stormEnd, 'the restart was inside the storm')
    const before = answers.filter((a) => a.answeredAt < stoppedAt)
    const gap = answers.filter((a) => a.sentAt >= stoppedAt && a.answeredAt <= spawnedAt)
    const afterReady = answers.filter((a) => a.sentAt >= readyAt)
    assert.ok(
      before.some((a) => a.good && a.ok),
      'the known user got in before the stop',
    )
    // With no service at all, every answer is NO: real logins included, and no wrong OK.
    assert.ok(gap.filter((a) => a.good).length > 0, `no real login during the gap (${gap.length})`)
    assert.deepEqual(
      gap.filter((a) => a.ok),
      [],
      'an OK while no service process existed',
    )
    assert.ok(afterReady.length > 0, 'the storm went on after the new service was ready')
    await recovers(sh.socket, known)
    await ok(sh.socket, fresh())
    await sh.proc.stop()
    await again.proc.stop()
    report(
      t,
      'service restart',
      tally,
      `, ${gap.length} answers (all NO) in the ${spawnedAt - stoppedAt} ms gap`,
    )
  })

  test('one of two replicas killed mid-storm: no wrong OK, no late answer, logins go on', async (t) => {
    const a = await service()
    const b = await service()
    const sh = await shim([a.port, b.port])
    const known = fresh()
    for (let i = 0; i < 4; i++) await ok(sh.socket, known) // both replicas know it
    const storming = storm(sh.socket, { ms: 3500, good: [known] })
    await sleep(1200)
    await a.proc.kill()
    const tally = await storming
    assertSafe(tally, 'replica killed')
    const afterKill = await storm(sh.socket, { ms: 1000, good: [known] })
    assertSafe(afterKill, 'after the kill')
    assert.equal(
      afterKill.goodNo,
      0,
      `good logins refused after the kill: ${JSON.stringify(afterKill)}`,
    )
    await ok(sh.socket, fresh())
    await sh.proc.stop()
    await b.proc.stop()
    report(t, 'replica killed', tally)
  })

  test('Valkey stopped and restarted mid-storm: answers unchanged, shared state resumes', {
    skip: needs(!haveRedis() && 'redis-server is not installed (Debian package redis-server)'),
  }, async (t) => {
    const redis = await startRedis()
    closers.push(() => redis.close())
    const prefix = 'faults:guard:'
    const { socket } = await singleHost(
      [realKdc()],
      ['--set', `state.url=${redis.url}`, '--set', `state.keyPrefix=${prefix}`],
    )
    const raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
    closers.push(async () => raw.disconnect())
    const known = fresh()
    await ok(socket, known)
    const storming = storm(socket, { ms: 4000, good: [known] })
    await sleep(1000)
    await redis.stop()
    await sleep(1500)
    await redis.start()
    const tally = await storming
    assertSafe(tally, 'valkey')
    assert.equal(tally.goodNo, 0, `a known user was refused: ${JSON.stringify(tally)}`)
    // The guard writes to Valkey again (a fresh server: every key is new).
    await raw.connect()
    let keys: string[] = []
    for (let i = 0; i < 50 && keys.length === 0; i++) {
      await saslauthdCheck(socket, 'nosuch-after-restart', `guess-${i}`)
      keys = await raw.keys(`${prefix}*`)
      if (keys.length === 0) await sleep(100)
    }
    assert.ok(keys.length > 0, 'no guard state in Valkey after it came back')
    await ok(socket, fresh())
    report(t, 'valkey', tally, `, ${keys.length} keys after the restart`)
  })
})

// ---------------------------------------------------------------------------------------------
// Disk full for logs: the log sink fails with ENOSPC. Logging must never stop answering.

/** Spawns `saslgate serve --saslauthd-socket` with stdout+stderr on `fd`; ready = socket answers. */
async function serveWithLogFd(fd: number, socket: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [SASLGATE_BIN, ...singleHostArgs(realm, socket, ['--set', 'log.level=debug'])],
    {
      env: { PATH: process.env.PATH, ...realm.env, ...OTEL_OFF_WITH_LOGS },
      stdio: ['ignore', fd, fd],
    },
  )
  children.add(child)
  child.once('exit', () => children.delete(child))
  for (let i = 0; i < 100 && child.exitCode === null; i++) {
    if (existsSync(socket)) {
      const r = await saslauthdCheck(socket, 'nosuch-probe', 'x', { timeoutMs: 1000 })
      if (!r.timedOut && r.error === undefined) return child
    }
    await sleep(100)
  }
  const state = child.exitCode !== null ? `exited ${child.exitCode}` : 'alive but not answering'
  child.kill('SIGKILL')
  assert.fail(`saslgate with its logs on a full disk did not start answering in 10 s (${state})`)
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
}

function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false
  try {
    execFileSync('mount', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

describe('faults: disk full for logs', () => {
  test('logs to a full device (/dev/full) from the start: it still answers, correctly', async (t) => {
    const fd = openSync('/dev/full', 'w')
    let child: ChildProcess | undefined
    try {
      const socket = join(dir, `mux${++seq}`)
      child = await serveWithLogFd(fd, socket)
      const known = fresh()
      await ok(socket, known)
      const tally = await storm(socket, { ms: 2000, good: [known] })
      assertSafe(tally, '/dev/full')
      assert.equal(tally.goodNo, 0)
      assert.equal(child.exitCode, null, 'saslgate exited')
      report(t, '/dev/full', tally)
    } finally {
      closeSync(fd)
      if (child !== undefined) await stopChild(child)
    }
  })

  test('the log disk fills up mid-run (1 MiB tmpfs): answers go on; logging resumes after', {
    skip: canMountTmpfs() ? false : 'needs root and mount(8) for a tmpfs',
  }, async (t) => {
    const mnt = join(dir, 'logfs')
    await mkdir(mnt)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', mnt])
    let child: ChildProcess | undefined
    const logPath = join(mnt, 'saslgate.log')
    const fd = openSync(logPath, 'a')
    try {
      const socket = join(dir, `mux${++seq}`)
      child = await serveWithLogFd(fd, socket)
      const known = fresh()
      await ok(socket, known)
      // Fill the file system to the last byte.
      const filler = join(mnt, 'filler')
      const ffd = openSync(filler, 'w')
      try {
        const block = Buffer.alloc(64 * 1024, 0x78)
        for (let i = 0; i < 64; i++) {
          try {
            writeFileSync(ffd, block)
          } catch {
            break
          }
        }
        for (let i = 0; i < 4096; i++) {
          try {
            writeFileSync(ffd, Buffer.alloc(256, 0x78))
          } catch {
            break
          }
        }
      } finally {
        closeSync(ffd)
      }
      const full = statSync(logPath).size
      const tally = await storm(socket, { ms: 2000, good: [known] })
      assertSafe(tally, 'disk full')
      assert.equal(tally.goodNo, 0)
      assert.equal(child.exitCode, null, 'saslgate exited when its log disk filled')
      // Space again: logging resumes, answers were never interrupted.
      await unlink(filler)
      const fresher = fresh()
      await ok(socket, fresher)
      for (let i = 0; i < 20 && statSync(logPath).size <= full; i++) {
        await saslauthdCheck(socket, fresher.login, fresher.password)
        await sleep(50)
      }
      assert.ok(statSync(logPath).size > full, 'logging did not resume after space came back')
      assert.ok(!readFileSync(logPath, 'utf8').includes(known.password), 'a password was logged')
      report(t, 'disk full', tally, `, log ${full} -> ${statSync(logPath).size} bytes`)
    } finally {
      closeSync(fd)
      if (child !== undefined) await stopChild(child)
      try {
        execFileSync('umount', [mnt])
      } catch {
        execFileSync('umount', ['-l', mnt])
      }
    }
  })
})
