/**
 * The storm scenarios of DESIGN §1 against saslgate (single-host mode) and the real saslauthd:
 *
 * (a) KDC direct (a 0 ms proxy, for counting), storm;
 * (b) +300 ms per KDC round trip (delay proxy), storm;
 * (c) as (b) with saslauthd's `-c` cache warmed (saslauthd only);
 * (d) KDC black-holed after a warm-up of legit logins (saslauthd with `-c`).
 *
 * Each run: a fresh server pointed at the proxy, a warm-up (every warm user logs in once), then
 * the storm from a separate load process: closed-loop bots (existing and unknown principals, a
 * repeated dictionary of wrong passwords) and open-loop legit logins (warm users, and cold users
 * never seen before). Plain async code: the `saslgate demo` command imports it.
 */
import { SaslgateError } from '../errors.js'
import { startDelayProxy } from '../testing/fake-kdc.js'
import { type Realm, startRealm } from '../testing/realm.js'
import { type Credential, type Flow, type LoadReport, runLoad } from './load.js'
import { processCpuMs, totalCpuMs } from './proc-cpu.js'
import { saslauthdCheck } from './saslauthd-client.js'
import { saslauthdAvailable } from './saslauthd-runner.js'
import { seededRandom } from './stats.js'
import { startTarget, type TargetKind } from './targets.js'
import { makeDictionary, makeGuesses, makeUsers } from './users.js'

export type ScenarioId = 'a' | 'b' | 'c' | 'd'

export interface ScenarioDef {
  id: ScenarioId
  title: string
  delayMs: number
  blackhole: boolean
  saslauthdCache: boolean
  targets: readonly TargetKind[]
}

export const SCENARIOS: readonly ScenarioDef[] = [
  {
    id: 'a',
    title: 'KDC direct, storm',
    delayMs: 0,
    blackhole: false,
    saslauthdCache: false,
    targets: ['saslgate', 'saslauthd'],
  },
  {
    id: 'b',
    title: 'KDC +300 ms per round trip, storm',
    delayMs: 300,
    blackhole: false,
    saslauthdCache: false,
    targets: ['saslgate', 'saslauthd'],
  },
  {
    id: 'c',
    title: 'KDC +300 ms, saslauthd -c warmed, storm',
    delayMs: 300,
    blackhole: false,
    saslauthdCache: true,
    targets: ['saslauthd'],
  },
  {
    id: 'd',
    title: 'KDC black-holed after warm-up, storm',
    delayMs: 0,
    blackhole: true,
    saslauthdCache: true,
    targets: ['saslgate', 'saslauthd'],
  },
]

export const DEFAULT_SCENARIO_OPTIONS = {
  scenarios: ['a', 'b', 'c', 'd'] as readonly ScenarioId[],
  targets: ['saslgate', 'saslauthd'] as readonly TargetKind[],
  durationMs: 15_000,
  /** Closed-loop bot clients (with the legit arrivals: "50 clients, 90% botnet"). */
  botClients: 45,
  /** Legit logins per second (open loop, Poisson). */
  legitRatePerS: 10,
  /** Share of legit logins by users never seen before. */
  coldFraction: 0.2,
  users: 200,
  warmUsers: 50,
  dictionarySize: 100,
  botGuesses: 20_000,
  clientTimeoutMs: 5_000,
  warmupConcurrency: 5,
  seed: 7,
  /** SASLGATE_* variables for every saslgate run. */
  saslgateEnv: {} as Record<string, string>,
}

export const SCENARIO_PRESETS = {
  full: { durationMs: 15_000 },
  quick: { durationMs: 5_000 },
} as const

export type ScenarioOptions = Partial<typeof DEFAULT_SCENARIO_OPTIONS> & {
  /** A realm with the users of makeUsers(options.users); started (and closed) here when absent. */
  realm?: Realm
  /** Called with a line of progress (no secrets). */
  onProgress?: (line: string) => void
}

export interface ScenarioSummary {
  legitCount: number
  legitTimedOutPct: number
  /** Legit requests that got no answer for another reason (connection refused/reset). */
  legitErrorsPct: number
  legitWarmP99Ms: number
  legitColdP99Ms: number
  /** Warm (seen before) legit logins let in. */
  legitWarmOkPct: number
  legitColdOkPct: number
  botAnswersPerS: number
  botSharePct: number
  falseAccepts: number
  kdcRequests: number
  kdcRequestsPerS: number
  /** CPU of the server process(es) during the storm, % of one core. */
  serverCpuPct: number
  /** CPU of the krb5kdc during the storm, % of one core. */
  kdcCpuPct: number
}

export interface ScenarioResult {
  id: ScenarioId
  title: string
  target: TargetKind
  warmupOk: number
  warmupKdcRequests: number
  load: LoadReport
  summary: ScenarioSummary
}

function pct(n: number, d: number): number {
  return d === 0 ? 0 : Math.round((n / d) * 1000) / 10
}

function shuffle<T>(a: T[], rand: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    const t = a[i] as T
    a[i] = a[j] as T
    a[j] = t
  }
  return a
}

/** Summary figures of one load report. */
export function summarizeLoad(
  load: LoadReport,
  kdcRequests: number,
  cpuMs: { server: number; kdc: number } = { server: 0, kdc: 0 },
): ScenarioSummary {
  const cpuPct = (ms: number) => Math.round((ms / Math.max(1, load.elapsedMs)) * 100)
  const empty = {
    count: 0,
    ok: 0,
    timeouts: 0,
    errors: 0,
    falseAccepts: 0,
    answersPerS: 0,
    latencyMs: { p99: 0 },
  }
  const warm = load.classes['legit-warm'] ?? empty
  const cold = load.classes['legit-cold'] ?? empty
  const bot = load.classes.bot ?? empty
  const legitCount = warm.count + cold.count
  return {
    legitCount,
    legitTimedOutPct: pct(warm.timeouts + cold.timeouts, legitCount),
    legitErrorsPct: pct(warm.errors + cold.errors, legitCount),
    legitWarmP99Ms: warm.latencyMs.p99,
    legitColdP99Ms: cold.latencyMs.p99,
    legitWarmOkPct: pct(warm.ok, warm.count),
    legitColdOkPct: pct(cold.ok, cold.count),
    botAnswersPerS: bot.answersPerS,
    botSharePct: pct(bot.count, bot.count + legitCount),
    falseAccepts: warm.falseAccepts + cold.falseAccepts + bot.falseAccepts,
    kdcRequests,
    kdcRequestsPerS: Math.round((kdcRequests / Math.max(1, load.elapsedMs)) * 1000 * 10) / 10,
    serverCpuPct: cpuPct(cpuMs.server),
    kdcCpuPct: cpuPct(cpuMs.kdc),
  }
}

/** Runs the selected scenarios against the selected targets, one after the other. */
export async function runScenarios(options: ScenarioOptions = {}): Promise<ScenarioResult[]> {
  const o = { ...DEFAULT_SCENARIO_OPTIONS }
  for (const [k, v] of Object.entries(options)) {
    if (v !== undefined && k in o) (o as Record<string, unknown>)[k] = v
  }
  const progress = options.onProgress ?? (() => {})
  const users = makeUsers(o.users)
  const ownRealm = options.realm === undefined
  const realm =
    options.realm ??
    (await startRealm({ users: users.map((u) => ({ name: u.login, password: u.password })) }))
  const kdc = realm.kdcs[0]
  const results: ScenarioResult[] = []
  try {
    if (kdc === undefined) throw new SaslgateError('SASLGATE_ERR_LOAD', 'the realm has no KDC')
    const rand = seededRandom(o.seed)
    const warmUsers = users.slice(0, o.warmUsers)
    const coldUsers = users.slice(o.warmUsers)
    const guesses = makeGuesses(
      users.map((u) => u.login),
      makeDictionary(o.dictionarySize),
      o.botGuesses,
      rand,
    )
    const flows: Flow[] = [
      { kind: 'closed', name: 'bot', clients: o.botClients, credentials: guesses, expectOk: false },
      {
        kind: 'open',
        name: 'legit-warm',
        ratePerS: o.legitRatePerS * (1 - o.coldFraction),
        credentials: shuffle([...warmUsers], rand),
        cycle: true,
        expectOk: true,
      },
      {
        kind: 'open',
        name: 'legit-cold',
        ratePerS: o.legitRatePerS * o.coldFraction,
        credentials: shuffle([...coldUsers], rand),
        cycle: false,
        expectOk: true,
      },
    ]
    for (const def of SCENARIOS) {
      if (!o.scenarios.includes(def.id)) continue
      for (const kind of def.targets) {
        if (!o.targets.includes(kind)) continue
        if (kind === 'saslauthd' && !saslauthdAvailable()) {
          progress(`(${def.id}) saslauthd: not installed, skipped`)
          continue
        }
        progress(`(${def.id}) ${def.title}: ${kind}...`)
        const r = await runOne(def, kind, realm, kdc, flows, warmUsers, o)
        results.push(r)
        const s = r.summary
        progress(
          `(${def.id}) ${kind}: legit timed out ${s.legitTimedOutPct}%, warm p99 ${s.legitWarmP99Ms} ms, cold p99 ${s.legitColdP99Ms} ms, bot ${s.botAnswersPerS}/s, false accepts ${s.falseAccepts}, KDC requests ${s.kdcRequests}`,
        )
      }
    }
  } finally {
    if (ownRealm) await realm.close()
  }
  return results
}

async function runOne(
  def: ScenarioDef,
  kind: TargetKind,
  realm: Realm,
  kdc: { host: string; port: number; pid: number },
  flows: readonly Flow[],
  warmUsers: readonly Credential[],
  o: typeof DEFAULT_SCENARIO_OPTIONS,
): Promise<ScenarioResult> {
  const proxy = await startDelayProxy({ target: kdc, delayMs: def.delayMs })
  try {
    const target = await startTarget({
      kind,
      realm,
      kdcs: [`${proxy.host}:${proxy.port}`],
      saslgateEnv: o.saslgateEnv,
      saslauthdWorkers: 5,
      saslauthdCache: def.saslauthdCache,
    })
    try {
      let warmupOk = 0
      const queue = [...warmUsers]
      await Promise.all(
        Array.from({ length: o.warmupConcurrency }, async () => {
          for (let u = queue.shift(); u !== undefined; u = queue.shift()) {
            const r = await saslauthdCheck(target.socketPath, u.login, u.password, {
              timeoutMs: o.clientTimeoutMs,
            })
            if (r.ok) warmupOk++
          }
        }),
      )
      const warmupKdcRequests = proxy.requests
      if (def.blackhole) proxy.setBlackhole(true)
      const cpu0 = { server: totalCpuMs(target.pids()), kdc: processCpuMs(kdc.pid) }
      const load = await runLoad({
        socketPath: target.socketPath,
        flows,
        durationMs: o.durationMs,
        clientTimeoutMs: o.clientTimeoutMs,
        seed: o.seed,
      })
      const kdcRequests = proxy.requests - warmupKdcRequests
      const cpuMs = {
        server: totalCpuMs(target.pids()) - cpu0.server,
        kdc: processCpuMs(kdc.pid) - cpu0.kdc,
      }
      return {
        id: def.id,
        title: def.title,
        target: kind,
        warmupOk,
        warmupKdcRequests,
        load,
        summary: summarizeLoad(load, kdcRequests, cpuMs),
      }
    } finally {
      await target.close()
    }
  } finally {
    await proxy.close()
  }
}

/** A markdown table of scenario results. */
export function formatScenarioTable(results: readonly ScenarioResult[]): string {
  const head =
    '| scenario | server | legit n | legit timed out | legit errors | warm p99 ms | cold p99 ms | warm let in | cold let in | bot answers/s | bot share | false accepts | KDC requests (/s) | server CPU | KDC CPU |'
  const sep = `|${'---|'.repeat(15)}`
  const rows = results.map((r) => {
    const s = r.summary
    return `| (${r.id}) ${r.title} | ${r.target} | ${s.legitCount} | ${s.legitTimedOutPct}% | ${s.legitErrorsPct}% | ${s.legitWarmP99Ms} | ${s.legitColdP99Ms} | ${s.legitWarmOkPct}% | ${s.legitColdOkPct}% | ${s.botAnswersPerS} | ${s.botSharePct}% | ${s.falseAccepts} | ${s.kdcRequests} (${s.kdcRequestsPerS}) | ${s.serverCpuPct}% | ${s.kdcCpuPct}% |`
  })
  return [head, sep, ...rows].join('\n')
}
