/**
 * The MIT tools a test realm runs: lookup on PATH and the sbin dirs, bounded runs of short-lived
 * tools with a child-only environment, and turning their output into redacted error text.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { SaslgateError } from '../errors.js'

const KADMIN_NOISE_RE =
  /^(?:WARNING: )?No policy specified for \S+; (?:defaulting to no|assigning)/i

export function fail(message: string, cause?: unknown): never {
  throw new SaslgateError('SASLGATE_ERR_TEST_REALM', message, cause === undefined ? {} : { cause })
}

export function findTool(name: string): string {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/usr/bin',
    '/sbin',
    '/usr/local/sbin',
  ]
  for (const dir of dirs) {
    if (dir === '') continue
    const path = join(dir, name)
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // not here
    }
  }
  return fail(`${name} not found (install the Debian krb5-kdc, krb5-admin-server, krb5-user)`)
}

export function optionalTool(name: string): string | undefined {
  try {
    return findTool(name)
  } catch {
    return undefined
  }
}

export interface ToolResult {
  code: number | null
  stdout: string
  stderr: string
}

export function childEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: 'C',
    LC_ALL: 'C',
    ...env,
  }
}

/** Runs a short-lived tool with a bounded time; `input` goes to its stdin. Never throws. */
export function runTool(
  file: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  timeoutMs: number,
  input = '',
): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env: childEnv(env), stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.stdin.on('error', () => {}) // EPIPE if the tool exits early: its exit code tells
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    timer.unref()
    child.on('error', (e) => {
      clearTimeout(timer)
      resolve({ code: null, stdout: '', stderr: String(e) })
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      })
    })
    child.stdin.end(input)
  })
}

/** Removes every secret (and any `-pw ARG`) from text headed for an error message. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text.replace(/-pw\s+("(?:[^"]|"")*"|\S+)/g, '-pw ***')
  for (const s of secrets) if (s.length > 0) out = out.replaceAll(s, '***')
  return out
}

export function kadminErrors(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !KADMIN_NOISE_RE.test(l))
}

export function tail(text: string, lines = 15): string {
  return text.split('\n').slice(-lines).join('\n')
}
