/**
 * Kerberos check benchmark: uncached password checks per second and CPU ms per check through
 * the saslauthd socket, saslgate (single-host mode, verdict cache off, kerberos.deriveKeys true
 * and false) against the real saslauthd (-a kerberos5 -n 5), at 1, 10 and 100 concurrent
 * clients. Good passwords of distinct users (200 password principals, cycled), KDC direct.
 *
 *   npx tsx bench/kerberos-check.ts [--seconds S] [--concurrency 1,10,100]
 *                                   [--servers gate-derive,gate-libk5,saslauthd] [--json FILE]
 *
 * CPU: utime+stime from /proc/PID/stat of the server (saslauthd: master and workers) and,
 * separately, of the krb5kdc. The load generator runs in its own process (same 2 cores).
 * Goal: at least 2x saslauthd's throughput at a third of its CPU per check.
 */
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { runLoad } from '../src/storm/load.js'
import { totalCpuMs } from '../src/storm/proc-cpu.js'
import { saslauthdCheck } from '../src/storm/saslauthd-client.js'
import { saslauthdAvailable } from '../src/storm/saslauthd-runner.js'
import { startTarget, type TargetOptions } from '../src/storm/targets.js'
import { makeUsers } from '../src/storm/users.js'
import { startRealm } from '../src/testing/realm.js'

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const seconds = Number(arg('--seconds') ?? '8')
const concurrencies = (arg('--concurrency') ?? '1,10,100').split(',').map(Number)
const serverNames = (arg('--servers') ?? 'gate-derive,gate-libk5,saslauthd').split(',')
const json = arg('--json')

const NO_CACHE = { SASLGATE_PIPELINE_POSITIVE_TTL_MS: '0', SASLGATE_PIPELINE_NEGATIVE_TTL_MS: '0' }
const SERVERS: Record<string, { label: string; target: Omit<TargetOptions, 'realm' | 'kdcs'> }> = {
  'gate-derive': {
    label: 'saslgate deriveKeys=true',
    target: {
      kind: 'saslgate',
      saslgateEnv: { ...NO_CACHE, SASLGATE_KERBEROS_DERIVE_KEYS: 'true' },
    },
  },
  'gate-libk5': {
    label: 'saslgate deriveKeys=false',
    target: {
      kind: 'saslgate',
      saslgateEnv: { ...NO_CACHE, SASLGATE_KERBEROS_DERIVE_KEYS: 'false' },
    },
  },
  saslauthd: { label: 'saslauthd -n 5', target: { kind: 'saslauthd', saslauthdWorkers: 5 } },
}

interface Row {
  server: string
  concurrency: number
  checks: number
  ok: number
  failed: number
  checksPerS: number
  p50Ms: number
  p99Ms: number
  serverCpuMsPerCheck: number
  kdcCpuMsPerCheck: number
}

const users = makeUsers(200)
const started = new Date()
const realm = await startRealm({
  users: users.map((u) => ({ name: u.login, password: u.password })),
})
const rows: Row[] = []
try {
  const kdc = realm.kdcs[0]
  if (kdc === undefined) throw new Error('no KDC')
  for (const name of serverNames) {
    const def = SERVERS[name]
    if (def === undefined) throw new Error(`unknown server ${name}`)
    if (def.target.kind === 'saslauthd' && !saslauthdAvailable()) {
      process.stderr.write('saslauthd not installed: skipped\n')
      continue
    }
    const target = await startTarget({ ...def.target, realm, kdcs: [`${kdc.host}:${kdc.port}`] })
    try {
      for (const u of users.slice(0, 20))
        await saslauthdCheck(target.socketPath, u.login, u.password)
      for (const c of concurrencies) {
        const cpu0 = totalCpuMs(target.pids())
        const kdc0 = totalCpuMs([kdc.pid])
        const report = await runLoad({
          socketPath: target.socketPath,
          flows: [
            { kind: 'closed', name: 'check', clients: c, credentials: users, expectOk: true },
          ],
          durationMs: seconds * 1000,
          clientTimeoutMs: 10_000,
        })
        const serverCpu = totalCpuMs(target.pids()) - cpu0
        const kdcCpu = totalCpuMs([kdc.pid]) - kdc0
        const cls = report.classes.check
        if (cls === undefined) throw new Error('no report')
        const row: Row = {
          server: def.label,
          concurrency: c,
          checks: cls.count,
          ok: cls.ok,
          failed: cls.count - cls.ok,
          checksPerS: Math.round((cls.ok / report.elapsedMs) * 1000 * 10) / 10,
          p50Ms: cls.latencyMs.p50,
          p99Ms: cls.latencyMs.p99,
          serverCpuMsPerCheck: Math.round((serverCpu / Math.max(1, cls.ok)) * 100) / 100,
          kdcCpuMsPerCheck: Math.round((kdcCpu / Math.max(1, cls.ok)) * 100) / 100,
        }
        rows.push(row)
        process.stderr.write(`${JSON.stringify(row)}\n`)
      }
    } finally {
      await target.close()
    }
  }
} finally {
  await realm.close()
}

const lines = [
  '| server | clients | checks | failed | checks/s | p50 ms | p99 ms | server CPU ms/check | KDC CPU ms/check |',
  `|${'---|'.repeat(9)}`,
  ...rows.map(
    (r) =>
      `| ${r.server} | ${r.concurrency} | ${r.checks} | ${r.failed} | ${r.checksPerS} | ${r.p50Ms} | ${r.p99Ms} | ${r.serverCpuMsPerCheck} | ${r.kdcCpuMsPerCheck} |`,
  ),
]
process.stdout.write(
  `kerberos-check: ${seconds} s per row, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${started.toISOString()}\n\n${lines.join('\n')}\n`,
)
if (json !== undefined) {
  writeFileSync(
    json,
    `${JSON.stringify({ started, seconds, machine: { cpus: cpus().length, model: cpus()[0]?.model }, rows }, null, 2)}\n`,
  )
}
