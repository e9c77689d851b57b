/**
 * Starts and stops the real saslauthd (Debian sasl2-bin, `-a kerberos5`) for a test realm, as the
 * baseline of the benchmarks. It runs in the foreground (`-d`, which still forks `-n` workers) in a
 * process group of its own, so stopping it signals only its PIDs (the group it leads).
 *
 * saslauthd's kerberos5 mechanism verifies the TGT with the key of `host/<this host>` from
 * KRB5_KTNAME (krb5_verify_init_creds), so a keytab with that principal is written per instance.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { SaslgateError } from '../errors.js'
import { childPids } from '../testing/proc.js'
import type { Realm } from '../testing/realm.js'

export const DEFAULT_SASLAUTHD_RUNNER_OPTIONS = {
  /** `-n`: worker processes. */
  workers: 5,
  /** `-c`: saslauthd's own credential cache (successes only). */
  cache: false,
  /** KDC address list written into this instance's krb5.conf; empty: the realm's own KDCs. */
  kdcs: [] as readonly string[],
  readyTimeoutMs: 10_000,
  stopTimeoutMs: 5_000,
  binary: '/usr/sbin/saslauthd',
}

export interface SaslauthdRunnerOptions {
  realm: Realm
  workers?: number
  cache?: boolean
  kdcs?: readonly string[]
  readyTimeoutMs?: number
  stopTimeoutMs?: number
  binary?: string
}

export interface SaslauthdInstance {
  readonly socketPath: string
  readonly dir: string
  /** The master's PID (leader of its own process group). */
  readonly pid: number
  /** The master and its live workers. */
  pids(): number[]
  close(): Promise<void>
}

/** True when the saslauthd binary is installed. */
export function saslauthdAvailable(binary = DEFAULT_SASLAUTHD_RUNNER_OPTIONS.binary): boolean {
  try {
    accessSync(binary, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The host principals libkrb5 may pick for `host` on this machine (with and without the FQDN). */
function hostPrincipals(): string[] {
  return [...new Set([hostname(), 'localhost'])].map((h) => `host/${h.toLowerCase()}`)
}

const prepared = new WeakMap<Realm, Promise<void>>()

/** Creates the host principals once per realm (random keys; ktadd -norandkey copies them). */
function prepareRealm(realm: Realm): Promise<void> {
  let p = prepared.get(realm)
  if (p === undefined) {
    p = (async () => {
      for (const princ of hostPrincipals()) {
        const listed = await realm.kadmin(`getprinc ${princ}`).catch(() => '')
        if (!listed.includes('Principal:')) await realm.kadmin(`addprinc -randkey ${princ}`)
      }
    })()
    prepared.set(realm, p)
  }
  return p
}

function fail(message: string, cause?: unknown): never {
  throw new SaslgateError('SASLGATE_ERR_LOAD', message, cause === undefined ? {} : { cause })
}

/** Starts saslauthd for `realm` and waits until its socket answers connections. */
export async function startSaslauthd(options: SaslauthdRunnerOptions): Promise<SaslauthdInstance> {
  const o = { ...DEFAULT_SASLAUTHD_RUNNER_OPTIONS, ...stripUndefined(options) }
  const realm = options.realm
  await prepareRealm(realm)
  const dir = await mkdtemp(join(tmpdir(), 'saslgate-saslauthd-'))
  let child: ChildProcess | undefined
  try {
    const keytab = join(dir, 'saslauthd.keytab')
    for (const princ of hostPrincipals()) {
      await realm.kadmin(`ktadd -k ${keytab} -norandkey ${princ}`)
    }
    const kdcs = o.kdcs.length > 0 ? o.kdcs : realm.kdcs.map((k) => `${k.host}:${k.port}`)
    const conf = await readFile(realm.krb5ConfPath, 'utf8')
    const kdcLines = kdcs.map((k) => `    kdc = ${k}`).join('\n')
    const rewritten = conf.replace(/^\s*kdc = .*\n(?:\s*kdc = .*\n)*/m, `${kdcLines}\n`)
    if (!rewritten.includes(kdcLines)) fail('cannot rewrite the KDC list of the realm krb5.conf')
    const krb5Conf = join(dir, 'krb5.conf')
    await writeFile(krb5Conf, rewritten)
    const args = ['-a', 'kerberos5', '-n', String(o.workers), '-m', dir, '-d']
    if (o.cache) args.push('-c')
    child = spawn(o.binary, args, {
      detached: true, // own process group: stop() signals only saslauthd's PIDs
      env: {
        PATH: process.env.PATH,
        ...realm.env,
        KRB5_CONFIG: krb5Conf,
        KRB5_KTNAME: `FILE:${keytab}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    const keep = (d: Buffer) => {
      out = (out + d.toString('utf8')).slice(-16384)
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    const started = child
    const exited = new Promise<void>((resolve) => {
      if (started.exitCode !== null || started.signalCode !== null) resolve()
      else started.once('exit', () => resolve())
    })
    const onExit = () => killGroup(started, 'SIGKILL')
    process.once('exit', onExit)
    const deadline = Date.now() + o.readyTimeoutMs
    const expected = Math.max(0, o.workers - 1)
    while (
      !(out.includes('listening on socket') && childPids(started.pid ?? -1).length >= expected)
    ) {
      if (started.exitCode !== null) fail(`saslauthd exited (${started.exitCode}):\n${out}`)
      if (Date.now() > deadline) fail(`saslauthd not ready after ${o.readyTimeoutMs} ms:\n${out}`)
      await sleep(50)
    }
    let closing: Promise<void> | undefined
    return {
      socketPath: join(dir, 'mux'),
      dir,
      pid: started.pid ?? -1,
      pids: () =>
        started.exitCode === null ? [started.pid ?? -1, ...childPids(started.pid ?? -1)] : [],
      close() {
        closing ??= (async () => {
          killGroup(started, 'SIGTERM')
          const t = setTimeout(() => killGroup(started, 'SIGKILL'), o.stopTimeoutMs)
          t.unref()
          await exited
          clearTimeout(t)
          killGroup(started, 'SIGKILL') // workers left behind by the master, if any
          process.removeListener('exit', onExit)
          await rm(dir, { recursive: true, force: true })
        })()
        return closing
      },
    }
  } catch (err) {
    if (child !== undefined) killGroup(child, 'SIGKILL')
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

/** Signals the process group led by `child` (saslauthd and its workers, nothing else). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // group gone
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
