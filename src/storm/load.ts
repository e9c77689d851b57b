/**
 * The load generator: runs a LoadSpec in a separate Node process (child_process.fork of
 * load-worker), so measured latencies never include the event loop of the process under test or
 * of the orchestrator. See load-engine.ts for the flows and the report.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { SaslgateError } from '../errors.js'
import type { Flow, LoadProgress, LoadReport, LoadSpec } from './load-engine.js'

export type {
  Bucket,
  ClassReport,
  ClosedFlow,
  Credential,
  Flow,
  LoadProgress,
  LoadReport,
  LoadSpec,
  OpenFlow,
} from './load-engine.js'

export const DEFAULT_LOAD_OPTIONS = {
  durationMs: 15_000,
  maxRequests: 1_000_000,
  clientTimeoutMs: 5_000,
  maxOpenInFlight: 5_000,
  bucketMs: 250,
  seed: 1,
  service: 'imap',
  realm: '',
  /** Extra time over duration + client timeout before the worker is killed. */
  graceMs: 15_000,
}

export interface LoadOptions {
  socketPath: string
  flows: readonly Flow[]
  durationMs?: number
  maxRequests?: number
  clientTimeoutMs?: number
  maxOpenInFlight?: number
  bucketMs?: number
  seed?: number
  service?: string
  realm?: string
  graceMs?: number
  /** Called about twice a second with what the run has seen so far. */
  onProgress?: (progress: LoadProgress) => void
}

const here = import.meta.url
const WORKER = fileURLToPath(
  new URL(here.endsWith('.ts') ? './load-worker.ts' : './load-worker.js', here),
)

/** Forks the worker, runs the load, resolves with its report; the worker is killed if late. */
export function runLoad(options: LoadOptions): Promise<LoadReport> {
  const d = DEFAULT_LOAD_OPTIONS
  const spec: LoadSpec = {
    socketPath: options.socketPath,
    flows: options.flows,
    durationMs: options.durationMs ?? d.durationMs,
    maxRequests: options.maxRequests ?? d.maxRequests,
    clientTimeoutMs: options.clientTimeoutMs ?? d.clientTimeoutMs,
    maxOpenInFlight: options.maxOpenInFlight ?? d.maxOpenInFlight,
    bucketMs: options.bucketMs ?? d.bucketMs,
    seed: options.seed ?? d.seed,
    service: options.service ?? d.service,
    realm: options.realm ?? d.realm,
  }
  for (const k of ['durationMs', 'maxRequests', 'clientTimeoutMs', 'bucketMs'] as const) {
    if (!Number.isFinite(spec[k]) || spec[k] <= 0) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', `load option ${k} must be > 0`)
    }
  }
  const limitMs = spec.durationMs + spec.clientTimeoutMs + (options.graceMs ?? d.graceMs)
  return new Promise((resolve, reject) => {
    // A .ts worker (running from a checkout) needs tsx even when the parent loaded it in code.
    const execArgv =
      WORKER.endsWith('.ts') && !process.execArgv.includes('tsx')
        ? [...process.execArgv, '--import', 'tsx']
        : process.execArgv
    const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv })
    let result: { report?: LoadReport; error?: string } | undefined
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs)
    timer.unref()
    child.on('message', (m: { report?: LoadReport; error?: string; progress?: LoadProgress }) => {
      if (m.progress !== undefined) options.onProgress?.(m.progress)
      else result = m
    })
    child.once('error', (err) => {
      clearTimeout(timer)
      reject(new SaslgateError('SASLGATE_ERR_LOAD', 'load worker failed', { cause: err }))
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      if (result?.report !== undefined) resolve(result.report)
      else
        reject(
          new SaslgateError(
            'SASLGATE_ERR_LOAD',
            `load worker ended without a report (${result?.error ?? code ?? signal})`,
          ),
        )
    })
    child.send({ spec, progress: options.onProgress !== undefined })
  })
}
