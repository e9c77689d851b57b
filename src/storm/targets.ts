/**
 * The two servers under test behind one interface: saslgate in single-host mode (a child
 * process answering a saslauthd socket) and the real saslauthd.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Realm } from '../testing/realm.js'
import { startSaslgate } from '../testing/saslgate-process.js'
import { startSaslauthd } from './saslauthd-runner.js'

export type TargetKind = 'saslgate' | 'saslauthd'

export interface TargetOptions {
  kind: TargetKind
  realm: Realm
  /** KDC addresses (`host:port`) the server must use, e.g. a delay proxy. */
  kdcs: readonly string[]
  /** saslgate: extra SASLGATE_* variables (e.g. cache TTLs, deriveKeys). */
  saslgateEnv?: Record<string, string>
  /** saslauthd: `-n`. */
  saslauthdWorkers?: number
  /** saslauthd: `-c`. */
  saslauthdCache?: boolean
}

export interface Target {
  readonly kind: TargetKind
  readonly socketPath: string
  /** PIDs whose CPU time is the server's. */
  pids(): number[]
  close(): Promise<void>
}

/** SASLGATE_* variables of every benchmarked saslgate (per-decision logs are at debug level). */
export const DEFAULT_SASLGATE_BENCH_ENV: Readonly<Record<string, string>> = {
  SASLGATE_LOG_LEVEL: 'info',
  // The decision path alone; bench/telemetry-overhead.ts measures tracing.
  OTEL_SDK_DISABLED: 'true',
}

export async function startTarget(options: TargetOptions): Promise<Target> {
  if (options.kind === 'saslauthd') {
    const s = await startSaslauthd({
      realm: options.realm,
      kdcs: options.kdcs,
      workers: options.saslauthdWorkers ?? 5,
      cache: options.saslauthdCache ?? false,
    })
    return {
      kind: 'saslauthd',
      socketPath: s.socketPath,
      pids: () => s.pids(),
      close: () => s.close(),
    }
  }
  const realm = options.realm
  const dir = await mkdtemp(join(tmpdir(), 'saslgate-bench-'))
  const socketPath = join(dir, 'mux')
  try {
    const proc = await startSaslgate({
      args: ['serve', '--saslauthd-socket', socketPath],
      env: {
        ...realm.env,
        SASLGATE_KERBEROS_VERIFY_PRINCIPAL: realm.servicePrincipal,
        SASLGATE_KERBEROS_KDCS: `${realm.name}=${options.kdcs.join(' ')}`,
        ...DEFAULT_SASLGATE_BENCH_ENV,
        ...options.saslgateEnv,
      },
    })
    let closing: Promise<void> | undefined
    return {
      kind: 'saslgate',
      socketPath,
      pids: () => (proc.child.exitCode === null ? [proc.pid] : []),
      close() {
        closing ??= (async () => {
          await proc.stop()
          await rm(dir, { recursive: true, force: true })
        })()
        return closing
      },
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}
