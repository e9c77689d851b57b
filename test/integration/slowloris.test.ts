/**
 * Slowloris on the saslauthd socket: 1,000 connections held half-open (nothing sent, a
 * partial frame, or one byte at a time), re-opened as soon as saslgate closes them, while
 * real logins keep going. Against single-host mode and against the shim (-> service).
 *
 * Must hold: every real login is answered correctly and within the deadline; saslgate
 * closes the held connections at `saslauthd.readTimeoutMs` with a NO; its descriptors go
 * back down once the attack stops (no leak).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, type TestContext, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { saslauthdCheck } from '../../src/storm/saslauthd-client.js'
import { summarize } from '../../src/storm/stats.js'
import {
  OTEL_OFF_WITH_LOGS,
  startService,
  startShim,
  startSingleHost,
  writeTokenFile,
} from '../../src/testing/deployment.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import type { SaslgateProcess } from '../../src/testing/saslgate-process.js'

const HALF_OPEN = Number(process.env.SLOWLORIS_CONNECTIONS ?? 1000)
const ATTACK_MS = 7000
/** saslauthd.readTimeoutMs for these servers: held connections are cut after this. */
const READ_TIMEOUT_MS = 3000
const DEADLINE_MS = 2000
const TOKEN = 'saslgate-slowloris-token-0123456789abcdef0123456789'
const USERS = Array.from({ length: 12 }, (_, i) => ({
  login: `sl${String(i).padStart(2, '0')}`,
  password: `Slowloris-user-${i}-pw!`,
}))

/** The soft limit of open files for this process (we hold 1,000 sockets). */
function openFileLimit(): number {
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim())
  } catch {
    return 1024
  }
}
const LIMIT = openFileLimit()
const skip =
  LIMIT !== Number.POSITIVE_INFINITY && LIMIT < HALF_OPEN + 500
    ? `ulimit -n is ${LIMIT}; ${HALF_OPEN} held connections need ${HALF_OPEN + 500}`
    : false

let realm: Realm
let dir: string
let tokenFile: string
const procs: SaslgateProcess[] = []

before(async () => {
  realm = await startRealm({
    users: USERS.map((u) => ({ name: u.login, password: u.password })),
  })
  dir = await mkdtemp(join(tmpdir(), 'saslgate-slowloris-'))
  tokenFile = writeTokenFile(dir, TOKEN)
})

after(async () => {
  for (const p of procs) await p.stop(3000)
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length

/** Holds `n` half-open connections until `stop()`; a closed one is opened again at once. */
function slowloris(path: string, n: number) {
  const sockets = new Set<Socket>()
  let stopped = false
  let opened = 0
  let closedByServer = 0
  let noReplies = 0
  /** Connections saslgate closed: how long each lived and whether a NO came first. */
  const cuts: Array<{ lifeMs: number; gotNo: boolean }> = []
  const timers = new Set<NodeJS.Timeout>()
  const open = (k: number) => {
    if (stopped) return
    const s = connect(path)
    opened++
    sockets.add(s)
    // From the connect() call: saslgate accepts later, so its read timeout cannot end sooner
    // (the 'connect' event can come late on a client opening 1,000 sockets at once).
    const openedAt = performance.now()
    let gotNo = false
    s.on('error', () => {})
    s.on('data', (d: Buffer) => {
      if (d.includes(Buffer.from('NO'))) {
        noReplies++
        gotNo = true
      }
    })
    s.on('connect', () => {
      // A third send nothing, a third a frame cut short, a third a byte every 300 ms.
      if (k % 3 === 1) s.write(Buffer.from([0x00, 0x05, 0x61, 0x6c]))
      if (k % 3 === 2) {
        s.write(Buffer.from([0x00, 0xc8])) // a 200-byte login, sent one byte at a time
        const drip = setInterval(() => {
          if (s.destroyed) clearInterval(drip)
          else s.write(Buffer.from([0x61]))
        }, 300)
        timers.add(drip)
        s.once('close', () => {
          clearInterval(drip)
          timers.delete(drip)
        })
      }
    })
    s.on('close', () => {
      sockets.delete(s)
      if (!stopped) {
        closedByServer++
        cuts.push({ lifeMs: performance.now() - openedAt, gotNo })
        setImmediate(() => open(k))
      }
    })
  }
  for (let k = 0; k < n; k++) open(k)
  return {
    get held() {
      return sockets.size
    },
    get opened() {
      return opened
    },
    get closedByServer() {
      return closedByServer
    },
    get noReplies() {
      return noReplies
    },
    cuts,
    stop() {
      stopped = true
      for (const t of timers) clearInterval(t)
      for (const s of sockets) s.destroy()
    },
  }
}

/** Real logins in a closed loop while the attack runs: good (seen and first-time) and wrong. */
async function realLogins(path: string, ms: number) {
  const lat: number[] = []
  const wrongAnswers: string[] = []
  const end = performance.now() + ms
  let fresh = 4
  let i = 0
  while (performance.now() < end && i < 10_000) {
    const k = i++
    const seen = USERS[k % 4]!
    const cred =
      k % 5 === 4 && fresh < USERS.length
        ? USERS[fresh++]!
        : k % 3 === 2
          ? { login: seen.login, password: 'not-the-password' }
          : seen
    const good = cred.password !== 'not-the-password'
    const r = await saslauthdCheck(path, cred.login, cred.password, { timeoutMs: 5000 })
    lat.push(r.latencyMs)
    if (r.ok !== good || r.timedOut || r.error !== undefined)
      wrongAnswers.push(`${cred.login} good=${good}: ${JSON.stringify(r)}`)
    await sleep(20)
  }
  return { latency: summarize(lat), wrongAnswers, count: lat.length }
}

/**
 * The decision lines saslgate logged for connections it answered itself (stage `decode`):
 * each names why (`detail`) and how long after accept (`ms`). Rate-limited, so a sample.
 */
function listenerDecisions(
  output: string,
): Array<{ detail?: string; ms: number; decision: string }> {
  return output
    .split('\n')
    .filter((l) => l.includes('"msg":"decision"') && l.includes('"stage":"decode"'))
    .map((l) => JSON.parse(l))
}

async function attack(
  t: TestContext,
  label: string,
  socket: string,
  proc: SaslgateProcess,
): Promise<void> {
  const pid = proc.pid
  // Warm: the first four users have logged in before.
  for (const u of USERS.slice(0, 4)) {
    const r = await saslauthdCheck(socket, u.login, u.password)
    assert.equal(r.ok, true, `${u.login} before the attack: ${JSON.stringify(r)}`)
  }
  const baseline = fdCount(pid)
  const loris = slowloris(socket, HALF_OPEN)
  try {
    // Bounded waits (a loaded CI machine opens and accepts 1,000 connections slowly): until
    // every connection is open, then until the server holds them.
    for (let i = 0; i < 500 && loris.held < HALF_OPEN; i++) await sleep(20)
    let during = fdCount(pid)
    for (let i = 0; i < 250 && during < baseline + HALF_OPEN * 0.9; i++) {
      await sleep(20)
      during = fdCount(pid)
    }
    assert.ok(during >= baseline + HALF_OPEN * 0.9, `only ${during - baseline} connections held`)
    const real = await realLogins(socket, ATTACK_MS)
    assert.deepEqual(real.wrongAnswers.slice(0, 5), [], `${real.wrongAnswers.length} bad answers`)
    assert.ok(real.count > 50, `only ${real.count} real logins`)
    assert.ok(real.latency.max < DEADLINE_MS, `a real login took ${real.latency.max} ms`)
    // Held connections are cut at the read timeout (with a NO), then opened again.
    assert.ok(
      loris.closedByServer >= HALF_OPEN * 0.9,
      `saslgate closed only ${loris.closedByServer} held connections in ${ATTACK_MS} ms`,
    )
    // ... each with a NO first, never before the read timeout, and not long after it.
    const cuts = loris.cuts.slice()
    const withoutNo = cuts.filter((c) => !c.gotNo).length
    assert.equal(withoutNo, 0, `${withoutNo} of ${cuts.length} cut connections got no NO`)
    const early = cuts.filter((c) => c.lifeMs < READ_TIMEOUT_MS - 50)
    assert.deepEqual(
      early.slice(0, 3),
      [],
      `${early.length} connections cut before the read timeout`,
    )
    const lives = summarize(cuts.map((c) => c.lifeMs))
    assert.ok(
      lives.p50 < READ_TIMEOUT_MS + 2000,
      `cut connections lived p50 ${lives.p50} ms: not at the read timeout`,
    )
    // The reason saslgate recorded for them: the read timeout.
    const logged = listenerDecisions(proc.output())
    assert.ok(logged.length > 0, 'saslgate logged the connections it cut')
    for (const d of logged) {
      assert.equal(d.detail, 'read_timeout', JSON.stringify(d))
      assert.equal(d.decision, 'invalid', JSON.stringify(d))
      assert.ok(d.ms >= READ_TIMEOUT_MS - 5, `cut after ${d.ms} ms, before the read timeout`)
    }
    t.diagnostic(
      `${label}: ${HALF_OPEN} held (${loris.opened} opened, ${loris.closedByServer} cut by saslgate, ${loris.noReplies} NO, lived p50 ${lives.p50} ms max ${lives.max} ms), ` +
        `${real.count} real logins p50 ${real.latency.p50} ms p99 ${real.latency.p99} ms max ${real.latency.max} ms, ` +
        `fds ${baseline} -> ${during}`,
    )
  } finally {
    loris.stop()
  }
  let now = fdCount(pid)
  for (let i = 0; i < 50 && now > baseline + 20; i++) {
    await sleep(100)
    now = fdCount(pid)
  }
  assert.ok(now <= baseline + 20, `descriptors did not come back: ${baseline} -> ${now}`)
}

describe(`slowloris: ${HALF_OPEN} half-open connections`, { skip }, () => {
  test('single-host socket: real logins go on within the deadline', async (t) => {
    const socket = join(dir, 'single')
    const proc = await startSingleHost({
      realm,
      socket,
      args: ['--set', `saslauthd.readTimeoutMs=${READ_TIMEOUT_MS}`],
      env: OTEL_OFF_WITH_LOGS,
    })
    procs.push(proc)
    await attack(t, 'single-host', socket, proc)
    assert.equal(proc.child.exitCode, null)
  })

  test('shim socket (-> service): real logins go on within the deadline', async (t) => {
    const svc = await startService({ realm, tokenFile, env: OTEL_OFF_WITH_LOGS })
    procs.push(svc.proc)
    const socket = join(dir, 'shim')
    const sh = await startShim({
      socket,
      upstream: svc.url,
      tokenFile,
      args: ['--set', `saslauthd.readTimeoutMs=${READ_TIMEOUT_MS}`],
      env: OTEL_OFF_WITH_LOGS,
    })
    procs.push(sh)
    await attack(t, 'shim', socket, sh)
    assert.equal(sh.child.exitCode, null)
  })
})
