/**
 * The load itself, run inside the load worker process (see load.ts): closed-loop flows (N
 * clients, each sends its next request as soon as the previous one is answered) and open-loop
 * flows (Poisson arrivals at a rate), all bounded by a total request count and a duration.
 */
import { type SaslauthdCheckResult, saslauthdCheck } from './saslauthd-client.js'
import { type LatencySummary, seededRandom, summarize } from './stats.js'

export interface Credential {
  login: string
  password: string
}

interface FlowBase {
  /** Report class, e.g. `bot`, `legit-warm`, `legit-cold`. Classes starting `legit` are legit. */
  name: string
  /** Credentials used in order (cycled for closed flows and open flows with `cycle`). */
  credentials: readonly Credential[]
  /** True for legit traffic; false for guesses (an OK answer to one is a false accept). */
  expectOk: boolean
}

export interface ClosedFlow extends FlowBase {
  kind: 'closed'
  clients: number
}

export interface OpenFlow extends FlowBase {
  kind: 'open'
  ratePerS: number
  /** Start over at the end of `credentials` (false: the flow stops when they run out). */
  cycle: boolean
}

export type Flow = ClosedFlow | OpenFlow

export interface LoadSpec {
  socketPath: string
  flows: readonly Flow[]
  durationMs: number
  /** Upper bound on requests started, all flows together. */
  maxRequests: number
  /** Client give-up timeout per request (imapd-like). */
  clientTimeoutMs: number
  /** Open-loop requests in flight at once beyond this are counted as `dropped`, not sent. */
  maxOpenInFlight: number
  bucketMs: number
  seed: number
  /** Bounded login field settings. */
  service: string
  realm: string
}

export interface ClassReport {
  count: number
  ok: number
  no: number
  timeouts: number
  errors: number
  /** Requests of an open flow not sent because `maxOpenInFlight` was reached. */
  dropped: number
  /** OK answers to requests with `expectOk: false` (must be 0). */
  falseAccepts: number
  /** Outcomes by reply text (`OK`, `NO ...`), `timeout`, or the error code. */
  replies: Record<string, number>
  /** Answers (not timeouts) per second over the run. */
  answersPerS: number
  latencyMs: LatencySummary
}

export interface Bucket {
  tMs: number
  legitCount: number
  legitP99Ms: number
  legitTimeouts: number
  botAnswers: number
  /** p99 latency of the requests started in this bucket, per class (0 when none). */
  p99ByClassMs: Record<string, number>
}

export interface LoadReport {
  elapsedMs: number
  requests: number
  classes: Record<string, ClassReport>
  series: Bucket[]
}

interface Sample {
  cls: string
  legit: boolean
  startMs: number
  r: SaslauthdCheckResult
}

/** What a run has seen so far (for a live progress line). */
export interface LoadProgress {
  elapsedMs: number
  requests: number
  legitAnswered: number
  legitTimeouts: number
  /** p99 of the legit requests answered so far. */
  legitP99Ms: number
}

function progressOf(samples: readonly Sample[], started: number, elapsedMs: number): LoadProgress {
  const legit = samples.filter((s) => s.legit)
  return {
    elapsedMs,
    requests: started,
    legitAnswered: legit.filter((s) => !s.r.timedOut).length,
    legitTimeouts: legit.filter((s) => s.r.timedOut).length,
    legitP99Ms: summarize(legit.map((s) => s.r.latencyMs)).p99,
  }
}

/** Runs the load in this process. Never rejects for a failed request. */
export async function runLoadHere(
  spec: LoadSpec,
  onProgress?: (p: LoadProgress) => void,
  progressEveryMs = 500,
): Promise<LoadReport> {
  const rand = seededRandom(spec.seed)
  const samples: Sample[] = []
  const dropped = new Map<string, number>()
  const t0 = performance.now()
  const deadline = t0 + spec.durationMs
  let started = 0
  let openInFlight = 0
  const pending = new Set<Promise<void>>()
  const canStart = () => started < spec.maxRequests && performance.now() < deadline
  const clientOptions = {
    timeoutMs: spec.clientTimeoutMs,
    service: spec.service,
    realm: spec.realm,
  }
  const send = async (flow: Flow, cred: Credential): Promise<void> => {
    started++
    const startMs = performance.now() - t0
    const r = await saslauthdCheck(spec.socketPath, cred.login, cred.password, clientOptions)
    samples.push({ cls: flow.name, legit: flow.expectOk, startMs, r })
  }

  const closed = spec.flows.filter((f): f is ClosedFlow => f.kind === 'closed')
  const open = spec.flows.filter((f): f is OpenFlow => f.kind === 'open')
  const loops: Promise<void>[] = []
  for (const flow of closed) {
    let next = Math.floor(rand() * Math.max(1, flow.credentials.length))
    for (let c = 0; c < flow.clients; c++) {
      loops.push(
        (async () => {
          while (canStart() && flow.credentials.length > 0) {
            const cred = flow.credentials[next % flow.credentials.length] as Credential
            next++
            await send(flow, cred)
          }
        })(),
      )
    }
  }
  for (const flow of open) {
    if (flow.ratePerS <= 0 || flow.credentials.length === 0) continue
    loops.push(
      new Promise<void>((resolve) => {
        let next = 0
        const arrive = () => {
          if (!canStart() || (!flow.cycle && next >= flow.credentials.length)) {
            resolve()
            return
          }
          const cred = flow.credentials[next % flow.credentials.length] as Credential
          next++
          if (openInFlight >= spec.maxOpenInFlight) {
            dropped.set(flow.name, (dropped.get(flow.name) ?? 0) + 1)
          } else {
            openInFlight++
            const p = send(flow, cred).finally(() => {
              openInFlight--
              pending.delete(p)
            })
            pending.add(p)
          }
          const gapMs = (-Math.log(1 - rand()) / flow.ratePerS) * 1000
          setTimeout(arrive, gapMs)
        }
        setTimeout(arrive, (-Math.log(1 - rand()) / flow.ratePerS) * 1000)
      }),
    )
  }
  const ticker =
    onProgress === undefined
      ? undefined
      : setInterval(
          () => onProgress(progressOf(samples, started, performance.now() - t0)),
          progressEveryMs,
        )
  try {
    await Promise.all(loops)
    await Promise.all(pending) // each bounded by clientTimeoutMs
  } finally {
    if (ticker !== undefined) clearInterval(ticker)
  }
  const elapsedMs = performance.now() - t0
  return buildReport(spec, samples, dropped, elapsedMs)
}

function buildReport(
  spec: LoadSpec,
  samples: readonly Sample[],
  dropped: ReadonlyMap<string, number>,
  elapsedMs: number,
): LoadReport {
  const classes: Record<string, ClassReport> = {}
  const names = new Set([...spec.flows.map((f) => f.name)])
  for (const name of names) {
    const mine = samples.filter((s) => s.cls === name)
    const answered = mine.filter((s) => !s.r.timedOut && s.r.error === undefined)
    const expectOk = spec.flows.find((f) => f.name === name)?.expectOk ?? true
    const ok = mine.filter((s) => s.r.ok).length
    const replies: Record<string, number> = {}
    for (const s of mine) {
      const key = s.r.timedOut ? 'timeout' : (s.r.error ?? s.r.reply)
      replies[key] = (replies[key] ?? 0) + 1
    }
    classes[name] = {
      count: mine.length,
      ok,
      no: answered.length - ok,
      timeouts: mine.filter((s) => s.r.timedOut).length,
      errors: mine.filter((s) => !s.r.timedOut && s.r.error !== undefined).length,
      dropped: dropped.get(name) ?? 0,
      falseAccepts: expectOk ? 0 : ok,
      replies,
      answersPerS: Math.round((answered.length / Math.max(1, elapsedMs)) * 1000 * 10) / 10,
      latencyMs: summarize(mine.map((s) => s.r.latencyMs)),
    }
  }
  const nBuckets = Math.max(1, Math.ceil(spec.durationMs / spec.bucketMs))
  const series: Bucket[] = []
  for (let b = 0; b < nBuckets; b++) {
    const lo = b * spec.bucketMs
    const hi = lo + spec.bucketMs
    const inB = samples.filter((s) => s.startMs >= lo && s.startMs < hi)
    const legit = inB.filter((s) => s.legit)
    const p99ByClassMs: Record<string, number> = {}
    for (const name of names) {
      p99ByClassMs[name] = summarize(
        inB.filter((s) => s.cls === name).map((s) => s.r.latencyMs),
      ).p99
    }
    series.push({
      tMs: lo,
      legitCount: legit.length,
      legitP99Ms: summarize(legit.map((s) => s.r.latencyMs)).p99,
      legitTimeouts: legit.filter((s) => s.r.timedOut).length,
      botAnswers: inB.filter((s) => !s.legit && !s.r.timedOut && s.r.error === undefined).length,
      p99ByClassMs,
    })
  }
  return { elapsedMs: Math.round(elapsedMs), requests: samples.length, classes, series }
}
