/**
 * `saslgate demo`: a throw-away realm, the saslgate service and a shim in front of it, and (when installed) the
 * real `saslauthd -a kerberos5` on the same realm, then a short botnet storm against each with
 * the KDC slowed (+300 ms per round trip) and then black-holed. Ends with a side-by-side table
 * and a chart. Everything it starts is stopped at the end or on Ctrl-C.
 */

import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import { type LatencyPoint, writeChart } from '../demo/chart.js'
import { type LoadProgress, type LoadReport, runLoad } from '../storm/load.js'
import type { Credential, Flow } from '../storm/load-engine.js'
import { saslauthdCheck } from '../storm/saslauthd-client.js'
import {
  type SaslauthdInstance,
  saslauthdAvailable,
  startSaslauthd,
} from '../storm/saslauthd-runner.js'
import { startService, startShim, writeTokenFile } from '../testing/deployment.js'
import { type DelayProxy, startDelayProxy } from '../testing/fake-kdc.js'
import { type Realm, startRealm } from '../testing/realm.js'
import type { SaslgateProcess } from '../testing/saslgate-process.js'

export interface DemoOptions {
  quick: boolean
  withSaslauthd: boolean
  /** Directory for the chart and the JSON results (default ./demo-results). */
  out?: string
}

interface Phase {
  name: string
  delayMs: number
  blackhole: boolean
}

const PHASES: readonly Phase[] = [
  { name: 'KDC +300 ms', delayMs: 300, blackhole: false },
  { name: 'KDC black-holed', delayMs: 0, blackhole: true },
]

interface Row {
  system: string
  phase: string
  report: LoadReport
}

const say = (s = '') => process.stdout.write(`${s}\n`)

function userList(n: number, prefix: string): Credential[] {
  return Array.from({ length: n }, (_, i) => ({
    login: `${prefix}${i}`,
    password: `Pw-${prefix}-${i}-ok`,
  }))
}

function flows(warm: Credential[], cold: Credential[], botNames: string[]): Flow[] {
  const dictionary = [
    '123456',
    'password',
    'qwerty',
    'letmein',
    'winter2026',
    'iloveyou',
    'admin',
    'welcome1',
  ]
  const guesses: Credential[] = []
  for (const pw of dictionary) for (const login of botNames) guesses.push({ login, password: pw })
  // shuffle deterministically so bots hit many principals at once
  guesses.sort((a, b) => (a.login + a.password).localeCompare(b.password + b.login))
  return [
    { kind: 'closed', name: 'bot', clients: 45, credentials: guesses, expectOk: false },
    {
      kind: 'open',
      name: 'legit-warm',
      ratePerS: 8,
      cycle: true,
      credentials: warm,
      expectOk: true,
    },
    {
      kind: 'open',
      name: 'legit-cold',
      ratePerS: 2,
      cycle: false,
      credentials: cold,
      expectOk: true,
    },
  ]
}

function fmtMs(ms: number | undefined): string {
  if (ms === undefined || Number.isNaN(ms)) return '-'
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`
}

function table(rows: Row[]): string {
  const head = [
    'system',
    'scenario',
    'legit ok',
    'legit timed out',
    'legit p99 (seen before)',
    'legit p99 (first time)',
    'bot answers/s',
    'false accepts',
  ]
  const lines = rows.map((r) => {
    const w = r.report.classes['legit-warm']
    const c = r.report.classes['legit-cold']
    const b = r.report.classes.bot
    const legitCount = (w?.count ?? 0) + (c?.count ?? 0)
    const legitOk = (w?.ok ?? 0) + (c?.ok ?? 0)
    const timeouts = (w?.timeouts ?? 0) + (c?.timeouts ?? 0)
    const pct = legitCount === 0 ? 0 : (100 * timeouts) / legitCount
    return [
      r.system,
      r.phase,
      `${legitOk}/${legitCount}`,
      `${pct.toFixed(0)}%`,
      fmtMs(w?.latencyMs.p99),
      fmtMs(c?.latencyMs.p99),
      (b?.answersPerS ?? 0).toFixed(0),
      String((b?.falseAccepts ?? 0) + (w?.falseAccepts ?? 0) + (c?.falseAccepts ?? 0)),
    ]
  })
  const all = [head, ...lines]
  const width = head.map((_, i) => Math.max(...all.map((l) => l[i]!.length)))
  const fmt = (l: string[]) => l.map((x, i) => x.padEnd(width[i]!)).join('  ')
  return [fmt(head), width.map((w) => '-'.repeat(w)).join('  '), ...lines.map(fmt)].join('\n')
}

export async function demo(options: DemoOptions): Promise<number> {
  const phaseMs = options.quick ? 4000 : 8000
  const outDir = resolve(options.out ?? 'demo-results')
  const cleanups: Array<() => Promise<unknown>> = []
  let interrupted = false
  const onSigint = () => {
    interrupted = true
    say('\ninterrupted: stopping everything the demo started ...')
    void cleanupAll().then(() => process.exit(130))
  }
  const cleanupAll = async () => {
    while (cleanups.length > 0) {
      const c = cleanups.pop()!
      await c().catch(() => {})
    }
  }
  process.on('SIGINT', onSigint)
  process.on('SIGTERM', onSigint)
  try {
    const warm = userList(30, 'staff')
    const cold = userList(40, 'student')
    say('saslgate demo: a botnet guesses passwords while real users log in.')
    say('  starting a throw-away MIT Kerberos realm on 127.0.0.1 ...')
    const realm: Realm = await startRealm({
      users: [...warm, ...cold].map((u) => ({ name: u.login, password: u.password })),
      randomKeyUsers: 100,
    })
    cleanups.push(() => realm.close())
    const botNames = [
      ...warm.slice(0, 10).map((u) => u.login),
      ...Array.from({ length: 40 }, (_, i) => `bulk${String(i).padStart(4, '0')}`),
      ...Array.from({ length: 30 }, (_, i) => `ghost${i}`),
    ]
    const proxy: DelayProxy = await startDelayProxy({
      target: { host: '127.0.0.1', port: realm.kdcs[0]!.port },
      delayMs: 0,
    })
    cleanups.push(() => proxy.close())
    const kdc = `127.0.0.1:${proxy.port}`

    const systems: Array<{ name: string; socket: string }> = []
    let saslauthd: SaslauthdInstance | undefined
    if (options.withSaslauthd && saslauthdAvailable()) {
      say('  starting the incumbent: saslauthd -a kerberos5 -n 5 ...')
      saslauthd = await startSaslauthd({ realm, kdcs: [kdc] })
      cleanups.push(() => saslauthd!.close())
      systems.push({ name: 'saslauthd', socket: saslauthd.socketPath })
    } else {
      say('  (saslauthd not installed or --no-saslauthd: showing saslgate alone)')
    }
    say(
      '  starting saslgate: the service (RPC on 127.0.0.1) and the shim on a saslauthd socket ...',
    )
    const socket = `${realm.dir}/saslgate-mux`
    const tokenFile = writeTokenFile(realm.dir, randomBytes(24).toString('hex'), 'saslgate-token')
    const { proc: service, url } = await startService({
      realm,
      tokenFile,
      env: { SASLGATE_KERBEROS_KDCS: `${realm.name}=${kdc}`, OTEL_SDK_DISABLED: 'true' },
    })
    cleanups.push(() => service.stop())
    const shim: SaslgateProcess = await startShim({
      socket,
      upstream: url,
      tokenFile,
      env: { OTEL_SDK_DISABLED: 'true' },
    })
    cleanups.push(() => shim.stop())
    systems.push({ name: 'saslgate', socket })

    say(
      '  the staff log in once (seen before); students will log in for the first time during the storm.',
    )
    for (const s of systems) {
      for (const u of warm) await saslauthdCheck(s.socket, u.login, u.password)
    }

    const rows: Row[] = []
    const points: LatencyPoint[] = []
    let tOffset = 0
    const coldByPhase = PHASES.map((_, i) => cold.filter((_, j) => j % PHASES.length === i))
    for (const [phaseIndex, phase] of PHASES.entries()) {
      for (const s of systems) {
        if (interrupted) return 130
        proxy.setBlackhole(phase.blackhole)
        proxy.setDelay(phase.delayMs)
        const label = `${s.name.padEnd(9)} | ${phase.name.padEnd(16)}`
        let report: LoadReport
        const live = (p: LoadProgress) => {
          if (!process.stdout.isTTY) return
          const what =
            p.elapsedMs <= phaseMs
              ? `${(p.elapsedMs / 1000).toFixed(0)}/${phaseMs / 1000} s`
              : 'last answers'
          process.stdout.write(
            `\r\x1b[K  storm: ${label} | ${what} | ${p.requests} requests, legit p99 ${fmtMs(p.legitP99Ms)}, legit timeouts ${p.legitTimeouts}`,
          )
        }
        report = await runLoad({
          socketPath: s.socket,
          flows: flows(warm, coldByPhase[phaseIndex]!, botNames),
          durationMs: phaseMs,
          seed: 7,
          onProgress: live,
        })
        rows.push({ system: s.name, phase: phase.name, report })
        const w = report.classes['legit-warm']
        const c = report.classes['legit-cold']
        const to = (w?.timeouts ?? 0) + (c?.timeouts ?? 0)
        process.stdout.write(
          `${process.stdout.isTTY ? '\r\x1b[K' : ''}  storm: ${label} | ${report.requests} requests, legit p99 ${fmtMs(Math.max(w?.latencyMs.p99 ?? 0, c?.latencyMs.p99 ?? 0))}, legit timeouts ${to}\n`,
        )
        for (const b of report.series) {
          if (b.legitCount > 0)
            points.push({
              system: s.name,
              phase: phase.name,
              t: (tOffset + b.tMs) / 1000,
              p99Ms: b.legitP99Ms,
            })
        }
      }
      tOffset += phaseMs + 1000
      proxy.setBlackhole(false)
      proxy.setDelay(0)
    }

    say('')
    say(table(rows))
    say('')
    say(
      'legit = real users (staff seen before, students logging in for the first time); a client gives up after 5 s like an impatient imapd.',
    )
    await mkdir(outDir, { recursive: true })
    const files = await writeChart(
      `${outDir}/storm`,
      points,
      'Legit-login p99 during a botnet storm (saslauthd vs saslgate)',
    )
    const { writeFile } = await import('node:fs/promises')
    await writeFile(
      `${outDir}/storm.json`,
      JSON.stringify(
        {
          phases: PHASES,
          phaseMs,
          rows: rows.map((r) => ({ system: r.system, phase: r.phase, classes: r.report.classes })),
        },
        null,
        2,
      ),
    )
    say(`chart: ${files.join(', ')}`)
    say(`results: ${outDir}/storm.json`)
    return 0
  } finally {
    process.removeListener('SIGINT', onSigint)
    process.removeListener('SIGTERM', onSigint)
    await cleanupAll()
  }
}
