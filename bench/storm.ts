/**
 * Storm benchmark: the scenarios of DESIGN §1 against saslgate (single-host mode) and the real
 * saslauthd (-n 5), with a load generator in a separate process.
 *
 *   npx tsx bench/storm.ts [--quick] [--seconds S] [--scenarios a,b,c,d] [--targets saslgate,saslauthd]
 *                          [--bots N] [--legit-rate R] [--env NAME=VALUE ...] [--json FILE]
 *
 * `--env` (repeatable) passes a SASLGATE_* or OTEL_* variable to every saslgate run, e.g.
 * `--env SASLGATE_SASLAUTHD_FIELDS=4` or `--env OTEL_SDK_DISABLED=true`.
 *
 * Goals: with +300 ms per KDC round trip and a 90% storm, zero legit timeouts, legit p99 < 20 ms
 * warm and < 1.5 s cold; KDC black-holed: every request answered within the deadline and every
 * user seen before let in; no false accept.
 */
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import {
  DEFAULT_SCENARIO_OPTIONS,
  formatScenarioTable,
  runScenarios,
  SCENARIO_PRESETS,
  type ScenarioId,
} from '../src/storm/scenarios.js'
import type { TargetKind } from '../src/storm/targets.js'

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const quick = process.argv.includes('--quick')
const seconds = arg('--seconds')
const durationMs =
  seconds !== undefined
    ? Number(seconds) * 1000
    : (quick ? SCENARIO_PRESETS.quick : SCENARIO_PRESETS.full).durationMs
const scenarios = (arg('--scenarios')?.split(',') ??
  DEFAULT_SCENARIO_OPTIONS.scenarios) as ScenarioId[]
const targets = (arg('--targets')?.split(',') ?? DEFAULT_SCENARIO_OPTIONS.targets) as TargetKind[]
const bots = arg('--bots')
const legitRate = arg('--legit-rate')
const json = arg('--json')
const saslgateEnv: Record<string, string> = {}
for (let i = 0; i < process.argv.length; i++) {
  if (process.argv[i] !== '--env') continue
  const pair = process.argv[i + 1] ?? ''
  const eq = pair.indexOf('=')
  if (eq <= 0 || !/^(SASLGATE|OTEL)_[A-Z0-9_]+$/.test(pair.slice(0, eq))) {
    process.stderr.write(`--env wants NAME=VALUE with a SASLGATE_* or OTEL_* name, not "${pair}"\n`)
    process.exit(64)
  }
  saslgateEnv[pair.slice(0, eq)] = pair.slice(eq + 1)
}

const started = new Date()
const results = await runScenarios({
  durationMs,
  scenarios,
  targets,
  botClients: bots === undefined ? undefined : Number(bots),
  legitRatePerS: legitRate === undefined ? undefined : Number(legitRate),
  saslgateEnv,
  onProgress: (line) => process.stderr.write(`${line}\n`),
})
const table = formatScenarioTable(results)
process.stdout.write(
  `storm: ${durationMs / 1000} s per scenario, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${started.toISOString()}${Object.keys(saslgateEnv).length > 0 ? `, saslgate env ${JSON.stringify(saslgateEnv)}` : ''}\n\n${table}\n`,
)
if (json !== undefined) {
  writeFileSync(
    json,
    `${JSON.stringify({ started, durationMs, saslgateEnv, machine: { cpus: cpus().length, model: cpus()[0]?.model }, results }, null, 2)}\n`,
  )
}
