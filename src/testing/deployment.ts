/**
 * The saslgate deployments tests, benchmarks and the demo start again and again, as thin
 * wrappers over `startSaslgate`: the RPC service (`serve --listen`), the shim (`shim --socket
 * --upstream`) and single host (`serve --saslauthd-socket`), each against a test realm; plus
 * realm users, a token file, mTLS arguments and a bounded run of any command. Plain async code,
 * no test-framework imports: the demo imports this file too. Callers stop what they start.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TestPki } from './pki.js'
import { freePort } from './ports.js'
import type { Realm, RealmUser } from './realm.js'
import { type SaslgateProcess, startSaslgate } from './saslgate-process.js'

/** Environment variables for a child, on top of PATH (and the realm's KRB5_* where it has one). */
export type ChildEnv = Record<string, string>

/**
 * No OpenTelemetry export from a child: no collector listens in tests, and with the default
 * OTLP exporters a stop after traffic waits ~8.5 s for their export timeouts (measured in
 * faults.test.ts). The Prometheus reader and the code paths stay on.
 */
export const OTEL_OFF: ChildEnv = { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' }
/** `OTEL_OFF` and no OTLP log exporter either. */
export const OTEL_OFF_WITH_LOGS: ChildEnv = { ...OTEL_OFF, OTEL_LOGS_EXPORTER: 'none' }

/** What a saslgate child needs of a realm: its service principal and KRB5_* variables. */
export type RealmForSaslgate = Pick<Realm, 'servicePrincipal' | 'env'>

interface ChildOptions {
  /** More arguments after the ones the helper writes. */
  args?: readonly string[]
  /** Variables of the child besides the realm's (default `OTEL_OFF`); `{}` for none. */
  env?: ChildEnv
  keepAllOutput?: boolean
  readyTimeoutMs?: number
}

export interface ServiceOptions extends ChildOptions {
  realm: RealmForSaslgate
  /** `--token-file`; leave out for a service that authenticates callers otherwise (mTLS). */
  tokenFile?: string
  /** RPC port on 127.0.0.1 (default: a free one). */
  port?: number
}

export interface StartedService {
  proc: SaslgateProcess
  port: number
  /** `http://127.0.0.1:PORT` (a service given `mutualTlsArgs` answers on `https://`). */
  url: string
}

/** `serve --listen 127.0.0.1:PORT [--token-file F] --set kerberos.verifyPrincipal=... ARGS`. */
export async function startService(options: ServiceOptions): Promise<StartedService> {
  const port = options.port ?? (await freePort())
  const tokenArgs = options.tokenFile === undefined ? [] : ['--token-file', options.tokenFile]
  const proc = await startSaslgate({
    args: [
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      ...tokenArgs,
      ...verifyPrincipalArgs(options.realm),
      ...(options.args ?? []),
    ],
    ...childOptions(options, options.realm),
  })
  return { proc, port, url: `http://127.0.0.1:${port}` }
}

/**
 * Arguments of a service that takes callers by client certificate: the PKI's server
 * certificate, its CA for clients, and the client names allowed (comma-separated).
 */
export function mutualTlsArgs(pki: Pick<TestPki, 'server' | 'ca'>, clientNames: string): string[] {
  return [
    '--tls-cert',
    pki.server.cert,
    '--tls-key',
    pki.server.key,
    '--client-ca',
    pki.ca,
    '--set',
    `service.clientNames=${clientNames}`,
  ]
}

export interface ShimOptions extends ChildOptions {
  /** The saslauthd socket the shim listens on. */
  socket: string
  /** Service URL(s), e.g. `StartedService.url`; several are joined with commas. */
  upstream: string | readonly string[]
  /** `--token-file`; leave out for a shim that authenticates otherwise (client certificate). */
  tokenFile?: string
}

/** `shim --socket S --upstream U[,U...] [--token-file F] ARGS` (no realm: the shim needs none). */
export function startShim(options: ShimOptions): Promise<SaslgateProcess> {
  const upstream =
    typeof options.upstream === 'string' ? options.upstream : options.upstream.join(',')
  const tokenArgs = options.tokenFile === undefined ? [] : ['--token-file', options.tokenFile]
  return startSaslgate({
    args: [
      'shim',
      '--socket',
      options.socket,
      '--upstream',
      upstream,
      ...tokenArgs,
      ...(options.args ?? []),
    ],
    ...childOptions(options),
  })
}

export interface SingleHostOptions extends ChildOptions {
  realm: RealmForSaslgate
  /** The saslauthd socket saslgate listens on. */
  socket: string
}

/** `serve --saslauthd-socket S --set kerberos.verifyPrincipal=... ARGS`. */
export function startSingleHost(options: SingleHostOptions): Promise<SaslgateProcess> {
  return startSaslgate({
    args: singleHostArgs(options.realm, options.socket, options.args),
    ...childOptions(options, options.realm),
  })
}

/** The arguments `startSingleHost` gives `saslgate`, for tests that spawn it themselves. */
export function singleHostArgs(
  realm: RealmForSaslgate,
  socket: string,
  args: readonly string[] = [],
): string[] {
  return ['serve', '--saslauthd-socket', socket, ...verifyPrincipalArgs(realm), ...args]
}

/** Realm users from `{ login: password }`, in that order: `realmUsers({ alice: ALICE })`. */
export function realmUsers(passwords: Readonly<Record<string, string>>): RealmUser[] {
  return Object.entries(passwords).map(([name, password]) => ({ name, password }))
}

/** Writes `token` and a newline to `dir/name`, mode 0600; returns the path. */
export function writeTokenFile(dir: string, token: string, name = 'token'): string {
  const path = join(dir, name)
  writeFileSync(path, `${token}\n`, { mode: 0o600 })
  return path
}

export interface BoundedRun {
  code: number | null
  stdout: string
  stderr: string
  elapsedMs: number
}

export interface BoundedRunOptions {
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv
  /** SIGKILL (by PID) after this long; the run then resolves with code null. */
  timeoutMs?: number
  /** The child is in this set while it runs (for an `after` hook that kills leftovers). */
  children?: Set<ChildProcess>
  /** Written to the child's stdin, then closed (default: no stdin at all). */
  input?: string
}

/** Runs a command to its end with a hard time bound; collects stdout and stderr. */
export function runBounded(
  file: string,
  args: readonly string[],
  options: BoundedRunOptions = {},
): Promise<BoundedRun> {
  const { env, timeoutMs = 15_000, children, input } = options
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const stdin = input === undefined ? 'ignore' : 'pipe'
    const child = spawn(file, args, { stdio: [stdin, 'pipe', 'pipe'], env })
    children?.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (d) => {
      stdout += d
    })
    child.stderr?.on('data', (d) => {
      stderr += d
    })
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.once('error', (err) => {
      clearTimeout(timer)
      children?.delete(child)
      reject(err)
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      children?.delete(child)
      resolve({ code, stdout, stderr, elapsedMs: performance.now() - t0 })
    })
    if (input !== undefined) {
      child.stdin?.on('error', () => {}) // a child that exits without reading it
      child.stdin?.end(input)
    }
  })
}

function verifyPrincipalArgs(realm: RealmForSaslgate): string[] {
  return ['--set', `kerberos.verifyPrincipal=${realm.servicePrincipal}`]
}

function childOptions(options: ChildOptions, realm?: RealmForSaslgate) {
  return {
    env: { ...realm?.env, ...(options.env ?? OTEL_OFF) },
    keepAllOutput: options.keepAllOutput,
    readyTimeoutMs: options.readyTimeoutMs,
  }
}
