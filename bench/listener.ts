/**
 * saslauthd listener benchmark.
 *
 *   npx tsx bench/listener.ts [--json FILE] [--requests N] [--seconds S] [--hold N]
 *                             [--only throughput|hold]
 *
 * Three processes: this orchestrator, a server child (the listener with an authenticator that
 * answers OK at once, run with --expose-gc for memory figures) and a client child (the load
 * generator), so the load does not share an event loop with the listener.
 *
 * 1. Closed loop at 10, 100, 1,000 concurrent clients, each request a new connection like
 *    libsasl2 (connect, write, read the reply, close), bounded by request count and time.
 *    Rows: a bare unix-socket server that answers OK without decoding (the floor), the
 *    listener with fields=4 and 4-field requests (libsasl2 2.1.x), the listener with
 *    fields=auto and 5-field requests (cyrus-sasl master), and fields=auto with 4-field
 *    requests (pays the five-field grace).
 * 2. N connections held open at once (nothing sent, or half a frame): RSS and heap per
 *    connection in the server, and request latency while they are held.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Authenticator } from '../src/authenticator.js'
import { decodeReply, encodeRequest, type FieldMode } from '../src/saslauthd/codec.js'
import { SaslauthdListener } from '../src/saslauthd/listener.js'

const SELF = fileURLToPath(import.meta.url)

interface Percentiles {
  n: number
  p50: number
  p90: number
  p99: number
  max: number
}

function percentiles(values: number[]): Percentiles {
  const a = Float64Array.from(values).sort()
  const at = (q: number) =>
    a.length === 0 ? 0 : a[Math.min(a.length - 1, Math.floor(q * a.length))]!
  return {
    n: a.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: a.length ? a[a.length - 1]! : 0,
  }
}

type Msg = { id: number; cmd: string; [k: string]: unknown }

/** Request/response over the IPC channel of a child. */
function rpc<T>(child: ChildProcess, cmd: string, args: Record<string, unknown> = {}): Promise<T> {
  const id = Math.floor(Math.random() * 1e9)
  return new Promise((resolve, reject) => {
    const onMsg = (m: { id: number; result?: T; error?: string }) => {
      if (m.id !== id) return
      child.off('message', onMsg)
      child.off('exit', onExit)
      if (m.error !== undefined) reject(new Error(m.error))
      else resolve(m.result as T)
    }
    const onExit = () => reject(new Error(`${cmd}: child exited`))
    child.on('message', onMsg)
    child.once('exit', onExit)
    child.send({ id, cmd, ...args })
  })
}

function serveRpc(handlers: Record<string, (m: Msg) => Promise<unknown>>): void {
  process.on('message', (m: Msg) => {
    const h = handlers[m.cmd]
    if (h === undefined) {
      process.send!({ id: m.id, error: `unknown command ${m.cmd}` })
      return
    }
    h(m).then(
      (result) => process.send!({ id: m.id, result }),
      (err: unknown) => process.send!({ id: m.id, error: String(err) }),
    )
  })
  process.on('disconnect', () => process.exit(0))
  process.on('SIGTERM', () => process.exit(0))
}

// ---------------------------------------------------------------- server child

interface MemSample {
  rssMB: number
  heapUsedMB: number
  externalMB: number
  openConnections: number
}

function serverRole(): void {
  const dir = mkdtempSync(join(tmpdir(), 'saslgate-bench-'))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  let listener: SaslauthdListener | undefined
  let raw: { server: Server; sockets: Set<Socket> } | undefined
  let latencies: number[] = []
  let seq = 0
  let cpuMark = process.cpuUsage()
  let wallMark = performance.now()
  const okAuth: Authenticator = {
    authenticate: async () => ({ decision: 'ok', reason: 'ok', stage: 'bench' }),
    close: async () => {},
  }
  const mb = (b: number) => Math.round((b / 1048576) * 100) / 100
  const gc = (globalThis as { gc?: () => void }).gc
  const open = () => listener?.stats().openConnections ?? raw?.sockets.size ?? 0

  const stop = async () => {
    await listener?.close()
    listener = undefined
    if (raw) {
      for (const s of raw.sockets) s.destroy()
      const server = raw.server
      await new Promise<void>((r) => server.close(() => r()))
      raw = undefined
    }
  }

  serveRpc({
    start: async (m) => {
      await stop()
      const socketPath = join(dir, `s${++seq}`)
      if (m.kind === 'raw') {
        // The floor: accept, read once, answer OK, close. No decoding, no timers.
        const sockets = new Set<Socket>()
        const reply = Buffer.from('\x00\x02OK', 'latin1')
        const server = createServer((s) => {
          sockets.add(s)
          const t0 = performance.now()
          s.once('data', () => {
            s.end(reply)
            latencies.push(performance.now() - t0)
          })
          s.on('error', () => {})
          s.on('close', () => sockets.delete(s))
        })
        await new Promise<void>((r) => server.listen({ path: socketPath, backlog: 4096 }, r))
        raw = { server, sockets }
      } else {
        listener = new SaslauthdListener({
          socketPath,
          authenticator: okAuth,
          fields: m.fields as FieldMode,
          readTimeoutMs: (m.readTimeoutMs as number | undefined) ?? 5000,
          onDecision: (e) => {
            if (e.decision === 'ok') latencies.push(e.latencyMs)
          },
        })
        await listener.listen()
      }
      return { socketPath }
    },
    stop: async () => {
      await stop()
      return {}
    },
    takeLatencies: async () => {
      const p = percentiles(latencies)
      const cpu = process.cpuUsage(cpuMark)
      const cpuPct = ((cpu.user + cpu.system) / 1000 / (performance.now() - wallMark)) * 100
      latencies = []
      cpuMark = process.cpuUsage()
      wallMark = performance.now()
      return { ...p, cpuPct }
    },
    mem: async (): Promise<MemSample> => {
      for (let i = 0; i < 3; i++) gc?.()
      const u = process.memoryUsage()
      return {
        rssMB: mb(u.rss),
        heapUsedMB: mb(u.heapUsed),
        externalMB: mb(u.external + u.arrayBuffers),
        openConnections: open(),
      }
    },
    waitOpen: async (m) => {
      const want = m.count as number
      const deadline = performance.now() + 30_000
      while (open() !== want && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20))
      }
      return open()
    },
    exit: async () => {
      await stop()
      rmSync(dir, { recursive: true, force: true })
      setImmediate(() => process.exit(0))
      return {}
    },
  })
}

// ---------------------------------------------------------------- client child

interface LoadResult extends Percentiles {
  cpuPct: number
  ok: number
  errors: number
  seconds: number
  rps: number
}

function oneRequest(path: string, payload: Buffer, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const s = connect({ path })
    let buf = Buffer.alloc(0)
    let done = false
    const finish = (v: number | null) => {
      if (done) return
      done = true
      clearTimeout(timer)
      s.destroy()
      resolve(v)
    }
    const timer = setTimeout(() => finish(null), timeoutMs)
    s.on('connect', () => s.write(payload))
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      const r = decodeReply(buf)
      if (r.status === 'reply') finish(r.ok ? performance.now() - t0 : null)
      else if (r.status === 'error') finish(null)
    })
    s.on('error', () => finish(null))
    s.on('close', () => finish(null))
  })
}

async function load(
  path: string,
  concurrency: number,
  maxRequests: number,
  maxSeconds: number,
  fieldCount: 4 | 5,
): Promise<LoadResult> {
  const payload = encodeRequest({
    login: 'alice',
    password: 'secret',
    service: 'imap',
    realm: '',
    ...(fieldCount === 5 ? { clientAddress: '192.0.2.1;50000' } : {}),
  })
  const lat: number[] = []
  let started = 0
  let errors = 0
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const endAt = t0 + maxSeconds * 1000
  const worker = async () => {
    while (started < maxRequests && performance.now() < endAt) {
      started++
      const ms = await oneRequest(path, payload, 10_000)
      if (ms === null) errors++
      else lat.push(ms)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const cpuPct = ((cpu.user + cpu.system) / 1e6 / seconds) * 100
  return { ...percentiles(lat), cpuPct, ok: lat.length, errors, seconds, rps: lat.length / seconds }
}

function clientRole(): void {
  let held: Socket[] = []
  serveRpc({
    load: async (m) =>
      load(
        m.path as string,
        m.concurrency as number,
        m.requests as number,
        m.seconds as number,
        m.fieldCount as 4 | 5,
      ),
    hold: async (m) => {
      const count = m.count as number
      const half =
        m.kind === 'half'
          ? encodeRequest({ login: 'alice', password: 'secret', service: 'imap' }).subarray(0, 9)
          : null
      const batch = 500
      for (let i = 0; i < count; i += batch) {
        const n = Math.min(batch, count - i)
        await Promise.all(
          Array.from(
            { length: n },
            () =>
              new Promise<void>((resolve) => {
                const s = connect({ path: m.path as string })
                s.on('error', () => resolve())
                s.on('connect', () => {
                  if (half) s.write(half)
                  held.push(s)
                  resolve()
                })
              }),
          ),
        )
      }
      return held.length
    },
    release: async () => {
      for (const s of held) s.destroy()
      const n = held.length
      held = []
      return n
    },
  })
}

// ---------------------------------------------------------------- orchestrator

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

function fdLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'))
    const v = Number(line?.split(/\s+/)[3])
    return Number.isFinite(v) ? v : undefined
  } catch {
    return undefined
  }
}

const fmt = (v: number, d = 2) => v.toFixed(d).padStart(9)

interface Variant {
  name: string
  kind: 'raw' | 'listener'
  fields?: FieldMode
  fieldCount: 4 | 5
  levels: number[]
}

const VARIANTS: Variant[] = [
  { name: 'bare socket (floor)', kind: 'raw', fieldCount: 4, levels: [10, 100, 1000] },
  {
    name: 'listener fields=4, 4-field',
    kind: 'listener',
    fields: '4',
    fieldCount: 4,
    levels: [10, 100, 1000],
  },
  {
    name: 'listener auto, 5-field',
    kind: 'listener',
    fields: 'auto',
    fieldCount: 5,
    levels: [10, 100, 1000],
  },
  {
    name: 'listener auto, 4-field (5 ms grace)',
    kind: 'listener',
    fields: 'auto',
    fieldCount: 4,
    levels: [10, 1000],
  },
]

async function orchestrate(): Promise<void> {
  const jsonPath = argValue('--json')
  const requests = Number(argValue('--requests') ?? 30_000)
  const seconds = Number(argValue('--seconds') ?? 10)
  const holdCount = Number(argValue('--hold') ?? 5000)
  const only = argValue('--only') // `throughput` or `hold`
  const out = (s: string) => process.stdout.write(`${s}\n`)
  const limit = fdLimit()
  if (limit !== undefined && limit < holdCount + 200) {
    out(`warning: open-file limit ${limit} is below ${holdCount + 200}; raise it with ulimit -n`)
  }
  const children = new Set<ChildProcess>()
  const spawnRole = (role: 'server' | 'client') => {
    const child = fork(SELF, ['--role', role], {
      execArgv: role === 'server' ? [...process.execArgv, '--expose-gc'] : process.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    children.add(child)
    child.once('exit', () => children.delete(child))
    return child
  }
  const killAll = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill()
  }
  process.once('exit', killAll)

  const throughput: unknown[] = []
  const held: unknown[] = []
  const results = {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    requestsPerRun: requests,
    secondsPerRun: seconds,
    holdCount,
    throughput,
    held,
  }
  const client = spawnRole('client')
  try {
    if (only !== 'hold') {
      out(
        '\nClosed loop, one connection per request. Latency in ms; client = connect to reply read,' +
          '\nsrv = accept to reply handed to the socket (in the listener process).',
      )
      out(
        `${'variant'.padEnd(37)}${'conc'.padStart(5)}${'req/s'.padStart(8)}${'err'.padStart(5)}` +
          `${'p50'.padStart(9)}${'p99'.padStart(9)}${'srv p50'.padStart(9)}${'srv p99'.padStart(9)}` +
          `${'srv cpu'.padStart(8)}${'cli cpu'.padStart(8)}`,
      )
    }
    for (const v of only === 'hold' ? [] : VARIANTS) {
      const server = spawnRole('server')
      const { socketPath } = await rpc<{ socketPath: string }>(server, 'start', {
        kind: v.kind,
        fields: v.fields,
      })
      // Warm-up (JIT), discarded.
      await rpc(client, 'load', {
        path: socketPath,
        concurrency: 10,
        requests: 2000,
        seconds: 3,
        fieldCount: v.fieldCount,
      })
      await rpc(server, 'takeLatencies')
      for (const c of v.levels) {
        const r = await rpc<LoadResult>(client, 'load', {
          path: socketPath,
          concurrency: c,
          requests: Math.max(requests, c * 10),
          seconds,
          fieldCount: v.fieldCount,
        })
        const srv = await rpc<Percentiles & { cpuPct: number }>(server, 'takeLatencies')
        throughput.push({ variant: v.name, concurrency: c, client: r, server: srv })
        out(
          `${v.name.padEnd(37)}${String(c).padStart(5)}${r.rps.toFixed(0).padStart(8)}` +
            `${String(r.errors).padStart(5)}${fmt(r.p50)}${fmt(r.p99)}${fmt(srv.p50)}${fmt(srv.p99)}` +
            `${`${srv.cpuPct.toFixed(0)}%`.padStart(8)}${`${r.cpuPct.toFixed(0)}%`.padStart(8)}`,
        )
      }
      await rpc(server, 'exit')
    }

    if (only !== 'throughput') {
      out(`\n${holdCount} connections held open at once (fresh listener process, after GC)`)
      out(
        `${'held'.padEnd(14)}${'open'.padStart(6)}${'RSS MB'.padStart(9)}${'+RSS MB'.padStart(9)}` +
          `${'KB/conn'.padStart(9)}${'+heap MB'.padStart(10)}${'B/conn'.padStart(8)}` +
          `${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'srv p99'.padStart(9)}`,
      )
    }
    for (const kind of only === 'throughput' ? [] : (['idle', 'half'] as const)) {
      const server = spawnRole('server')
      const { socketPath } = await rpc<{ socketPath: string }>(server, 'start', {
        kind: 'listener',
        fields: '4',
        readTimeoutMs: 120_000,
      })
      await rpc(client, 'load', {
        path: socketPath,
        concurrency: 10,
        requests: 2000,
        seconds: 3,
        fieldCount: 4,
      })
      const before = await rpc<MemSample>(server, 'mem')
      const opened = await rpc<number>(client, 'hold', { path: socketPath, count: holdCount, kind })
      const open = await rpc<number>(server, 'waitOpen', { count: opened })
      const during = await rpc<MemSample>(server, 'mem')
      await rpc(server, 'takeLatencies')
      const r = await rpc<LoadResult>(client, 'load', {
        path: socketPath,
        concurrency: 10,
        requests: 5000,
        seconds,
        fieldCount: 4,
      })
      const srv = await rpc<Percentiles>(server, 'takeLatencies')
      await rpc(client, 'release')
      await rpc(server, 'waitOpen', { count: 0 })
      const after = await rpc<MemSample>(server, 'mem')
      await rpc(server, 'exit')
      const dRss = during.rssMB - before.rssMB
      const dHeap = during.heapUsedMB - before.heapUsedMB
      held.push({ kind, opened, open, before, during, after, loadWhileHeld: r, server: srv })
      out(
        `${kind === 'idle' ? 'nothing sent' : 'half a frame'}`.padEnd(14) +
          `${String(open).padStart(6)}${fmt(during.rssMB, 1)}${fmt(dRss, 1)}` +
          `${fmt((dRss * 1024) / Math.max(1, open), 1)}${dHeap.toFixed(1).padStart(10)}` +
          `${((dHeap * 1048576) / Math.max(1, open)).toFixed(0).padStart(8)}` +
          `${fmt(r.p50)}${fmt(r.p99)}${fmt(srv.p99)}`,
      )
    }
    if (only !== 'throughput') {
      out('(p50/p99: 10 concurrent clients making requests while the connections are held)')
    }
  } finally {
    killAll()
  }
  if (jsonPath !== undefined) {
    writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`)
    out(`\nJSON written to ${jsonPath}`)
  }
}

const role = argValue('--role')
if (role === 'server') serverRole()
else if (role === 'client') clientRole()
else {
  orchestrate().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${String(err)}\n`)
    process.exitCode = 1
  })
}
