/**
 * What tracing costs on the cached path: two shim + service pairs against one realm, one
 * with OpenTelemetry off (`OTEL_SDK_DISABLED=true`: Prometheus metrics only) and one
 * exporting every span and metric over OTLP/HTTP (protobuf) to a sink on 127.0.0.1 (a child
 * process that reads and drops every export, standing in for a collector on another host).
 *
 *   npx tsx bench/telemetry-overhead.ts [--seconds S] [--clients 10,100] [--rounds R] [--json FILE]
 *
 * Each user logs in once through each pair (then every request is a verdict-cache hit), and
 * the two pairs are measured alternately, R rounds, so drift on the shared machine hits both.
 * A traced login makes 4 spans (socket request, RPC attempt, RPC, decision); the KDC spans
 * only appear on cache misses.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startService, startShim, writeTokenFile } from '../src/testing/deployment.js'
import { startRealm } from '../src/testing/realm.js'
import type { SaslgateProcess } from '../src/testing/saslgate-process.js'
import { benchPassword, closedLoop, type LoopResult, warm } from './lib/closed-loop.js'

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    clients: { type: 'string', default: '10,100' },
    users: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
})
const SECONDS = Number(args.seconds)
const CLIENTS = String(args.clients).split(',').map(Number)
const ROUNDS = Number(args.rounds)
const TOKEN = `bench-token-${'t'.repeat(40)}`

/** An OTLP/HTTP sink in its own process: answers 200 to every export, counts them. */
async function startSink(): Promise<{
  url: string
  child: ChildProcess
  count(): Promise<number>
}> {
  const code = `
    let n = 0
    const server = require('node:http').createServer((req, res) => {
      if (req.url === '/count') { res.end(String(n)); return }
      req.resume()
      req.on('end', () => { n++; res.writeHead(200, { 'content-type': 'application/x-protobuf' }); res.end() })
    })
    server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'))
    process.on('SIGTERM', () => process.exit(0))`
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())))
    child.once('exit', () => reject(new Error('sink exited')))
    setTimeout(() => reject(new Error('sink did not start')), 10_000).unref()
  })
  const url = `http://127.0.0.1:${port}`
  return { url, child, count: async () => Number(await (await fetch(`${url}/count`)).text()) }
}

async function main(): Promise<void> {
  const names = Array.from(
    { length: Number(args.users) },
    (_, i) => `tel${String(i).padStart(4, '0')}`,
  )
  const realm = await startRealm({
    users: names.map((name) => ({ name, password: benchPassword(name) })),
  })
  const sink = await startSink()
  const dir = mkdtempSync(join(tmpdir(), 'saslgate-bench-tel-'))
  const procs: SaslgateProcess[] = []
  try {
    const tokenFile = writeTokenFile(dir, TOKEN)
    const pair = async (name: string, env: Record<string, string>) => {
      const svc = await startService({ realm, tokenFile, env, readyTimeoutMs: 30_000 })
      procs.push(svc.proc)
      const socket = join(dir, name)
      procs.push(
        await startShim({ socket, upstream: svc.url, tokenFile, env, readyTimeoutMs: 30_000 }),
      )
      return socket
    }
    const off = await pair('off', { OTEL_SDK_DISABLED: 'true' })
    const on = await pair('on', { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url })
    const sampled = await pair('sampled', {
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.1',
    })
    const configs = [
      ['off', off],
      ['on (every login traced)', on],
      ['on, 10% of logins traced', sampled],
    ] as const
    for (const [, socket] of configs) {
      await warm(socket, names)
      await closedLoop(socket, names, 1, 10)
    }
    const rows: Array<{ clients: number; telemetry: string; round: number } & LoopResult> = []
    const lines = [
      `| clients | telemetry (cache hits, mean of ${ROUNDS} rounds of ${SECONDS} s) | requests/s (vs off) | p50 ms | p99 ms |`,
      '|---|---|---|---|---|',
    ]
    for (const clients of CLIENTS) {
      for (let round = 1; round <= ROUNDS; round++) {
        for (const [telemetry, socket] of configs) {
          const r = await closedLoop(socket, names, SECONDS, clients)
          rows.push({ clients, telemetry, round, ...r })
          process.stderr.write(
            `${clients} clients, telemetry ${telemetry}, round ${round}: ${r.perSecond}/s p50 ${r.latency.p50} p99 ${r.latency.p99}, ${r.failures} failed\n`,
          )
        }
      }
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
      const agg = (t: string) => {
        const rs = rows.filter((r) => r.clients === clients && r.telemetry === t)
        return {
          perSecond: mean(rs.map((r) => r.perSecond)),
          p50: mean(rs.map((r) => r.latency.p50)),
          p99: mean(rs.map((r) => r.latency.p99)),
        }
      }
      const a = agg('off')
      lines.push(
        `| ${clients} | off | ${Math.round(a.perSecond)} | ${a.p50.toFixed(2)} | ${a.p99.toFixed(2)} |`,
      )
      for (const [name] of configs.slice(1)) {
        const b = agg(name)
        lines.push(
          `| ${clients} | ${name} | ${Math.round(b.perSecond)} (${(((b.perSecond - a.perSecond) / a.perSecond) * 100).toFixed(1)}%) | ${b.p50.toFixed(2)} | ${b.p99.toFixed(2)} |`,
        )
      }
    }
    process.stdout.write(`${lines.join('\n')}\n`)
    process.stdout.write(`OTLP exports received by the sink: ${await sink.count()}\n`)
    if (args.json !== undefined)
      writeFileSync(args.json, JSON.stringify({ seconds: SECONDS, rows }, null, 2))
  } finally {
    for (const p of procs.reverse()) await p.stop()
    sink.child.kill('SIGTERM')
    await realm.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
