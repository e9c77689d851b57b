/**
 * A crashing saslgate writes no core file, even where the environment allows core dumps
 * (`ulimit -c unlimited`, this machine's `kernel.core_pattern`): the addon sets RLIMIT_CORE to
 * 0 and PR_SET_DUMPABLE to 0 as it loads (native/src/hardening.cc), at the start of `serve`
 * and `shim`. A core file would hold the passwords and keys in flight.
 *
 * With a core_pattern naming a file (here: `core`, in the crashing process's directory) the
 * test is the real thing: SIGABRT, then no file, next to a control process (plain Node, same
 * limits, same directory) that does leave one. With a pattern piping to a helper
 * (`|/usr/lib/systemd/systemd-coredump ...`) no file can be looked for, so only
 * `/proc/PID/limits` ("Max core file size 0 0") is checked, and the test says so.
 * PR_SET_DUMPABLE is seen from outside on a shim run as `nobody`: the kernel gives the
 * /proc/PID/* files of a non-dumpable process to root (a dumpable one's belong to its user,
 * as the control run as `nobody` shows).
 * This file never loads the addon itself: its children inherit this process's limits.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { OTEL_OFF, writeTokenFile } from '../../src/testing/deployment.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { SASLGATE_BIN } from '../../src/testing/saslgate-process.js'
import { letOtherUsersIn } from '../support/other-user.js'

const TOKEN = 'core-dump-test-token-0123456789abcdef0123'
const CORE_PATTERN = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim()
/** A core file name in the crashing process's own directory (`core`, `core.%p`, ...). */
const CORE_IN_CWD = !CORE_PATTERN.startsWith('|') && !CORE_PATTERN.includes('/')
const CORE_PREFIX = CORE_PATTERN.split('%')[0] ?? 'core'

let realm: Realm
let dir: string
const children = new Set<ChildProcess>()

before(async () => {
  letOtherUsersIn() // the shim runs as nobody from this checkout
  dir = mkdtempSync(join(tmpdir(), 'saslgate-core-'))
  chmodSync(dir, 0o711) // nobody passes through to its own directories
  realm = await startRealm()
})

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  await realm?.close()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

interface Crashable {
  child: ChildProcess
  pid: number
  cwd: string
  output: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/**
 * Starts `node ARGS` under `ulimit -c unlimited` (soft and hard) in a fresh directory and
 * waits for `readyText` in its output.
 */
async function startUnlimited(
  name: string,
  args: string[],
  env: Record<string, string>,
  readyText: string,
  asNobody = false,
): Promise<Crashable> {
  const cwd = mkdtempSync(join(dir, `${name}-`))
  // nobody must be able to write its core file there, or the control would prove nothing.
  if (asNobody) chmodSync(cwd, 0o777)
  const drop = asNobody ? 'setpriv --reuid=nobody --regid=nogroup --clear-groups ' : ''
  const child = spawn(
    'bash',
    ['-c', `ulimit -S -H -c unlimited && exec ${drop}"$0" "$@"`, process.execPath, ...args],
    {
      cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  children.add(child)
  let out = ''
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8')
  })
  child.stderr.on('data', (d: Buffer) => {
    out += d.toString('utf8')
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  const deadline = performance.now() + 20_000
  while (!out.includes(readyText)) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${name} exited before ready:\n${out}`)
    if (performance.now() > deadline) throw new Error(`${name} not ready in 20 s:\n${out}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return { child, pid: child.pid ?? -1, cwd, output: () => out, exited }
}

/** `Max core file size` of a live process: [soft, hard] as written in /proc/PID/limits. */
function coreLimits(pid: number): [string, string] {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max core file size'))
  const m = /^Max core file size\s+(\S+)\s+(\S+)/.exec(line ?? '')
  assert.ok(m !== null, `no core limit line in /proc/${pid}/limits`)
  return [m[1] as string, m[2] as string]
}

/** Owner of /proc/PID/status (the kernel updates it with the dumpable flag) and the real uid. */
function procOwner(pid: number): { procUid: number; uid: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1])
  return { procUid: statSync(`/proc/${pid}/status`).uid, uid }
}

/** SIGABRT, wait for the death; the files left in its directory that look like core files. */
async function abort(p: Crashable): Promise<{ signal: NodeJS.Signals | null; cores: string[] }> {
  p.child.kill('SIGABRT')
  const { signal } = await p.exited
  // The kernel has written the core before the parent sees the exit.
  const cores = readdirSync(p.cwd).filter((f) => f.startsWith(CORE_PREFIX))
  return { signal, cores }
}

describe('core dumps', () => {
  for (const asNobody of [false, true]) {
    const who = asNobody ? 'nobody' : 'root'
    test(`control (${who}): plain Node under the same limits in the same place leaves a core file`, async (t) => {
      t.diagnostic(`kernel.core_pattern = ${JSON.stringify(CORE_PATTERN)}`)
      const p = await startUnlimited(
        `control-${who}`,
        ['-e', 'console.log("control ready"); setInterval(() => {}, 1000)'],
        {},
        'control ready',
        asNobody,
      )
      assert.deepEqual(coreLimits(p.pid), ['unlimited', 'unlimited'], 'ulimit -c unlimited holds')
      const { procUid, uid } = procOwner(p.pid)
      if (asNobody) assert.notEqual(uid, 0)
      assert.equal(procUid, uid, 'a dumpable process owns its /proc/PID/status')
      const r = await abort(p)
      assert.equal(r.signal, 'SIGABRT')
      if (CORE_IN_CWD)
        assert.ok(r.cores.length >= 1, `a core file in ${p.cwd}: the checks below can fail`)
      else t.diagnostic('core_pattern is not a file in the cwd: only /proc/PID/limits is checked')
      for (const f of r.cores) rmSync(join(p.cwd, f), { force: true })
    })
  }

  for (const role of ['serve', 'shim'] as const) {
    test(`${role}: SIGABRT under ulimit -c unlimited writes no core; limits say 0`, async (t) => {
      const token = writeTokenFile(dir, TOKEN, `token-${role}`)
      const args =
        role === 'serve'
          ? [
              SASLGATE_BIN,
              'serve',
              '--listen',
              '127.0.0.1:0',
              '--token-file',
              token,
              '--set',
              `kerberos.verifyPrincipal=${realm.servicePrincipal}`,
            ]
          : [
              SASLGATE_BIN,
              'shim',
              '--socket',
              'mux',
              '--upstream',
              'http://127.0.0.1:1',
              '--token-file',
              token,
            ]
      // The shim runs as nobody (it needs no keytab): its token file must be readable.
      const asNobody = role === 'shim'
      if (asNobody) chmodSync(token, 0o644)
      const p = await startUnlimited(
        role,
        args,
        { ...realm.env, ...OTEL_OFF },
        'saslgate ready',
        asNobody,
      )
      assert.match(p.output(), /core dumps off \(RLIMIT_CORE 0, PR_SET_DUMPABLE 0\)/)
      // What the kernel will use when it crashes: soft and hard limit 0.
      assert.deepEqual(coreLimits(p.pid), ['0', '0'])
      if (asNobody) {
        const { procUid, uid } = procOwner(p.pid)
        assert.notEqual(uid, 0, 'running as nobody')
        assert.equal(
          procUid,
          0,
          'non-dumpable: its /proc/PID/status belongs to root, not to nobody',
        )
      }
      const r = await abort(p)
      assert.equal(r.signal, 'SIGABRT', 'it died of the signal (no handler hid it)')
      if (CORE_IN_CWD) assert.deepEqual(r.cores, [], `no core file in ${p.cwd}`)
      else t.diagnostic('core_pattern pipes to a helper: checked /proc/PID/limits only')
      assert.ok(!p.output().includes(TOKEN), 'the token was not printed')
    })
  }
})
