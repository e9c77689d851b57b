/**
 * Soak (a benchmark, not CI): mixed storm traffic through the shim and the service for
 * --minutes M (default 30) or --requests N (default 5,000,000), whichever comes first.
 *
 *   npx tsx bench/soak.ts [--minutes M] [--requests N] [--users U] [--bots B] [--legit L]
 *                         [--sample-seconds S] [--json FILE]
 *
 * A throw-away realm with U password users; `saslgate serve --listen` and `saslgate shim`
 * (bearer token, plain HTTP on loopback) as child processes; closed-loop clients in this
 * process, each request a new unix-socket connection like libsasl2: B bots (dictionary
 * guesses on real and unknown users, repeating) and L legit clients (real passwords, a
 * first-time user now and then).
 *
 * Every S seconds (default 10): RSS (/proc/PID/status), V8 heap after a full GC (a preload
 * module in each child, NODE_OPTIONS=--import, writes process.memoryUsage() to a file) and
 * open descriptors (/proc/PID/fd) of the shim and the service. At the end: the least-squares
 * slope of RSS and heap in MB per hour (after the first 10% of the run, the warm-up), the
 * descriptor counts, every answer by class, and the decisions by reason from both
 * processes' /metrics: `unavailable` answers other than the designed sheds (admission
 * `shed`, a `deadline`) are errors, and so is any OK to a bot.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { saslauthdCheck } from '../src/storm/saslauthd-client.js'
import { seededRandom } from '../src/storm/stats.js'
import { makeDictionary } from '../src/storm/users.js'
import { OTEL_OFF, startService, startShim, writeTokenFile } from '../src/testing/deployment.js'
import { freePort } from '../src/testing/ports.js'
import { startRealm } from '../src/testing/realm.js'
import type { SaslgateProcess } from '../src/testing/saslgate-process.js'

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    requests: { type: 'string', default: '5000000' },
    users: { type: 'string', default: '200' },
    bots: { type: 'string', default: '24' },
    legit: { type: 'string', default: '6' },
    'sample-seconds': { type: 'string', default: '10' },
    json: { type: 'string' },
  },
})
const MINUTES = Number(args.minutes)
const MAX_REQUESTS = Number(args.requests)
const USERS = Number(args.users)
const BOTS = Number(args.bots)
const LEGIT = Number(args.legit)
const SAMPLE_MS = Number(args['sample-seconds']) * 1000
const TOKEN = `soak-token-${'s'.repeat(40)}`

/** Written into each child with NODE_OPTIONS=--import: its memory after a full GC, to a file. */
const REPORTER = `
import { writeFileSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
const dir = process.env.SOAK_MEM_DIR
if (dir) {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc')
  const every = Number(process.env.SOAK_MEM_EVERY_MS || 10000)
  const write = () => {
    try {
      gc()
      const m = process.memoryUsage()
      writeFileSync(dir + '/' + process.pid + '.json', JSON.stringify({ at: Date.now(), heapUsed: m.heapUsed, rss: m.rss }))
    } catch {}
  }
  setInterval(write, every).unref()
  write()
}
`

interface Sample {
  tS: number
  rssMb: number
  heapMb: number
  fds: number
  /** Verdict cache entries (service only, from its /metrics). */
  cache?: { positive: number; negative: number }
}

interface ClassTally {
  requests: number
  ok: number
  no: number
  unavailable: number
  timeouts: number
  errors: Record<string, number>
}

const newTally = (): ClassTally => ({
  requests: 0,
  ok: 0,
  no: 0,
  unavailable: 0,
  timeouts: 0,
  errors: {},
})

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? 0) * 1024
}

function heapOf(memDir: string, pid: number): number {
  try {
    return JSON.parse(readFileSync(join(memDir, `${pid}.json`), 'utf8')).heapUsed as number
  } catch {
    return Number.NaN
  }
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length
  if (n < 2) return Number.NaN
  const mx = xs.reduce((a, b) => a + b, 0) / n
  const my = ys.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my)
    den += ((xs[i] as number) - mx) ** 2
  }
  return den === 0 ? Number.NaN : num / den
}

/** `saslgate_decisions_total` by decision and reason from Prometheus text. */
async function decisionsByReason(url: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  try {
    const text = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text()
    for (const line of text.split('\n')) {
      if (!line.startsWith('saslgate_decisions_total{')) continue
      const decision = /decision="([^"]*)"/.exec(line)?.[1] ?? '?'
      const reason = /reason="([^"]*)"/.exec(line)?.[1] ?? '?'
      const value = Number(line.slice(line.lastIndexOf(' ') + 1))
      const key = `${decision}/${reason}`
      out[key] = (out[key] ?? 0) + value
    }
  } catch (err) {
    out[`scrape_failed:${String(err)}`] = 1
  }
  return out
}

/** `saslgate_cache_entries` by cache from Prometheus text (undefined when the scrape fails). */
async function cacheEntries(
  url: string,
): Promise<{ positive: number; negative: number } | undefined> {
  try {
    const text = await (await fetch(url, { signal: AbortSignal.timeout(2000) })).text()
    const of = (cache: string) =>
      Number(
        new RegExp(`^saslgate_cache_entries\\{[^}]*cache="${cache}"[^}]*\\} (\\S+)`, 'm').exec(
          text,
        )?.[1],
      )
    return { positive: of('positive'), negative: of('negative') }
  } catch {
    return undefined
  }
}

/** Unavailable answers a storm is designed to produce (shed at admission, or out of time). */
const DESIGNED_SHEDS = new Set(['unavailable/shed', 'unavailable/deadline'])

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'saslgate-soak-'))
  const memDir = join(dir, 'mem')
  const reporter = join(dir, 'mem-reporter.mjs')
  writeFileSync(reporter, REPORTER)
  await import('node:fs').then(({ mkdirSync }) => mkdirSync(memDir))
  const users = Array.from({ length: USERS }, (_, i) => ({
    login: `soak${String(i).padStart(4, '0')}`,
    password: `Soak-${i}-Real-pw!`,
  }))
  process.stderr.write(`soak: building a realm with ${USERS} users\n`)
  const realm = await startRealm({
    users: users.map((u) => ({ name: u.login, password: u.password })),
  })
  const procs: SaslgateProcess[] = []
  const childEnv = {
    NODE_OPTIONS: `--import=${pathToFileURL(reporter).href}`,
    SOAK_MEM_DIR: memDir,
    SOAK_MEM_EVERY_MS: String(SAMPLE_MS),
    ...OTEL_OFF,
  }
  try {
    const tokenFile = writeTokenFile(dir, TOKEN)
    const { proc: service, url: serviceUrl } = await startService({
      realm,
      tokenFile,
      env: childEnv,
      readyTimeoutMs: 30_000,
    })
    procs.push(service)
    const adminPort = await freePort()
    const socket = join(dir, 'mux')
    const shim = await startShim({
      socket,
      upstream: serviceUrl,
      tokenFile,
      args: ['--set', `shim.adminListen=127.0.0.1:${adminPort}`],
      env: childEnv,
      readyTimeoutMs: 30_000,
    })
    procs.push(shim)
    const watched = { shim: shim.pid, service: service.pid }

    // Users seen before: the first half log in once before the storm (the second half are
    // first-time users during it; under attack they may be refused, by design).
    for (const u of users.slice(0, Math.floor(USERS / 2))) {
      const r = await saslauthdCheck(socket, u.login, u.password)
      if (!r.ok) throw new Error(`warm-up login of ${u.login} failed: ${r.reply || r.error}`)
    }
    const rand = seededRandom(42)
    const dictionary = makeDictionary(300)
    const tallies = { bot: newTally(), legit: newTally(), firstTime: newTally() }
    let requests = 0
    let falseAccepts = 0
    let nextFirstTime = Math.floor(USERS / 2) // the second half log in for the first time, once
    const startedAt = performance.now()
    const endAt = startedAt + MINUTES * 60_000
    const running = () => performance.now() < endAt && requests < MAX_REQUESTS

    const record = (t: ClassTally, r: Awaited<ReturnType<typeof saslauthdCheck>>) => {
      t.requests++
      if (r.timedOut) t.timeouts++
      else if (r.error !== undefined) t.errors[r.error] = (t.errors[r.error] ?? 0) + 1
      else if (r.ok) t.ok++
      else if (r.reply === 'NO temporarily unavailable') t.unavailable++
      else t.no++
    }
    const bot = async () => {
      while (running()) {
        requests++
        const known = rand() < 0.5
        const login = known
          ? (users[Math.floor(rand() * USERS)]?.login as string)
          : `nosuch${String(Math.floor(rand() * 5000)).padStart(4, '0')}`
        const password = dictionary[Math.floor(rand() * dictionary.length)] as string
        const r = await saslauthdCheck(socket, login, password, { timeoutMs: 5000 })
        record(tallies.bot, r)
        if (r.ok) falseAccepts++
      }
    }
    const legit = async () => {
      while (running()) {
        requests++
        if (rand() < 0.002 && nextFirstTime < USERS) {
          const u = users[nextFirstTime++] as { login: string; password: string }
          record(tallies.firstTime, await saslauthdCheck(socket, u.login, u.password))
        } else {
          const u = users[Math.floor(rand() * (USERS / 2))] as { login: string; password: string }
          record(tallies.legit, await saslauthdCheck(socket, u.login, u.password))
        }
        await new Promise((r) => setTimeout(r, 5))
      }
    }

    const series: Record<keyof typeof watched, Sample[]> = { shim: [], service: [] }
    const sample = async () => {
      const cache = await cacheEntries(`${serviceUrl}/metrics`)
      const tS = (performance.now() - startedAt) / 1000
      for (const [name, pid] of Object.entries(watched) as Array<[keyof typeof watched, number]>) {
        series[name].push({
          tS,
          rssMb: mb(rssOf(pid)),
          heapMb: mb(heapOf(memDir, pid)),
          fds: readdirSync(`/proc/${pid}/fd`).length,
        })
      }
      const s = series.shim.at(-1) as Sample
      const v = series.service.at(-1) as Sample
      if (cache !== undefined) v.cache = cache
      process.stderr.write(
        `${tS.toFixed(0)} s: ${requests} requests (${Math.round(requests / Math.max(1, tS))}/s), ` +
          `shim rss ${s.rssMb} heap ${s.heapMb} fds ${s.fds}; service rss ${v.rssMb} heap ${v.heapMb} fds ${v.fds}; ` +
          `cache +${v.cache?.positive}/-${v.cache?.negative}; false accepts ${falseAccepts}\n`,
      )
    }
    await sample()
    const sampler = setInterval(() => void sample(), SAMPLE_MS)
    await Promise.all([
      ...Array.from({ length: BOTS }, bot),
      ...Array.from({ length: LEGIT }, legit),
    ])
    clearInterval(sampler)
    await sample()
    const elapsedS = (performance.now() - startedAt) / 1000

    const reasons = {
      service: await decisionsByReason(`${serviceUrl}/metrics`),
      shim: await decisionsByReason(`http://127.0.0.1:${adminPort}/metrics`),
    }
    const undesigned: Record<string, number> = {}
    for (const [proc, byReason] of Object.entries(reasons))
      for (const [k, v] of Object.entries(byReason))
        if (
          (k.startsWith('unavailable/') &&
            !DESIGNED_SHEDS.has(k) &&
            !(proc === 'shim' && k === 'unavailable/remote_unavailable')) ||
          k.startsWith('scrape_failed')
        )
          undesigned[`${proc}:${k}`] = v

    const warmS = elapsedS * 0.1
    const trend = (name: keyof typeof watched) => {
      const s = series[name].filter((x) => x.tS >= warmS && Number.isFinite(x.heapMb))
      const hours = s.map((x) => x.tS / 3600)
      const late = s.filter((x) => x.tS >= elapsedS / 2)
      const first = s[0]
      const last = s.at(-1)
      return {
        samples: s.length,
        rssMbPerHour:
          Math.round(
            slope(
              hours,
              s.map((x) => x.rssMb),
            ) * 10,
          ) / 10,
        heapMbPerHour:
          Math.round(
            slope(
              hours,
              s.map((x) => x.heapMb),
            ) * 10,
          ) / 10,
        /** Over the second half only: a plateau shows as ~0 here after a slow fill-up. */
        secondHalfHeapMbPerHour:
          Math.round(
            slope(
              late.map((x) => x.tS / 3600),
              late.map((x) => x.heapMb),
            ) * 10,
          ) / 10,
        rssMb: {
          afterWarmUp: first?.rssMb,
          end: last?.rssMb,
          max: Math.max(...s.map((x) => x.rssMb)),
        },
        heapMb: {
          afterWarmUp: first?.heapMb,
          end: last?.heapMb,
          max: Math.max(...s.map((x) => x.heapMb)),
        },
        fds: {
          start: series[name][0]?.fds,
          afterWarmUp: first?.fds,
          end: last?.fds,
          max: Math.max(...series[name].map((x) => x.fds)),
        },
      }
    }
    const clientErrors = Object.values(tallies).reduce(
      (n, t) => n + t.timeouts + Object.values(t.errors).reduce((a, b) => a + b, 0),
      0,
    )
    const result = {
      elapsedS: Math.round(elapsedS),
      requests,
      perSecond: Math.round(requests / elapsedS),
      falseAccepts,
      clientErrors,
      tallies,
      shim: trend('shim'),
      service: trend('service'),
      reasons,
      undesignedErrors: undesigned,
      series,
    }
    const lines = [
      `soak: ${result.elapsedS} s, ${requests} requests (${result.perSecond}/s), ${BOTS} bots + ${LEGIT} legit clients, ${USERS} users`,
      `false accepts: ${falseAccepts}; client timeouts/errors: ${clientErrors}; undesigned unavailable/errors: ${JSON.stringify(undesigned)}`,
      `legit: ${JSON.stringify(tallies.legit)}`,
      `first-time: ${JSON.stringify(tallies.firstTime)}`,
      `bots: ${JSON.stringify(tallies.bot)}`,
      `service verdict cache entries (positive/negative): max ${Math.max(...series.service.map((x) => x.cache?.positive ?? 0))}/${Math.max(...series.service.map((x) => x.cache?.negative ?? 0))}, end ${series.service.at(-1)?.cache?.positive}/${series.service.at(-1)?.cache?.negative}`,
      '| process | RSS MB (after warm-up -> end, max) | RSS slope MB/h | heap MB after GC (after warm-up -> end, max) | heap slope MB/h (2nd half) | fds (start, after warm-up -> end, max) |',
      '|---|---|---|---|---|---|',
      ...(['shim', 'service'] as const).map((n) => {
        const t = result[n]
        return `| ${n} | ${t.rssMb.afterWarmUp} -> ${t.rssMb.end}, ${t.rssMb.max} | ${t.rssMbPerHour} | ${t.heapMb.afterWarmUp} -> ${t.heapMb.end}, ${t.heapMb.max} | ${t.heapMbPerHour} (${t.secondHalfHeapMbPerHour}) | ${t.fds.start}, ${t.fds.afterWarmUp} -> ${t.fds.end}, ${t.fds.max} |`
      }),
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
    if (args.json !== undefined) writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`)
    process.exitCode =
      falseAccepts === 0 && clientErrors === 0 && Object.keys(undesigned).length === 0 ? 0 : 1
  } finally {
    for (const p of procs.reverse()) await p.stop(15_000)
    await realm.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
