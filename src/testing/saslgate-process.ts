/**
 * Runs `saslgate <command>` as a child process for tests, benchmarks and the demo, and waits
 * until it logs that it is ready. Only the child it started is ever signalled.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { SaslgateError } from '../errors.js'

/** Path of `bin/saslgate.js`, for tests that spawn it themselves (other stdio, no readiness wait). */
export const SASLGATE_BIN = fileURLToPath(new URL('../../bin/saslgate.js', import.meta.url))

export interface SaslgateProcessOptions {
  /** Arguments after `saslgate`, e.g. `['serve', '--saslauthd-socket', path]`. */
  args: string[]
  /** Environment of the child (PATH is added when missing). */
  env: Record<string, string | undefined>
  /** A log line containing this marks readiness. */
  readyText?: string
  readyTimeoutMs?: number
  /** Keep everything the child writes (for secret-leak checks); else only the last 64 KiB. */
  keepAllOutput?: boolean
}

export interface SaslgateProcess {
  readonly child: ChildProcess
  readonly pid: number
  /** stdout + stderr so far. */
  output(): string
  /** SIGTERM, wait up to `timeoutMs`, then SIGKILL. Resolves with the exit code/signal. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** SIGKILL at once (a crash). */
  kill(): Promise<void>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export async function startSaslgate(options: SaslgateProcessOptions): Promise<SaslgateProcess> {
  const readyText = options.readyText ?? 'saslgate ready'
  const child = spawn(process.execPath, [SASLGATE_BIN, ...options.args], {
    env: { PATH: process.env.PATH, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  const keep = (d: Buffer) => {
    out += d.toString('utf8')
    if (!options.keepAllOutput && out.length > 65536) out = out.slice(-65536)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  const onExit = () => child.kill('SIGKILL')
  process.once('exit', onExit)
  void exited.then(() => process.removeListener('exit', onExit))

  const timeoutMs = options.readyTimeoutMs ?? 20_000
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup()
      child.kill('SIGKILL')
      reject(
        new SaslgateError(
          'SASLGATE_ERR_TEST_REALM',
          `saslgate not ready after ${timeoutMs} ms:\n${out}`,
        ),
      )
    }, timeoutMs)
    const check = () => {
      if (out.includes(readyText)) {
        cleanup()
        resolve()
      }
    }
    const early = ({ code, signal }: { code: number | null; signal: NodeJS.Signals | null }) => {
      cleanup()
      reject(
        new SaslgateError(
          'SASLGATE_ERR_TEST_REALM',
          `saslgate exited (${code ?? signal}) before ready:\n${out}`,
        ),
      )
    }
    const cleanup = () => {
      clearTimeout(timer)
      child.stdout?.off('data', check)
      child.stderr?.off('data', check)
    }
    child.stdout?.on('data', check)
    child.stderr?.on('data', check)
    void exited.then(early)
    check()
  })

  return {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    exited,
    async stop(stopTimeoutMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const t = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs)
        const r = await exited
        clearTimeout(t)
        return r
      }
      return exited
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}
