/**
 * A throw-away redis-server (Debian `redis-server`) on 127.0.0.1, for shared-state tests.
 *
 * No persistence (`--save '' --appendonly no`), its own temp dir, a free port. `stop()`
 * kills it (SIGKILL, like a crash) and keeps the port for `start()`; `close()` kills only
 * the PID this helper started and removes the temp dir. Idempotent.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export const REDIS_SERVER = '/usr/bin/redis-server'

export const DEFAULT_REDIS_TEST_OPTIONS = {
  /** How long to wait for the server to answer PING after start. */
  startTimeoutMs: 5000,
}

export interface TestRedis {
  readonly port: number
  readonly url: string
  /** PID of the running server, undefined while stopped. */
  readonly pid: number | undefined
  /** Kills the server (SIGKILL) and waits for it to exit. */
  stop(): Promise<void>
  /** Starts it again on the same port. */
  start(): Promise<void>
  /** Stops it and removes the temp dir. Idempotent. */
  close(): Promise<void>
}

export function haveRedis(): boolean {
  return existsSync(REDIS_SERVER)
}

export async function startRedis(
  options: Partial<typeof DEFAULT_REDIS_TEST_OPTIONS> = {},
): Promise<TestRedis> {
  const o = { ...DEFAULT_REDIS_TEST_OPTIONS, ...options }
  const dir = await mkdtemp(join(tmpdir(), 'saslgate-redis-'))
  const port = await freePort()
  let child: ChildProcess | undefined
  let closed = false

  const stop = async () => {
    const c = child
    child = undefined
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()))
    c.kill('SIGKILL')
    await exited
  }

  const start = async () => {
    if (closed) throw new Error('test redis closed')
    if (child !== undefined) return
    const c = spawn(
      REDIS_SERVER,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--protected-mode',
        'yes',
      ],
      { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
    )
    child = c
    let stderr = ''
    c.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const deadline = Date.now() + o.startTimeoutMs
    while (Date.now() < deadline) {
      if (c.exitCode !== null) break
      if (await ping(port)) return
      await sleep(20)
    }
    await stop()
    throw new Error(`redis-server did not start on port ${port}: ${stderr.slice(0, 500)}`)
  }

  const close = async () => {
    if (closed) return
    closed = true
    await stop()
    await rm(dir, { recursive: true, force: true })
  }

  try {
    await start()
  } catch (err) {
    await close()
    throw err
  }
  const server: TestRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid
    },
    stop,
    start,
    close,
  }
  return server
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/** True when something on the port answers PING with +PONG within 500 ms. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    const done = (ok: boolean) => {
      socket.destroy()
      clearTimeout(timer)
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), 500)
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')))
  })
}
