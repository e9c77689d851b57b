/**
 * How often does test/integration/enumeration.test.ts fail when nothing leaks? Shown without
 * 3,000 runs: record the test's samples over a few runs, quiet and loaded, then replay its
 * decision rule (test/support/enumeration-rule.ts) on many resamples.
 *
 *   npx tsx bench/enumeration-false-failure.ts --runs 4 --loaded-runs 4 --resamples 20000
 *   npx tsx bench/enumeration-false-failure.ts --replay-only DIR     (replay what DIR holds)
 *   npx tsx bench/enumeration-false-failure.ts --replay-only DIR --shift-ms 0.3
 *       (positive control: unknown users' samples made 0.3 ms slower; how often the rule notices)
 *
 * Recording: each run is the real test (real KDC, single-host saslgate, 1,000 pairs per
 * comparison) with ENUM_RECORD set; loaded runs add `--burners` busy-loop processes (default
 * 2, one per core here) for the run's length.
 *
 * Replay: per condition (quiet, loaded) and comparison (warm, cold, guarded) the recorded
 * pairs are pooled, and each resample draws as many pairs as one run makes (1,000) from the
 * pool without replacement: a fresh "run" drawn from what was measured, with whatever
 * systematic difference the pool holds. A resampled test run fails when any of its three
 * comparisons fails the rule; the rate and its 95% upper bound (exact binomial, by
 * bisection) are printed. The bootstrap (with replacement, around one run) is not used:
 * it centres the statistic on that run's observed value and so roughly doubles the variance
 * of a p-value under no difference, overstating the rate.
 */
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { seededRandom } from '../src/storm/stats.js'
import { decide } from '../test/support/enumeration-rule.js'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'loaded-runs': { type: 'string', default: '3' },
    burners: { type: 'string', default: '2' },
    resamples: { type: 'string', default: '20000' },
    'replay-only': { type: 'string' },
    dir: { type: 'string' },
    'shift-ms': { type: 'string', default: '0' },
  },
})

const LABELS = ['warm', 'cold', 'guarded'] as const
const RUN_TIMEOUT_MS = 15 * 60_000

interface Recorded {
  label: string
  unknownMs: number[]
  wrongMs: number[]
}

/** One real run of the enumeration test, recording into `dir`; `burners` CPU hogs beside it. */
async function recordRun(dir: string, burners: number): Promise<boolean> {
  const hogs = Array.from({ length: burners }, () =>
    spawn(
      process.execPath,
      ['-e', 'const end = Date.now() + 20 * 60_000; while (Date.now() < end) {}'],
      {
        stdio: 'ignore',
      },
    ),
  )
  try {
    const child = spawn(
      process.execPath,
      ['scripts/run-tests.js', 'test/integration/enumeration.test.ts'],
      { env: { ...process.env, ENUM_RECORD: dir }, stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    const timer = setTimeout(() => child.kill('SIGTERM'), RUN_TIMEOUT_MS)
    const code = await new Promise<number | null>((r) => child.on('close', r))
    clearTimeout(timer)
    for (const line of out.split('\n'))
      if (/# (warm|cold|guarded):/.test(line)) console.log(`  ${line.trim()}`)
    if (code !== 0) {
      const log = join(dir, `failed-run-${Date.now()}.log`)
      await writeFile(log, out)
      console.log(`  the run's whole output: ${log}`)
    }
    return code === 0
  } finally {
    for (const h of hogs) h.kill('SIGKILL')
  }
}

async function load(dir: string): Promise<Recorded[]> {
  const out: Recorded[] = []
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.json')).sort()) {
    out.push(JSON.parse(await readFile(join(dir, f), 'utf8')) as Recorded)
  }
  return out
}

/** Exact binomial upper confidence bound (one-sided 95%) for k failures in n trials. */
function upperBound(k: number, n: number): number {
  const tail = (p: number) => {
    // P(X <= k) for X ~ Binomial(n, p), summed in log space.
    let sum = 0
    let logTerm = n * Math.log1p(-p) // i = 0
    for (let i = 0; i <= k; i++) {
      sum += Math.exp(logTerm)
      logTerm += Math.log(n - i) - Math.log(i + 1) + Math.log(p) - Math.log1p(-p)
    }
    return sum
  }
  let lo = k / n
  let hi = 1
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2
    if (tail(mid) > 0.05) lo = mid
    else hi = mid
  }
  return hi
}

function replay(recorded: Recorded[], resamples: number, seed: number): void {
  const rand = seededRandom(seed)
  const pools = new Map<string, { u: number[]; w: number[]; runs: number; n: number }>()
  for (const r of recorded) {
    const p = pools.get(r.label) ?? { u: [], w: [], runs: 0, n: r.unknownMs.length }
    p.u.push(...r.unknownMs)
    p.w.push(...r.wrongMs)
    p.runs++
    p.n = Math.min(p.n, r.unknownMs.length)
    pools.set(r.label, p)
  }
  const failures = new Map<string, number>(LABELS.map((l) => [l, 0]))
  let runFailures = 0
  for (let b = 0; b < resamples; b++) {
    let failed = false
    for (const label of LABELS) {
      const p = pools.get(label)
      if (p === undefined) continue
      // n distinct pairs from the pool (partial Fisher-Yates on an index array).
      const idx = Array.from({ length: p.u.length }, (_, i) => i)
      const u: number[] = []
      const w: number[] = []
      for (let i = 0; i < p.n; i++) {
        const j = i + Math.floor(rand() * (idx.length - i))
        ;[idx[i], idx[j]] = [idx[j] as number, idx[i] as number]
        u.push(p.u[idx[i] as number] as number)
        w.push(p.w[idx[i] as number] as number)
      }
      if (!decide(u, w).pass) {
        failures.set(label, (failures.get(label) ?? 0) + 1)
        failed = true
      }
    }
    if (failed) runFailures++
  }
  for (const label of LABELS) {
    const p = pools.get(label)
    if (p === undefined) continue
    const pooled = decide(p.u, p.w)
    const k = failures.get(label) ?? 0
    console.log(
      `  ${label}: pool of ${p.u.length} pairs from ${p.runs} runs; pooled ${pooled.summary}`,
    )
    console.log(
      `    resamples of ${p.n} pairs failing the rule: ${k} of ${resamples} (95% upper bound ${upperBound(k, resamples).toExponential(2)})`,
    )
  }
  console.log(
    `  a whole test run (3 comparisons) fails in ${runFailures} of ${resamples} resamples: rate ${(runFailures / resamples).toExponential(2)}, 95% upper bound ${upperBound(runFailures, resamples).toExponential(2)}`,
  )
}

async function main(): Promise<void> {
  const resamples = Number(values.resamples)
  let root = values['replay-only']
  if (root === undefined) {
    root = values.dir ?? (await mkdtemp(join(tmpdir(), 'saslgate-enum-ff-')))
    const conditions: Array<[string, number, number]> = [
      ['quiet', Number(values.runs), 0],
      ['loaded', Number(values['loaded-runs']), Number(values.burners)],
    ]
    for (const [name, runs, burners] of conditions) {
      await mkdir(join(root, name), { recursive: true })
      for (let i = 0; i < runs; i++) {
        console.log(`recording ${name} run ${i + 1}/${runs} (${burners} CPU burners)`)
        const ok = await recordRun(join(root, name), burners)
        console.log(`  the test itself ${ok ? 'passed' : 'FAILED'}`)
      }
    }
    console.log(`samples in ${root}`)
  }
  // Every condition recorded under root (quiet, loaded, or any folder of runs put there).
  const names = (await readdir(root, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
  for (const name of names) {
    const shift = Number(values['shift-ms'])
    const recorded = (await load(join(root, name)).catch(() => [] as Recorded[])).map((r) => ({
      ...r,
      unknownMs: r.unknownMs.map((ms) => ms + shift),
    }))
    if (recorded.length === 0) continue
    if (shift !== 0) console.log(`${name}: unknown users' samples shifted by ${shift} ms (control)`)
    console.log(`${name}: replaying the rule on ${resamples} resampled runs`)
    replay(recorded, resamples, 7)
  }
}

await main()
