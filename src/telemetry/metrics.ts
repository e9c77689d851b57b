/**
 * Every saslgate metric: stable names, units, descriptions and label sets, in one table
 * (`METRICS`), and `createMetrics(meter)` returning typed recorders over them.
 *
 * Names are in Prometheus style already (`saslgate_*`; the Prometheus exporter appends
 * `_total` to counters), so `/metrics`, an OTel collector's Prometheus exporter and the
 * Grafana dashboard all see the same names. Labels have bounded cardinality: their values
 * come from code (decision, stage, reason, outcome), from configuration (KDC addresses,
 * upstream URLs), or from a fixed set (RPC methods and codes). **Never a principal, a login,
 * a client address or anything derived from a password as a label.** As a safety net, each
 * free-form label keeps at most `maxLabelValues` distinct values; later ones become `other`.
 */
import type {
  Attributes,
  Counter,
  Histogram,
  Meter,
  ObservableGauge,
  ObservableResult,
} from '@opentelemetry/api'
import type { Decision, Reason } from '../errors.js'
import type { BreakerState } from '../kerberos/kdc-breakers.js'

/** Histogram bucket bounds in seconds, 0.1 ms .. 5 s (cached path to a slow KDC). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
])

export type MetricKind = 'counter' | 'histogram' | 'gauge'

export interface MetricSpec {
  /** The instrument name (also the Prometheus name, before `_total`/`_bucket`/...). */
  readonly name: string
  readonly kind: MetricKind
  readonly unit: string
  readonly description: string
  readonly labels: readonly string[]
}

/** The metric table: the only place names are spelled. */
export const METRICS = {
  decisions: {
    name: 'saslgate_decisions',
    kind: 'counter',
    unit: '{decision}',
    description: 'Authentication decisions, by decision (ok|invalid|unavailable), stage and reason',
    labels: ['decision', 'stage', 'reason'],
  },
  decisionDuration: {
    name: 'saslgate_decision_duration_seconds',
    kind: 'histogram',
    unit: 's',
    description: 'Time from request to decision, by the stage that decided',
    labels: ['stage'],
  },
  kdcExchanges: {
    name: 'saslgate_kdc_exchanges',
    kind: 'counter',
    unit: '{exchange}',
    description: 'KDC request/reply attempts, by KDC (host:port), transport and outcome',
    labels: ['kdc', 'transport', 'outcome'],
  },
  kdcExchangeDuration: {
    name: 'saslgate_kdc_exchange_duration_seconds',
    kind: 'histogram',
    unit: 's',
    description: 'Duration of one KDC attempt, by KDC and transport',
    labels: ['kdc', 'transport'],
  },
  shed: {
    name: 'saslgate_shed_requests',
    kind: 'counter',
    unit: '{request}',
    description: 'Requests shed by admission control (queue full or deadline too close)',
    labels: [],
  },
  guardBlocks: {
    name: 'saslgate_guard_blocks',
    kind: 'counter',
    unit: '{request}',
    description: 'Requests refused by the guard without asking a KDC, by reason',
    labels: ['reason'],
  },
  cacheLookups: {
    name: 'saslgate_cache_lookups',
    kind: 'counter',
    unit: '{lookup}',
    description:
      'Verdict cache lookups; each lookup counts once per cache (positive|negative), hit true|false',
    labels: ['cache', 'hit'],
  },
  stateFallbacks: {
    name: 'saslgate_state_fallbacks',
    kind: 'counter',
    unit: '{call}',
    description:
      'Guard-state calls answered from local memory because Valkey/Redis was unavailable',
    labels: ['operation'],
  },
  upstreamAttempts: {
    name: 'saslgate_shim_upstream_attempts',
    kind: 'counter',
    unit: '{attempt}',
    description: 'Shim calls to service replicas, by upstream and outcome',
    labels: ['upstream', 'outcome'],
  },
  rpcRequests: {
    name: 'saslgate_rpc_requests',
    kind: 'counter',
    unit: '{request}',
    description: 'RPCs served, by method and Connect/gRPC code',
    labels: ['method', 'code'],
  },
  rpcDuration: {
    name: 'saslgate_rpc_duration_seconds',
    kind: 'histogram',
    unit: 's',
    description: 'RPC handling time, by method',
    labels: ['method'],
  },
  queueDepth: {
    name: 'saslgate_queue_depth',
    kind: 'gauge',
    unit: '{request}',
    description: 'Checks waiting in the admission queue',
    labels: [],
  },
  kdcInFlight: {
    name: 'saslgate_kdc_in_flight',
    kind: 'gauge',
    unit: '{check}',
    description: 'Password checks running against the KDCs now',
    labels: [],
  },
  cacheEntries: {
    name: 'saslgate_cache_entries',
    kind: 'gauge',
    unit: '{entry}',
    description:
      'Verdict cache entries held, positive and negative (bounded by the max*Entries options)',
    labels: ['cache'],
  },
  refusalHold: {
    name: 'saslgate_refusal_hold_seconds',
    kind: 'gauge',
    unit: 's',
    description:
      'Delay after which a KDC check refusal is written, the same for every principal (no timing enumeration)',
    labels: [],
  },
  refusalHoldOverruns: {
    name: 'saslgate_refusal_hold_overruns',
    kind: 'counter',
    unit: '{check}',
    description: 'KDC check refusals ready only after their hold had ended (answered late)',
    labels: [],
  },
  breakerState: {
    name: 'saslgate_kdc_breaker_state',
    kind: 'gauge',
    unit: '1',
    description: 'Circuit breaker state per KDC: 0 closed, 1 half-open, 2 open',
    labels: ['kdc'],
  },
  openConnections: {
    name: 'saslgate_open_connections',
    kind: 'gauge',
    unit: '{connection}',
    description: 'Open client connections, by listener',
    labels: ['listener'],
  },
} as const satisfies Record<string, MetricSpec>

export type MetricId = keyof typeof METRICS

/** The series names a metric produces in Prometheus text format. */
export function prometheusSeriesNames(spec: MetricSpec): string[] {
  switch (spec.kind) {
    case 'counter':
      return [`${spec.name}_total`]
    case 'histogram':
      return [`${spec.name}_bucket`, `${spec.name}_sum`, `${spec.name}_count`]
    case 'gauge':
      return [spec.name]
  }
}

/** Every Prometheus series name saslgate exposes. */
export function allPrometheusSeriesNames(): string[] {
  return Object.values(METRICS).flatMap((spec) => prometheusSeriesNames(spec))
}

/** Breaker states as gauge values. */
export const BREAKER_STATE_VALUES: Readonly<Record<BreakerState, number>> = Object.freeze({
  closed: 0,
  halfOpen: 1,
  open: 2,
})

/** Stages that come after the verdict cache lookup (a decision there means a cache miss). */
const AFTER_CACHE_STAGES: ReadonlySet<string> = new Set([
  'guard',
  'offline',
  'admission',
  'kerberos',
])

export type CacheLookupOutcome = 'positive' | 'negative' | 'miss'

/** The fields of a pipeline `DecisionEvent` (or a listener's decision event) metrics use. */
export interface DecisionSample {
  decision: Decision
  reason: Reason
  stage: string
  latencyMs: number
}

/** The fields of a transport `KdcAttemptEvent` metrics use. */
export interface KdcExchangeSample {
  kdc: string
  protocol: string
  outcome: string
  durationMs: number
}

/** The fields of a shim `AttemptEvent` metrics use. */
export interface UpstreamAttemptSample {
  endpoint: string
  outcome: string
}

/** Callbacks read at each collection (scrape or export). Each returns the value now. */
export interface GaugeSources {
  /** e.g. `() => pipeline.stats().queued` */
  queueDepth?: () => number
  /** e.g. `() => pipeline.stats().kdcInFlight` */
  kdcInFlight?: () => number
  /** e.g. `() => pipeline.stats().cache` */
  cacheEntries?: () => { positive: number; negative: number }
  /** e.g. `() => pipeline.stats().refusalHold` */
  refusalHold?: () => { holdMs: number; overruns: number }
  /** e.g. `() => kdcClient.breakerStates()` */
  breakerStates?: () => Readonly<Record<string, BreakerState>>
  /** Open connections per listener, e.g. `() => ({ saslauthd: listener.stats().openConnections })` */
  openConnections?: () => Readonly<Record<string, number>>
}

export interface MetricsOptions {
  /** Distinct values kept per free-form label before the rest become `other` (default 100). */
  maxLabelValues?: number
}

export const OTHER_LABEL_VALUE = 'other'

export interface SaslgateMetrics {
  /** The raw instruments, for anything the recorders below do not cover. */
  readonly instruments: {
    readonly decisions: Counter
    readonly decisionDuration: Histogram
    readonly kdcExchanges: Counter
    readonly kdcExchangeDuration: Histogram
    readonly shed: Counter
    readonly guardBlocks: Counter
    readonly cacheLookups: Counter
    readonly stateFallbacks: Counter
    readonly upstreamAttempts: Counter
    readonly rpcRequests: Counter
    readonly rpcDuration: Histogram
  }
  /**
   * One decision: `saslgate_decisions`, `saslgate_decision_duration_seconds`, and what the
   * reason and stage imply: a shed (`reason` `shed`), a guard block (`guard_blocked`,
   * `guard_budget`), and a cache lookup (stage `cache`: hit; stages after it: miss).
   * Do not also call `recordShed`/`recordGuardBlock`/`recordCacheLookup` for the same event.
   */
  recordDecision(event: DecisionSample): void
  recordCacheLookup(outcome: CacheLookupOutcome): void
  recordShed(): void
  recordGuardBlock(reason: 'guard_blocked' | 'guard_budget'): void
  /** One KDC attempt (a transport `onAttempt` event as it is). */
  recordKdcExchange(event: KdcExchangeSample): void
  /** One Valkey/Redis fallback (the store's `fallback` event as it is). */
  recordStateFallback(event: { operation: string }): void
  /** One shim attempt against a replica (the remote authenticator's `onAttempt` event). */
  recordUpstreamAttempt(event: UpstreamAttemptSample): void
  /** One RPC: `method` e.g. `Authenticate`, `code` e.g. `ok`, `unauthenticated`. */
  recordRpc(method: string, code: string, durationMs: number): void
  /**
   * Feeds the gauges from these callbacks (replacing earlier ones for the same gauge).
   * Returns a function that removes them again (the SDK keeps exporting a removed gauge's
   * last value: register sources once, for the life of the process). A callback that throws
   * reports nothing.
   */
  observe(sources: GaugeSources): () => void
}

/** Creates the saslgate instruments on `meter` (call once per meter). */
export function createMetrics(meter: Meter, options: MetricsOptions = {}): SaslgateMetrics {
  const cap = new LabelCap(options.maxLabelValues ?? 100)
  const counter = (spec: MetricSpec) => preAggregatedCounter(meter, spec)
  const histogram = (spec: MetricSpec) =>
    meter.createHistogram(spec.name, {
      description: spec.description,
      unit: spec.unit,
      advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_SECONDS] },
    })
  const gauge = (spec: MetricSpec): ObservableGauge =>
    meter.createObservableGauge(spec.name, { description: spec.description, unit: spec.unit })

  const instruments = {
    decisions: counter(METRICS.decisions),
    decisionDuration: histogram(METRICS.decisionDuration),
    kdcExchanges: counter(METRICS.kdcExchanges),
    kdcExchangeDuration: histogram(METRICS.kdcExchangeDuration),
    shed: counter(METRICS.shed),
    guardBlocks: counter(METRICS.guardBlocks),
    cacheLookups: counter(METRICS.cacheLookups),
    stateFallbacks: counter(METRICS.stateFallbacks),
    upstreamAttempts: counter(METRICS.upstreamAttempts),
    rpcRequests: counter(METRICS.rpcRequests),
    rpcDuration: histogram(METRICS.rpcDuration),
  } as const

  const LOOKUPS: Record<CacheLookupOutcome, readonly [Attributes, Attributes]> = {
    positive: [
      { cache: 'positive', hit: 'true' },
      { cache: 'negative', hit: 'false' },
    ],
    negative: [
      { cache: 'positive', hit: 'false' },
      { cache: 'negative', hit: 'true' },
    ],
    miss: [
      { cache: 'positive', hit: 'false' },
      { cache: 'negative', hit: 'false' },
    ],
  }
  const recordCacheLookup = (outcome: CacheLookupOutcome): void => {
    for (const attrs of LOOKUPS[outcome]) instruments.cacheLookups.add(1, attrs)
  }
  const recordShed = (): void => instruments.shed.add(1)
  const recordGuardBlock = (reason: 'guard_blocked' | 'guard_budget'): void =>
    instruments.guardBlocks.add(1, { reason })

  let sources: GaugeSources = {}
  const observeSafely = (fn: () => void): void => {
    try {
      fn()
    } catch {
      // A broken source reports nothing; it must not break the scrape.
    }
  }
  gauge(METRICS.queueDepth).addCallback((result: ObservableResult) => {
    const source = sources.queueDepth
    if (source !== undefined) observeSafely(() => result.observe(source()))
  })
  gauge(METRICS.kdcInFlight).addCallback((result: ObservableResult) => {
    const source = sources.kdcInFlight
    if (source !== undefined) observeSafely(() => result.observe(source()))
  })
  gauge(METRICS.cacheEntries).addCallback((result: ObservableResult) => {
    const source = sources.cacheEntries
    if (source === undefined) return
    observeSafely(() => {
      const n = source()
      result.observe(n.positive, { cache: 'positive' })
      result.observe(n.negative, { cache: 'negative' })
    })
  })
  gauge(METRICS.refusalHold).addCallback((result: ObservableResult) => {
    const source = sources.refusalHold
    if (source !== undefined) observeSafely(() => result.observe(source().holdMs / 1000))
  })
  meter
    .createObservableCounter(METRICS.refusalHoldOverruns.name, {
      description: METRICS.refusalHoldOverruns.description,
      unit: METRICS.refusalHoldOverruns.unit,
    })
    .addCallback((result: ObservableResult) => {
      const source = sources.refusalHold
      if (source !== undefined) observeSafely(() => result.observe(source().overruns))
    })
  gauge(METRICS.breakerState).addCallback((result: ObservableResult) => {
    const source = sources.breakerStates
    if (source === undefined) return
    observeSafely(() => {
      for (const [kdc, state] of Object.entries(source())) {
        const value = BREAKER_STATE_VALUES[state]
        if (value !== undefined) result.observe(value, { kdc: cap.value('kdc', kdc) })
      }
    })
  })
  gauge(METRICS.openConnections).addCallback((result: ObservableResult) => {
    const source = sources.openConnections
    if (source === undefined) return
    observeSafely(() => {
      for (const [listener, n] of Object.entries(source())) {
        result.observe(n, { listener: cap.value('listener', listener) })
      }
    })
  })

  return {
    instruments,
    recordDecision(event) {
      const stage = cap.value('stage', event.stage)
      instruments.decisions.add(1, {
        decision: event.decision,
        stage,
        reason: cap.value('reason', event.reason),
      })
      instruments.decisionDuration.record(event.latencyMs / 1000, { stage })
      if (event.reason === 'shed') recordShed()
      if (event.reason === 'guard_blocked' || event.reason === 'guard_budget') {
        recordGuardBlock(event.reason)
      }
      if (event.stage === 'cache') {
        if (event.reason === 'cached_ok') recordCacheLookup('positive')
        else if (event.reason === 'cached_invalid') recordCacheLookup('negative')
      } else if (AFTER_CACHE_STAGES.has(event.stage)) {
        recordCacheLookup('miss')
      }
    },
    recordCacheLookup,
    recordShed,
    recordGuardBlock,
    recordKdcExchange(event) {
      const kdc = cap.value('kdc', event.kdc)
      const transport = cap.value('transport', event.protocol)
      instruments.kdcExchanges.add(1, {
        kdc,
        transport,
        outcome: cap.value('kdc_outcome', event.outcome),
      })
      instruments.kdcExchangeDuration.record(event.durationMs / 1000, { kdc, transport })
    },
    recordStateFallback(event) {
      instruments.stateFallbacks.add(1, { operation: cap.value('operation', event.operation) })
    },
    recordUpstreamAttempt(event) {
      instruments.upstreamAttempts.add(1, {
        upstream: cap.value('upstream', event.endpoint),
        outcome: cap.value('upstream_outcome', event.outcome),
      })
    },
    recordRpc(method, code, durationMs) {
      const m = cap.value('method', method)
      instruments.rpcRequests.add(1, { method: m, code: cap.value('code', code) })
      instruments.rpcDuration.record(durationMs / 1000, { method: m })
    },
    observe(next) {
      const mine: GaugeSources = { ...next }
      sources = { ...sources, ...mine }
      return () => {
        const kept: GaugeSources = { ...sources }
        for (const name of Object.keys(mine) as (keyof GaugeSources)[]) {
          if (kept[name] === mine[name]) delete kept[name]
        }
        sources = kept
      }
    },
  }
}

/**
 * A counter that sums into a plain Map and hands the sums to the SDK when it collects (an
 * ObservableCounter; exported exactly like a Counter). The SDK's own Counter hashes the
 * attributes on every `add`: on a cached login that was most of the service's metrics CPU.
 * Series are keyed by the spec's labels, in order; other attributes are dropped. Their
 * number is bounded by the label cap.
 */
function preAggregatedCounter(meter: Meter, spec: MetricSpec): Counter {
  const series = new Map<string, { attributes: Attributes; value: number }>()
  meter
    .createObservableCounter(spec.name, { description: spec.description, unit: spec.unit })
    .addCallback((result: ObservableResult) => {
      for (const s of series.values()) result.observe(s.value, s.attributes)
    })
  return {
    add(value: number, attributes: Attributes = {}): void {
      if (!(value >= 0)) return // monotonic: the SDK drops negative adds too
      let key = ''
      for (const label of spec.labels) key += `${String(attributes[label] ?? '')}\u0000`
      const s = series.get(key)
      if (s !== undefined) {
        s.value += value
        return
      }
      const own: Attributes = {}
      for (const label of spec.labels) {
        const v = attributes[label]
        if (v !== undefined) own[label] = v
      }
      series.set(key, { attributes: own, value })
    },
  }
}

/** Keeps at most `max` distinct values per label; the rest are reported as `other`. */
class LabelCap {
  readonly #max: number
  readonly #seen = new Map<string, Set<string>>()

  constructor(max: number) {
    this.#max = Math.max(1, Math.floor(max))
  }

  value(label: string, value: string): string {
    let seen = this.#seen.get(label)
    if (seen === undefined) {
      seen = new Set()
      this.#seen.set(label, seen)
    }
    if (seen.has(value)) return value
    if (seen.size >= this.#max) return OTHER_LABEL_VALUE
    seen.add(value)
    return value
  }
}
