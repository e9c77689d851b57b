/**
 * What the network hop costs: shim + service on loopback vs single-host mode.
 *
 *   npx tsx bench/service-hop.ts [--seconds S] [--clients N] [--users U] [--rounds R] [--json FILE]
 *
 * A throw-away realm with U password users; `saslgate serve --saslauthd-socket` (single host)
 * and `saslgate serve --listen` + `saslgate shim --socket` (the hop, bearer token over plain
 * HTTP/1.1 keep-alive) against the same KDC. Every user logs in once through each path
 * (so both answer from their verdict caches: the hop is what differs), then N closed-loop
 * clients in this process send good passwords of random users for S seconds per round,
 * alternating the two paths R times. Each request is a new unix-socket connection, like
 * libsasl2. Reports requests/s and p50/p99 per path and the difference.
 *
 * Three to four processes share 2 cores here (load generator, shim, service / serve), so the
 * hop's figures include CPU contention that a front-end and a separate service host would
 * not have.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { LatencySummary } from '../src/storm/stats.js'
import {
  startService,
  startShim,
  startSingleHost,
  writeTokenFile,
} from '../src/testing/deployment.js'
import { startRealm } from '../src/testing/realm.js'
import type { SaslgateProcess } from '../src/testing/saslgate-process.js'
import { closedLoop, warm } from './lib/closed-loop.js'

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    clients: { type: 'string', default: '1,10,100' },
    users: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '2' },
    json: { type: 'string' },
  },
})
const SECONDS = Number(args.seconds)
const CLIENT_COUNTS = String(args.clients).split(',').map(Number)
const USERS = Number(args.users)
const ROUNDS = Number(args.rounds)
const TOKEN = `bench-token-${'x'.repeat(40)}`
/** The hop alone: no tracing (bench/telemetry-overhead.ts measures that). */
const NO_OTEL = { OTEL_SDK_DISABLED: 'true' }

interface Row {
  clients: number
  path: string
  round: number
  requests: number
  perSecond: number
  failures: number
  latency: LatencySummary
}

async function main(): Promise<void> {
  const names = Array.from({ length: USERS }, (_, i) => `hop${String(i).padStart(4, '0')}`)
  const realm = await startRealm({
    users: names.map((name) => ({ name, password: `${name}-Bench-Secret` })),
  })
  const dir = mkdtempSync(join(tmpdir(), 'saslgate-bench-hop-'))
  const procs: SaslgateProcess[] = []
  try {
    const tokenFile = writeTokenFile(dir, TOKEN)
    const common = { args: ['--set', 'log.level=info'], env: NO_OTEL, readyTimeoutMs: 30_000 }
    const single = join(dir, 'single')
    procs.push(await startSingleHost({ realm, socket: single, ...common }))
    const svc = await startService({ realm, tokenFile, ...common })
    procs.push(svc.proc)
    const hop = join(dir, 'hop')
    procs.push(await startShim({ socket: hop, upstream: svc.url, tokenFile, ...common }))
    // Warm both verdict caches (one KDC check per user and path).
    for (const socket of [single, hop]) await warm(socket, names)
    // A short unmeasured run per path (JIT, connection pools).
    await closedLoop(single, names, 1, 10)
    await closedLoop(hop, names, 1, 10)
    const rows: Row[] = []
    const lines = [
      `| clients | path (cache hits, mean of ${ROUNDS} rounds of ${SECONDS} s) | requests/s | p50 ms | p99 ms |`,
      '|---|---|---|---|---|',
    ]
    for (const clients of CLIENT_COUNTS) {
      for (let round = 1; round <= ROUNDS; round++) {
        for (const [path, socket] of [
          ['single-host', single],
          ['shim + service', hop],
        ] as const) {
          const r = await closedLoop(socket, names, SECONDS, clients)
          rows.push({ clients, path, round, ...r })
          process.stderr.write(
            `${clients} clients, ${path}, round ${round}: ${r.perSecond}/s p50 ${r.latency.p50} ms p99 ${r.latency.p99} ms, ${r.failures} failed\n`,
          )
        }
      }
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
      const agg = (p: string) => {
        const rs = rows.filter((r) => r.path === p && r.clients === clients)
        return {
          perSecond: Math.round(mean(rs.map((r) => r.perSecond))),
          p50: mean(rs.map((r) => r.latency.p50)),
          p99: mean(rs.map((r) => r.latency.p99)),
        }
      }
      const a = agg('single-host')
      const b = agg('shim + service')
      lines.push(
        `| ${clients} | single-host (\`serve --saslauthd-socket\`) | ${a.perSecond} | ${a.p50.toFixed(2)} | ${a.p99.toFixed(2)} |`,
        `| ${clients} | shim + service (HTTP/1.1 keep-alive, token) | ${b.perSecond} | ${b.p50.toFixed(2)} | ${b.p99.toFixed(2)} |`,
        `| ${clients} | **the hop adds** | ${b.perSecond - a.perSecond} | +${(b.p50 - a.p50).toFixed(2)} | +${(b.p99 - a.p99).toFixed(2)} |`,
      )
    }
    process.stdout.write(`${lines.join('\n')}\n`)
    if (args.json !== undefined)
      writeFileSync(args.json, JSON.stringify({ seconds: SECONDS, rows }, null, 2))
  } finally {
    for (const p of procs.reverse()) await p.stop()
    await realm.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
