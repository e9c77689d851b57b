/**
 * A throw-away Cyrus IMAP server (Debian `cyrus-imapd` 3.6) on 127.0.0.1, for end-to-end tests
 * of the saslauthd socket with the real client that uses it in production.
 *
 * Its own `imapd.conf` and `cyrus.conf` in a temp dir (owned by the `cyrus` user, which `master`
 * switches to), a free port, plaintext LOGIN allowed, no TLS, passwords checked through
 * `sasl_pwcheck_method: saslauthd` on the given socket. `master` does not pass `-C` to the
 * services it forks, so every `cmd=` carries it. `close()` stops only the master PID started here
 * (SIGTERM: master takes its children down), SIGKILLs it and the children it had after
 * `stopTimeoutMs`, and removes the dir. Idempotent.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants, readFileSync, rmSync } from 'node:fs'
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { SaslgateError } from '../../src/errors.js'
import { freePort } from '../../src/testing/ports.js'
import { childPids } from '../../src/testing/proc.js'

export const CYRUS_BIN_DIR = '/usr/lib/cyrus/bin'

export const DEFAULT_CYRUS_TEST_OPTIONS = {
  host: '127.0.0.1',
  /** Seconds Cyrus sleeps after a failed login (its default is 3 s). */
  failedLoginPauseS: 0,
  /** imapd.conf `virtdomains`: off (the Cyrus default), userid or on. */
  virtdomains: 'off' as 'off' | 'userid' | 'on',
  /** imapd.conf `defaultdomain` (only used with virtdomains userid/on); empty: unset. */
  defaultDomain: '',
  /** User `master` runs as (it switches to it when started as root). */
  user: 'cyrus',
  /** Bounded wait for the port to answer `* OK` after spawning master. */
  startTimeoutMs: 15_000,
  /** Bounded wait for master to exit after SIGTERM (then SIGKILL). */
  stopTimeoutMs: 5_000,
}

export interface CyrusOptions extends Partial<typeof DEFAULT_CYRUS_TEST_OPTIONS> {
  /** The saslauthd socket Cyrus sends password checks to (`sasl_saslauthd_path`). */
  saslauthdSocket: string
}

export interface TestCyrus {
  readonly host: string
  readonly port: number
  /** PID of the master process started here. */
  readonly pid: number
  readonly dir: string
  /** What master wrote to stdout/stderr so far (Cyrus logs to syslog; this is rarely much). */
  output(): string
  /** Stops master (and so its children) and removes the dir. Idempotent. */
  close(): Promise<void>
}

/** Why Cyrus cannot run here, or undefined when it can (binaries present, `cyrus` user, root). */
export function cyrusUnavailableReason(user = DEFAULT_CYRUS_TEST_OPTIONS.user): string | undefined {
  for (const bin of ['master', 'imapd', 'ctl_cyrusdb']) {
    try {
      accessSync(join(CYRUS_BIN_DIR, bin), constants.X_OK)
    } catch {
      return `${join(CYRUS_BIN_DIR, bin)} missing (install the Debian cyrus-imapd package)`
    }
  }
  if (lookupUser(user) === undefined) return `no ${user} user in /etc/passwd`
  if (userInfo().uid !== 0) return 'Cyrus master must be started as root to switch to its user'
  return undefined
}

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  const passwd = readFileSync('/etc/passwd', 'utf8')
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid] = line.split(':')
    if (user === name && uid !== undefined && gid !== undefined) {
      return { uid: Number(uid), gid: Number(gid) }
    }
  }
  return undefined
}

function fail(message: string): never {
  throw new SaslgateError('SASLGATE_ERR_TEST_REALM', message)
}

function renderImapdConf(
  o: typeof DEFAULT_CYRUS_TEST_OPTIONS,
  dir: string,
  socket: string,
): string {
  const lines = [
    `configdirectory: ${join(dir, 'conf')}`,
    'defaultpartition: default',
    `partition-default: ${join(dir, 'spool')}`,
    `sasl_pwcheck_method: saslauthd`,
    `sasl_saslauthd_path: ${socket}`,
    'sasl_mech_list: PLAIN LOGIN',
    'allowplaintext: yes',
    `failedloginpause: ${o.failedLoginPauseS}s`,
    `virtdomains: ${o.virtdomains}`,
    `servername: cyrus.saslgate.test`,
    `syslog_prefix: saslgate-test-cyrus`,
  ]
  if (o.defaultDomain !== '') lines.push(`defaultdomain: ${o.defaultDomain}`)
  return `${lines.join('\n')}\n`
}

function renderCyrusConf(o: typeof DEFAULT_CYRUS_TEST_OPTIONS, conf: string, port: number): string {
  return `START {
  recover cmd="ctl_cyrusdb -C ${conf} -r"
}

SERVICES {
  imap cmd="imapd -C ${conf}" listen="${o.host}:${port}" prefork=0 maxchild=20
}

EVENTS {
}

DAEMON {
}
`
}

/** One bounded try: connect, read the greeting line. */
function greeting(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    let text = ''
    const done = (v: string | undefined) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(v)
    }
    const timer = setTimeout(() => done(undefined), timeoutMs)
    timer.unref()
    socket.on('error', () => done(undefined))
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1')
      if (text.includes('\r\n')) {
        socket.end('z LOGOUT\r\n')
        done(text.slice(0, text.indexOf('\r\n')))
      }
    })
    socket.on('close', () => done(text === '' ? undefined : text))
  })
}

const liveMasters = new Map<ChildProcess, string>()
let exitHookInstalled = false

function track(child: ChildProcess, dir: string): void {
  liveMasters.set(child, dir)
  if (exitHookInstalled) return
  exitHookInstalled = true
  // A test run exiting without close(): SIGTERM lets master take its own children down.
  process.on('exit', () => {
    for (const [c, dir] of liveMasters) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM')
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

/** Starts Cyrus master and waits until its IMAP port answers `* OK`. */
export async function startCyrus(options: CyrusOptions): Promise<TestCyrus> {
  const { saslauthdSocket, ...rest } = options
  const o = { ...DEFAULT_CYRUS_TEST_OPTIONS }
  for (const [k, v] of Object.entries(rest)) {
    if (!(k in DEFAULT_CYRUS_TEST_OPTIONS)) fail(`cyrus test option ${k} is unknown`)
    if (v !== undefined) (o as Record<string, unknown>)[k] = v
  }
  const why = cyrusUnavailableReason(o.user)
  if (why !== undefined) fail(why)
  const owner = lookupUser(o.user)!

  const dir = await mkdtemp(join(tmpdir(), 'saslgate-cyrus-'))
  const conf = join(dir, 'imapd.conf')
  const cyrusConf = join(dir, 'cyrus.conf')
  let child: ChildProcess | undefined
  let output = ''
  let closing: Promise<void> | undefined

  const close = (): Promise<void> => {
    closing ??= (async () => {
      const c = child
      if (c !== undefined && c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
        const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()))
        c.kill('SIGTERM')
        let timer: NodeJS.Timeout | undefined
        const late = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), o.stopTimeoutMs)
          }),
        ])
        clearTimeout(timer)
        if (late) {
          const kids = childPids(c.pid)
          c.kill('SIGKILL')
          for (const pid of kids) {
            try {
              process.kill(pid, 'SIGKILL')
            } catch {
              // already gone
            }
          }
          await exited
        }
      }
      if (c !== undefined) liveMasters.delete(c)
      await rm(dir, { recursive: true, force: true })
    })()
    return closing
  }

  try {
    const port = await freePort({ host: o.host })
    const subdirs = ['conf', 'conf/socket', 'conf/proc', 'conf/lock', 'conf/db', 'spool']
    for (const sub of subdirs) await mkdir(join(dir, sub), { recursive: true })
    await writeFile(conf, renderImapdConf(o, dir, saslauthdSocket))
    await writeFile(cyrusConf, renderCyrusConf(o, conf, port))
    for (const p of [dir, conf, cyrusConf, ...subdirs.map((s) => join(dir, s))]) {
      await chown(p, owner.uid, owner.gid)
    }

    const args = ['-C', conf, '-M', cyrusConf, '-D', '-p', join(dir, 'master.pid')]
    const c = spawn(join(CYRUS_BIN_DIR, 'master'), args, {
      cwd: dir,
      env: { PATH: `${CYRUS_BIN_DIR}:/usr/sbin:/usr/bin:/sbin:/bin`, LANG: 'C', LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child = c
    track(c, dir)
    const keep = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-65536)
    }
    c.stdout?.on('data', keep)
    c.stderr?.on('data', keep)
    const spawnError = new Promise<Error>((resolve) => c.once('error', resolve))
    let error: Error | undefined
    void spawnError.then((e) => {
      error = e
    })

    const deadline = Date.now() + o.startTimeoutMs
    let ready = false
    while (!ready && Date.now() < deadline) {
      if (error !== undefined) fail(`cannot spawn Cyrus master: ${error.message}`)
      if (c.exitCode !== null || c.signalCode !== null) {
        fail(`Cyrus master exited (${c.exitCode ?? c.signalCode}) before serving:\n${output}`)
      }
      const line = await greeting(o.host, port, 1_000)
      if (line?.startsWith('* OK')) ready = true
      else await sleep(50)
    }
    if (!ready) fail(`Cyrus did not answer * OK on ${o.host}:${port} in ${o.startTimeoutMs} ms`)

    return {
      host: o.host,
      port,
      pid: c.pid ?? -1,
      dir,
      output: () => output,
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}
