/**
 * Where saslgate's events become traces, metrics and log lines. One instance per process.
 *
 * Spans (one trace across shim and service, W3C trace context in the RPC headers):
 *   saslgate.saslauthd.request (SERVER, the socket request; shim or single host; in the shim
 *                               one `upstream.attempt` event per replica asked, hedges included)
 *     saslgate.rpc.Authenticate (SERVER, in the service; one per replica asked)
 *       saslgate.decide        (INTERNAL, the pipeline: decision, stage, cache hit, guard, queue wait)
 *         saslgate.kdc.exchange (CLIENT, one KDC attempt: address, transport, attempt, outcome)
 *
 * Never a password, a key, a cache key or a token in any of them; principals as configured
 * (`telemetry.principals`: plain, keyed hash, or omitted).
 */
import {
  type Attributes,
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api'
import type { Logger } from 'pino'
import type { Authenticator, AuthRequest, AuthResult } from '../authenticator.js'
import type { KdcAttemptEvent } from '../kerberos/transport.js'
import type { DecisionEvent } from '../pipeline/pipeline.js'
import type { SaslauthdDecisionEvent } from '../saslauthd/listener.js'
import { LogLimiter } from './log-limiter.js'
import { createMetrics, type GaugeSources, type SaslgateMetrics } from './metrics.js'
import { type PrincipalMode, principalLabel } from './names.js'
import type { Telemetry } from './sdk.js'
import { syslogDecisionLine } from './syslog-line.js'

export interface ObservabilityOptions {
  telemetry: Telemetry
  logger: Logger
  principals: PrincipalMode
  principalKey: Buffer
  /** Decision log lines per second per reason (then suppressed, with a count). */
  decisionLogsPerSecond: number
  /** `log.syslog`: receives one auth-facility line per decision (syslog-line.ts), unlimited. */
  syslog?: (line: string) => void
}

export type HeaderGetter = (name: string) => string | undefined

const getter = {
  keys: (carrier: HeaderGetter) =>
    ['traceparent', 'tracestate'].filter((k) => carrier(k) !== undefined),
  get: (carrier: HeaderGetter, key: string) => carrier(key),
}
const setter = {
  set: (carrier: Record<string, string>, key: string, value: string) => {
    carrier[key] = value
  },
}

export class Observability {
  readonly metrics: SaslgateMetrics
  readonly tracer: Tracer
  readonly #logger: Logger
  readonly #label: (principal: string) => string | undefined
  readonly #decisionLogs: LogLimiter
  readonly #warnings = new LogLimiter({
    perSecond: 1,
    burst: 5,
    total: { perSecond: 10, burst: 20 },
  })
  readonly #flushTimer: NodeJS.Timeout
  readonly #gauges: Array<() => void> = []

  constructor(readonly o: ObservabilityOptions) {
    this.metrics = createMetrics(o.telemetry.meter)
    this.tracer = o.telemetry.tracer
    this.#logger = o.logger
    this.#label = principalLabel(o.principals, o.principalKey)
    const perSecond = Math.max(1, o.decisionLogsPerSecond)
    this.#decisionLogs = new LogLimiter({
      perSecond,
      burst: perSecond * 2,
      total: { perSecond: perSecond * 4, burst: perSecond * 8 },
    })
    this.#flushTimer = setInterval(() => this.#flushSuppressed(), 10_000).unref()
  }

  /** Principal as telemetry may show it (undefined: leave it out). */
  principal(principal: string | undefined): string | undefined {
    return principal === undefined ? undefined : this.#label(principal)
  }

  observe(sources: GaugeSources): void {
    this.#gauges.push(this.metrics.observe(sources))
  }

  /**
   * Wraps an authenticator so each request runs inside a span (the active span of
   * everything the authenticator does, so the pipeline and KDC spans nest under it).
   */
  traced(
    inner: Authenticator,
    name: string,
    kind: SpanKind,
    parentOf?: (req: AuthRequest) => Context,
  ): Authenticator {
    const tracer = this.tracer
    return {
      authenticate: (req) => {
        const parent = parentOf?.(req) ?? context.active()
        return tracer.startActiveSpan(name, { kind }, parent, async (span) => {
          try {
            const result = await inner.authenticate(req)
            annotate(span, result)
            return result
          } catch (err) {
            span.setStatus({ code: SpanStatusCode.ERROR, message: 'internal error' })
            throw err
          } finally {
            span.end()
          }
        })
      },
      close: () => inner.close(),
    }
  }

  /** The W3C trace context of the caller's headers (the service side of the RPC). */
  extract(header: HeaderGetter): Context {
    return propagation.extract(ROOT_CONTEXT, header, getter)
  }

  /** Adds `traceparent` (and `tracestate`) of the active span to outgoing headers. */
  inject(headers: Record<string, string>): void {
    propagation.inject(context.active(), headers, setter)
  }

  /** Runs `fn` in a span of its own (the shim's attempt on one replica, the service's RPC). */
  async span<T>(
    name: string,
    kind: SpanKind,
    attributes: Attributes,
    fn: (span: Span) => Promise<T>,
    parent: Context = context.active(),
  ): Promise<T> {
    return this.tracer.startActiveSpan(name, { kind, attributes }, parent, async (span) => {
      try {
        return await fn(span)
      } catch (err) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: errorWord(err) })
        throw err
      } finally {
        span.end()
      }
    })
  }

  /** The pipeline decided: metrics, the active (decide) span, one log line (rate-limited). */
  onPipelineDecision(e: DecisionEvent): void {
    this.metrics.recordDecision(e)
    const span = trace.getActiveSpan()
    const who = this.principal(e.principal)
    if (span !== undefined) {
      span.setAttributes({
        'saslgate.decision': e.decision,
        'saslgate.reason': e.reason,
        'saslgate.stage': e.stage,
        'saslgate.cache_hit': e.cacheHit,
        'saslgate.queue_wait_ms': Math.round(e.queueWaitMs * 100) / 100,
        'saslgate.guard': guardState(e.reason),
      })
      if (who !== undefined) span.setAttribute('saslgate.principal', who)
    }
    this.o.syslog?.(syslogDecisionLine({ decision: e.decision, reason: e.reason, user: who }))
    this.#logDecision(e.reason, {
      decision: e.decision,
      reason: e.reason,
      stage: e.stage,
      cacheHit: e.cacheHit,
      queueWaitMs: Math.round(e.queueWaitMs * 10) / 10,
      ms: Math.round(e.latencyMs * 10) / 10,
      principal: who,
    })
  }

  /**
   * The saslauthd listener answered. In the shim every decision is counted here; next to a
   * local pipeline only what the pipeline never saw (malformed frames, listener limits).
   */
  onListenerDecision(e: SaslauthdDecisionEvent, pipelineCounts: boolean): void {
    // At debug level: what the client sent (no password), for wire-level troubleshooting.
    if (this.#logger.isLevelEnabled('debug'))
      this.#logger.debug(
        {
          login: e.login === undefined ? undefined : this.principal(e.login),
          service: e.service,
          realm: e.realm,
          fields: e.fieldCount,
          decision: e.decision,
          reason: e.reason,
          ms: Math.round(e.latencyMs * 10) / 10,
        },
        'saslauthd request',
      )
    const pipelineSaw = e.stage !== 'decode' && e.stage !== 'listener'
    if (pipelineCounts && pipelineSaw) return
    this.metrics.recordDecision(e)
    this.o.syslog?.(
      syslogDecisionLine({
        decision: e.decision,
        reason: e.reason,
        user: e.login === undefined ? undefined : this.principal(e.login),
        service: e.service,
      }),
    )
    this.#logDecision(`${e.stage}:${e.reason}`, {
      decision: e.decision,
      reason: e.reason,
      stage: e.stage,
      detail: e.detail,
      ms: Math.round(e.latencyMs * 10) / 10,
      service: e.service,
      delivered: e.delivered,
    })
  }

  /** One KDC attempt: a metric and a span (made after the fact, under the active span). */
  onKdcAttempt(e: KdcAttemptEvent): void {
    this.metrics.recordKdcExchange(e)
    const end = Date.now()
    const span = this.tracer.startSpan(
      'saslgate.kdc.exchange',
      {
        kind: SpanKind.CLIENT,
        startTime: end - e.durationMs,
        attributes: {
          'saslgate.kdc': e.kdc,
          'saslgate.realm': e.realm,
          'network.transport': e.protocol,
          'saslgate.attempt': e.attempt,
          'saslgate.outcome': e.outcome,
          ...(e.detail !== undefined ? { 'saslgate.detail': e.detail } : {}),
        },
      },
      context.active(),
    )
    if (e.outcome !== 'reply') span.setStatus({ code: SpanStatusCode.ERROR, message: e.outcome })
    span.end(end)
  }

  onBreakerChange(e: { kdc: string; state: string }): void {
    const key = `breaker:${e.kdc}`
    const r = this.#warnings.check(key)
    if (r.allowed)
      this.#logger.warn(
        { kdc: e.kdc, state: e.state, suppressed: r.suppressed || undefined },
        'KDC breaker changed state',
      )
  }

  onShed(): void {
    const r = this.#warnings.check('shed')
    if (r.allowed)
      this.#logger.warn(
        { suppressed: r.suppressed || undefined },
        'requests shed: no KDC slot before their deadline',
      )
  }

  onStateFallback(e: { operation: string }): void {
    this.metrics.recordStateFallback(e)
    const r = this.#warnings.check('state-fallback')
    if (r.allowed)
      this.#logger.warn(
        { operation: e.operation, suppressed: r.suppressed || undefined },
        'Valkey/Redis unavailable: guard state from local memory',
      )
  }

  onUpstreamAttempt(e: {
    endpoint: string
    outcome: string
    code?: string
    cause?: string
    ms: number
    hedge: boolean
  }): void {
    this.metrics.recordUpstreamAttempt(e)
    trace.getActiveSpan()?.addEvent('upstream.attempt', {
      'saslgate.upstream': e.endpoint,
      'saslgate.outcome': e.outcome,
      'saslgate.hedge': e.hedge,
      'saslgate.ms': Math.round(e.ms * 100) / 100,
      ...(e.code !== undefined ? { 'saslgate.code': e.code } : {}),
      ...(e.cause !== undefined ? { 'saslgate.cause': e.cause } : {}),
    })
    if (e.outcome === 'failed' || e.outcome === 'unauthenticated') {
      const r = this.#warnings.check(`upstream:${e.endpoint}`)
      if (r.allowed)
        this.#logger.warn(
          {
            upstream: e.endpoint,
            outcome: e.outcome,
            code: e.code,
            cause: e.cause,
            ms: Math.round(e.ms),
            suppressed: r.suppressed || undefined,
          },
          'upstream attempt failed',
        )
    }
  }

  #logDecision(key: string, fields: Record<string, unknown>): void {
    const r = this.#decisionLogs.check(key)
    if (!r.allowed) return
    if (fields.reason === 'shed') this.onShed()
    this.#logger.info({ ...fields, suppressed: r.suppressed || undefined }, 'decision')
  }

  #flushSuppressed(): void {
    for (const [key, count] of this.#decisionLogs.flush())
      this.#logger.info({ kind: key, suppressed: count }, 'decision lines suppressed')
    for (const [key, count] of this.#warnings.flush())
      this.#logger.warn({ kind: key, suppressed: count }, 'warnings suppressed')
  }

  close(): void {
    clearInterval(this.#flushTimer)
    this.#flushSuppressed()
    for (const remove of this.#gauges) remove()
  }
}

function annotate(span: Span, result: AuthResult): void {
  span.setAttributes({
    'saslgate.decision': result.decision,
    'saslgate.reason': result.reason,
    'saslgate.stage': result.stage,
  })
}

function guardState(reason: string): string {
  if (reason === 'guard_blocked') return 'blocked'
  if (reason === 'guard_budget') return 'budget_used'
  return 'open'
}

function errorWord(err: unknown): string {
  const code = (err as { code?: unknown })?.code
  return typeof code === 'string' || typeof code === 'number' ? String(code) : 'error'
}
