// Telemetry building blocks: the SDK setup (Prometheus always, OTLP/HTTP from OTEL_* to a real
// receiver on 127.0.0.1), the metric recorders, principal labels, the log limiter, and the
// test-support parsers themselves. OTLP runs happen in child processes, so the global
// providers NodeSDK registers never leak into the rest of the run.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { once } from 'node:events'
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import { gzipSync } from 'node:zlib'
import { isSpanContextValid } from '@opentelemetry/api'
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus'
import { MeterProvider } from '@opentelemetry/sdk-metrics'
import { isSaslgateError } from '../../src/errors.js'
import { EVICTED_KEY, LogLimiter } from '../../src/telemetry/log-limiter.js'
import {
  allPrometheusSeriesNames,
  createMetrics,
  METRICS,
  OTHER_LABEL_VALUE,
  type SaslgateMetrics,
} from '../../src/telemetry/metrics.js'
import { principalLabel, randomPrincipalKey } from '../../src/telemetry/names.js'
import {
  PROMETHEUS_CONTENT_TYPE,
  serviceNameFromEnv,
  startTelemetry,
  withExportDefaults,
} from '../../src/telemetry/sdk.js'
import { decodeProtobuf, OtlpReceiver } from '../support/otlp-receiver.js'
import {
  findSamples,
  PrometheusParseError,
  parsePrometheusText,
  sampleSum,
} from '../support/prometheus-text.js'

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)
process.on('unhandledRejection', onUnhandled)
after(() => {
  process.off('unhandledRejection', onUnhandled)
  assert.deepEqual(unhandled, [], 'no unhandled rejection during the whole file')
})

/** Env for an in-process start: nothing from the outer environment's OTEL_* leaks in. */
function otelEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OTEL_')) env[k] = v
  return { ...env, ...vars }
}

/** Records one of everything, so every metric has a series. */
function recordAll(m: SaslgateMetrics): void {
  m.recordDecision({ decision: 'ok', reason: 'cached_ok', stage: 'cache', latencyMs: 0.2 })
  m.recordDecision({ decision: 'invalid', reason: 'guard_blocked', stage: 'guard', latencyMs: 0.4 })
  m.recordDecision({ decision: 'unavailable', reason: 'shed', stage: 'admission', latencyMs: 3 })
  m.recordKdcExchange({ kdc: '127.0.0.1:88', protocol: 'udp', outcome: 'reply', durationMs: 2 })
  m.recordStateFallback({ operation: 'check' })
  m.recordUpstreamAttempt({ endpoint: 'https://10.0.0.5:8443', outcome: 'answer' })
  m.recordRpc('Authenticate', 'ok', 1.5)
}

/** A private meter provider with a Prometheus reader (no globals), and a scrape function. */
function privateMeter(): { metrics: SaslgateMetrics; scrape: () => Promise<string> } {
  const prometheus = new PrometheusExporter({
    preventServerStart: true,
    withoutScopeInfo: true,
    withoutTargetInfo: true,
  })
  const provider = new MeterProvider({ readers: [prometheus] })
  const serializer = new PrometheusSerializer('', false, undefined, true, true)
  return {
    metrics: createMetrics(provider.getMeter('test'), { maxLabelValues: 3 }),
    scrape: async () => serializer.serialize((await prometheus.collect()).resourceMetrics),
  }
}

interface ChildResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `code` (an ES module) under tsx in a child process, bounded in time. */
async function runChild(code: string, env: NodeJS.ProcessEnv, timeoutMs = 30_000) {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: new URL('../../', import.meta.url),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const out: ChildResult = { code: null, stdout: '', stderr: '' }
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out.stdout += d
  })
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    out.stderr += d
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  try {
    const [code] = (await once(child, 'close')) as [number | null]
    out.code = code
  } finally {
    clearTimeout(timer)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  return out
}

const SDK_URL = new URL('../../src/telemetry/sdk.ts', import.meta.url).href
const METRICS_URL = new URL('../../src/telemetry/metrics.ts', import.meta.url).href
const NAMES_URL = new URL('../../src/telemetry/names.ts', import.meta.url).href

/** A child that makes a small trace (server span, child span, a span continued from a
 * traceparent as the service would), records metrics, prints what it made, shuts down. */
const TRACE_CHILD = `
import { context, propagation, SpanKind, trace } from '@opentelemetry/api'
import { startTelemetry } from ${JSON.stringify(SDK_URL)}
import { createMetrics } from ${JSON.stringify(METRICS_URL)}
import { principalLabel } from ${JSON.stringify(NAMES_URL)}
const t = await startTelemetry({ serviceName: 'saslgate-shim' })
const m = createMetrics(t.meter)
const label = principalLabel('hash', Buffer.alloc(32, 7))
const carrier = {}
let root, inner
t.tracer.startActiveSpan('saslauthd.request', { kind: SpanKind.SERVER }, (span) => {
  root = span.spanContext()
  span.setAttributes({ 'saslgate.decision': 'ok', 'saslgate.cache_hit': true, 'saslgate.queue_wait_ms': 1.5 })
  // from the environment: the command line (this code) is exported as a resource attribute
  const principal = label(process.env.TEST_PRINCIPAL)
  span.setAttribute('saslgate.principal', principal)
  const child = t.tracer.startSpan('kdc.exchange', { attributes: { 'saslgate.kdc': '127.0.0.1:88', 'saslgate.attempt': 2 } })
  inner = child.spanContext()
  child.end()
  propagation.inject(context.active(), carrier)
  span.end()
})
const remote = propagation.extract(context.active(), carrier)
trace.getTracer('saslgate').startSpan('rpc.authenticate', { kind: SpanKind.SERVER }, remote).end()
m.recordDecision({ decision: 'ok', reason: 'remote_ok', stage: 'upstream', latencyMs: 0.7 })
process.stdout.write(JSON.stringify({ enabled: t.enabled, service: t.serviceName, root, inner, carrier }) + '\\n')
await t.shutdown()
`

describe('startTelemetry', () => {
  test('OTEL_SDK_DISABLED=true: no export, Prometheus text parses and counters move', async () => {
    const receiver = await OtlpReceiver.start()
    const t = await startTelemetry({
      serviceName: 'saslgate-service',
      env: otelEnv({
        OTEL_SDK_DISABLED: 'true',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_METRIC_EXPORT_INTERVAL: '50',
      }),
    })
    const server = createServer((req, res) => t.metricsHandler(req, res))
    try {
      assert.equal(t.enabled, false)
      assert.equal(t.serviceName, 'saslgate-service')
      assert.equal(isSpanContextValid(t.tracer.startSpan('x').spanContext()), false, 'no-op tracer')
      const m = createMetrics(t.meter)
      recordAll(m)
      let breaker: 'closed' | 'halfOpen' | 'open' = 'open'
      m.observe({
        queueDepth: () => 7,
        kdcInFlight: () => 3,
        breakerStates: () => ({ '127.0.0.1:88': breaker, '127.0.0.2:88': 'closed' }),
        openConnections: () => ({ rpc: 4, saslauthd: 2 }),
        cacheEntries: () => ({ positive: 5, negative: 6 }),
        refusalHold: () => ({ holdMs: 12.5, overruns: 2 }),
      })

      const first = parsePrometheusText(await t.scrape())
      const names = new Set(first.samples.map((s) => s.name))
      for (const name of allPrometheusSeriesNames()) assert.ok(names.has(name), `${name} in scrape`)
      assert.equal(first.families.get('saslgate_decisions_total')?.type, 'counter')
      assert.equal(first.families.get('saslgate_decision_duration_seconds')?.type, 'histogram')
      assert.equal(first.families.get('saslgate_queue_depth')?.type, 'gauge')
      assert.equal(sampleSum(first, 'saslgate_queue_depth'), 7)
      assert.equal(sampleSum(first, 'saslgate_refusal_hold_seconds'), 0.0125)
      assert.equal(first.families.get('saslgate_refusal_hold_overruns_total')?.type, 'counter')
      assert.equal(sampleSum(first, 'saslgate_refusal_hold_overruns_total'), 2)
      assert.equal(sampleSum(first, 'saslgate_kdc_breaker_state', { kdc: '127.0.0.1:88' }), 2)
      assert.equal(sampleSum(first, 'saslgate_kdc_breaker_state', { kdc: '127.0.0.2:88' }), 0)
      assert.equal(sampleSum(first, 'saslgate_open_connections', { listener: 'rpc' }), 4)
      assert.equal(sampleSum(first, 'saslgate_shed_requests_total'), 1)
      assert.equal(sampleSum(first, 'saslgate_guard_blocks_total', { reason: 'guard_blocked' }), 1)
      // cache stage hit + two misses (guard, admission), once per cache each
      assert.equal(sampleSum(first, 'saslgate_cache_lookups_total', { cache: 'positive' }), 3)
      assert.equal(
        sampleSum(first, 'saslgate_cache_lookups_total', { cache: 'positive', hit: 'true' }),
        1,
      )

      recordAll(m)
      breaker = 'halfOpen'
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      const { port } = server.address() as AddressInfo
      const scraped = await new Promise<{ status: number; type: string; body: string }>(
        (resolve, reject) => {
          request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
            let body = ''
            res.setEncoding('utf8').on('data', (d: string) => {
              body += d
            })
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                type: String(res.headers['content-type']),
                body,
              }),
            )
          })
            .on('error', reject)
            .end()
        },
      )
      assert.equal(scraped.status, 200)
      assert.equal(scraped.type, PROMETHEUS_CONTENT_TYPE)
      const second = parsePrometheusText(scraped.body)
      const decisions = { decision: 'ok', stage: 'cache', reason: 'cached_ok' }
      assert.equal(sampleSum(first, 'saslgate_decisions_total', decisions), 1)
      assert.equal(sampleSum(second, 'saslgate_decisions_total', decisions), 2, 'counter moved')
      assert.equal(sampleSum(second, 'saslgate_decision_duration_seconds_count'), 6)
      assert.equal(sampleSum(second, 'saslgate_kdc_breaker_state', { kdc: '127.0.0.1:88' }), 1)
      // /metrics is unauthenticated: nothing about the host or the process
      assert.doesNotMatch(scraped.body, /target_info|process_|host_name|otel_scope/)

      await new Promise((resolve) => setTimeout(resolve, 150))
      assert.equal(receiver.requests.length, 0, 'nothing exported when disabled')
    } finally {
      server.close()
      await t.shutdown()
      await receiver.close()
    }
    // after shutdown: a scrape fails cleanly and a new start works (nothing left registered)
    await assert.rejects(t.scrape())
    const again = await startTelemetry({
      serviceName: 'saslgate-shim',
      env: otelEnv({ OTEL_SDK_DISABLED: 'true', OTEL_SERVICE_NAME: 'from-env' }),
    })
    try {
      assert.equal(again.serviceName, 'from-env')
    } finally {
      await again.shutdown()
    }
  })

  test('a second start in one process is refused until shutdown', async () => {
    const env = otelEnv({ OTEL_SDK_DISABLED: 'true' })
    const t = await startTelemetry({ serviceName: 'saslgate-service', env })
    try {
      await assert.rejects(startTelemetry({ serviceName: 'saslgate-service', env }), (err) =>
        isSaslgateError(err, 'SASLGATE_ERR_CONFIG'),
      )
    } finally {
      await t.shutdown()
      await t.shutdown() // idempotent
    }
  })

  test('an unknown OTEL_METRICS_EXPORTER is refused, naming the variable', async () => {
    await assert.rejects(
      startTelemetry({
        serviceName: 'saslgate-service',
        env: otelEnv({ OTEL_METRICS_EXPORTER: 'carrier-pigeon', OTEL_TRACES_EXPORTER: 'none' }),
      }),
      (err) =>
        isSaslgateError(err, 'SASLGATE_ERR_CONFIG') && /OTEL_METRICS_EXPORTER/.test(err.message),
    )
    // the failed start left nothing behind
    const t = await startTelemetry({
      serviceName: 'saslgate-service',
      env: otelEnv({ OTEL_SDK_DISABLED: 'true' }),
    })
    await t.shutdown()
  })

  for (const protocol of ['http/json', 'http/protobuf'] as const) {
    test(`OTLP/HTTP (${protocol}): spans arrive with attributes and parent links`, async () => {
      const receiver = await OtlpReceiver.start()
      try {
        const env = otelEnv({
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
          OTEL_BSP_SCHEDULE_DELAY: '50',
          OTEL_METRIC_EXPORT_INTERVAL: '100',
          OTEL_LOGS_EXPORTER: 'none',
          TEST_PRINCIPAL: 'alice@EXAMPLE.ORG',
          ...(protocol === 'http/protobuf' ? { OTEL_SERVICE_NAME: 'saslgate-override' } : {}),
        })
        const run = await runChild(TRACE_CHILD, env)
        assert.equal(run.code, 0, run.stderr)
        assert.equal(run.stderr, '')
        const made = JSON.parse(run.stdout.trim()) as {
          enabled: boolean
          service: string
          root: { traceId: string; spanId: string }
          inner: { spanId: string }
          carrier: { traceparent?: string }
        }
        const service = protocol === 'http/protobuf' ? 'saslgate-override' : 'saslgate-shim'
        assert.equal(made.enabled, true)
        assert.equal(made.service, service)
        assert.match(made.carrier.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)

        // shutdown flushed, so everything is there by now; the wait only bounds slow machines
        const spans = await receiver.waitForSpans((s) => s.length >= 3, 5000)
        assert.deepEqual(receiver.errors, [])
        assert.equal(spans.length, 3)
        const byName = new Map(spans.map((s) => [s.name, s]))
        const root = byName.get('saslauthd.request')!
        const kdc = byName.get('kdc.exchange')!
        const rpc = byName.get('rpc.authenticate')!
        assert.equal(root.traceId, made.root.traceId)
        assert.equal(root.spanId, made.root.spanId)
        assert.equal(root.parentSpanId, undefined)
        assert.equal(root.kind, 2, 'SPAN_KIND_SERVER')
        assert.equal(root.service, service)
        assert.equal(root.scope, 'saslgate')
        assert.equal(root.attributes['saslgate.decision'], 'ok')
        assert.equal(root.attributes['saslgate.cache_hit'], true)
        assert.equal(root.attributes['saslgate.queue_wait_ms'], 1.5)
        assert.match(String(root.attributes['saslgate.principal']), /^h:[0-9a-f]{16}$/)
        assert.equal(kdc.parentSpanId, root.spanId)
        assert.equal(kdc.spanId, made.inner.spanId)
        assert.equal(kdc.attributes['saslgate.kdc'], '127.0.0.1:88')
        assert.equal(kdc.attributes['saslgate.attempt'], 2)
        assert.equal(rpc.traceId, root.traceId, 'continued from the W3C traceparent')
        assert.equal(rpc.parentSpanId, root.spanId)
        assert.equal(receiver.contains('alice@EXAMPLE.ORG'), false, 'principal only hashed')
        const contentType = protocol === 'http/json' ? 'application/json' : 'application/x-protobuf'
        assert.ok(receiver.requests.every((r) => r.status === 200 && r.contentType === contentType))

        const points = await receiver.waitForMetrics(
          (p) => p.some((x) => x.metric === METRICS.decisions.name),
          5000,
        )
        const decision = points.find((p) => p.metric === METRICS.decisions.name)!
        assert.equal(decision.service, service)
        assert.equal(decision.value, 1)
        assert.deepEqual(decision.attributes, {
          decision: 'ok',
          stage: 'upstream',
          reason: 'remote_ok',
        })
      } finally {
        await receiver.close()
      }
    })
  }

  test('OTEL_TRACES_EXPORTER=none and OTEL_METRICS_EXPORTER=none: nothing is sent', async () => {
    const receiver = await OtlpReceiver.start()
    try {
      const run = await runChild(
        TRACE_CHILD,
        otelEnv({
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_TRACES_EXPORTER: 'none',
          OTEL_METRICS_EXPORTER: 'none',
          OTEL_LOGS_EXPORTER: 'none',
          OTEL_BSP_SCHEDULE_DELAY: '50',
          OTEL_METRIC_EXPORT_INTERVAL: '100',
          TEST_PRINCIPAL: 'alice@EXAMPLE.ORG',
        }),
      )
      assert.equal(run.code, 0, run.stderr)
      assert.equal(JSON.parse(run.stdout.trim()).enabled, true)
      assert.equal(receiver.requests.length, 0)
    } finally {
      await receiver.close()
    }
  })

  test('no OTLP endpoint and no exporter named: every signal is none (no export to localhost:4318)', () => {
    const none = {
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'none',
    }
    assert.deepEqual(withExportDefaults({ PATH: '/bin' }), { PATH: '/bin', ...none })
    assert.deepEqual(withExportDefaults({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }), {
      OTEL_EXPORTER_OTLP_ENDPOINT: ' ',
      ...none,
    })
    // a general endpoint: the SDK's defaults (otlp) stay for every signal
    const all = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }
    assert.deepEqual(withExportDefaults(all), all)
    // a signal's own endpoint or exporter: only that signal exports
    assert.deepEqual(
      withExportDefaults({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }),
      {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces',
        OTEL_METRICS_EXPORTER: 'none',
        OTEL_LOGS_EXPORTER: 'none',
      },
    )
    assert.deepEqual(withExportDefaults({ OTEL_TRACES_EXPORTER: 'console' }), {
      ...none,
      OTEL_TRACES_EXPORTER: 'console',
    })
  })

  test('a process with no OTEL_* at all traces nothing (no-op tracer) and sends nothing', async () => {
    const run = await runChild(TRACE_CHILD, otelEnv({ TEST_PRINCIPAL: 'alice@EXAMPLE.ORG' }))
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stderr, '', 'no export attempt, so no export error')
    const made = JSON.parse(run.stdout.trim()) as {
      enabled: boolean
      root: { traceId: string; spanId: string; traceFlags: number }
    }
    assert.equal(made.enabled, true, 'the SDK is on (Prometheus /metrics works)')
    assert.equal(isSpanContextValid(made.root as never), false, 'spans are not recorded')
  })

  test('service name: OTEL_SERVICE_NAME, then service.name in OTEL_RESOURCE_ATTRIBUTES', () => {
    assert.equal(serviceNameFromEnv({}), undefined)
    assert.equal(serviceNameFromEnv({ OTEL_SERVICE_NAME: ' a ' }), 'a')
    assert.equal(
      serviceNameFromEnv({ OTEL_RESOURCE_ATTRIBUTES: 'x=1,service.name=my%20gate,y=2' }),
      'my gate',
    )
    assert.equal(
      serviceNameFromEnv({ OTEL_SERVICE_NAME: 'b', OTEL_RESOURCE_ATTRIBUTES: 'service.name=c' }),
      'b',
    )
  })
})

describe('createMetrics', () => {
  test('names follow the table and are unique', () => {
    const names = Object.values(METRICS).map((s) => s.name)
    assert.equal(new Set(names).size, names.length)
    for (const spec of Object.values(METRICS)) {
      assert.match(spec.name, /^saslgate_[a-z0-9_]+$/)
      assert.doesNotMatch(spec.name, /_total$/, 'the exporter appends _total')
      if (spec.kind === 'histogram') assert.match(spec.name, /_seconds$/)
      for (const label of spec.labels) {
        assert.doesNotMatch(label, /principal|login|user|password|client/)
      }
    }
  })

  test('free-form labels are capped; later values become "other"', async () => {
    const { metrics, scrape } = privateMeter()
    for (const kdc of ['a:88', 'b:88', 'c:88', 'd:88', 'e:88']) {
      metrics.recordKdcExchange({ kdc, protocol: 'tcp', outcome: 'timeout', durationMs: 400 })
    }
    const parsed = parsePrometheusText(await scrape())
    const kdcs = new Set(
      findSamples(parsed, 'saslgate_kdc_exchanges_total').map((s) => s.labels.kdc),
    )
    assert.deepEqual(kdcs, new Set(['a:88', 'b:88', 'c:88', OTHER_LABEL_VALUE]))
    assert.equal(sampleSum(parsed, 'saslgate_kdc_exchanges_total', { kdc: OTHER_LABEL_VALUE }), 2)
  })

  test('recordDecision derives shed, guard blocks and cache lookups from the stage', async () => {
    const { metrics, scrape } = privateMeter()
    metrics.recordDecision({
      decision: 'invalid',
      reason: 'cached_invalid',
      stage: 'cache',
      latencyMs: 1,
    })
    metrics.recordDecision({
      decision: 'invalid',
      reason: 'guard_budget',
      stage: 'guard',
      latencyMs: 1,
    })
    metrics.recordDecision({ decision: 'ok', reason: 'ok', stage: 'kerberos', latencyMs: 30 })
    metrics.recordDecision({
      decision: 'invalid',
      reason: 'malformed_request',
      stage: 'decode',
      latencyMs: 0,
    })
    metrics.recordDecision({ decision: 'ok', reason: 'remote_ok', stage: 'upstream', latencyMs: 1 })
    const p = parsePrometheusText(await scrape())
    const lookups = (cache: string, hit: string) =>
      sampleSum(p, 'saslgate_cache_lookups_total', { cache, hit })
    assert.equal(lookups('negative', 'true'), 1)
    assert.equal(lookups('negative', 'false'), 2)
    assert.equal(lookups('positive', 'false'), 3, 'decode and upstream did not look')
    assert.equal(lookups('positive', 'true'), 0)
    assert.equal(sampleSum(p, 'saslgate_guard_blocks_total', { reason: 'guard_budget' }), 1)
    assert.equal(sampleSum(p, 'saslgate_shed_requests_total'), 0)
    assert.equal(sampleSum(p, 'saslgate_decisions_total'), 5)
    const kerberos = findSamples(p, 'saslgate_decision_duration_seconds_bucket', {
      stage: 'kerberos',
      le: '0.05',
    })
    assert.equal(kerberos[0]?.value, 1)
  })

  test('gauge sources: replaced, removed, and a throwing one does not break the scrape', async () => {
    const { metrics, scrape } = privateMeter()
    const removeA = metrics.observe({ queueDepth: () => 1, kdcInFlight: () => 9 })
    metrics.observe({ queueDepth: () => 2 })
    let p = parsePrometheusText(await scrape())
    assert.equal(sampleSum(p, 'saslgate_queue_depth'), 2, 'the later source wins')
    assert.equal(sampleSum(p, 'saslgate_kdc_in_flight'), 9)
    removeA() // removes A's kdcInFlight only (queueDepth is no longer A's)
    metrics.observe({
      kdcInFlight: () => 4,
      breakerStates: () => {
        throw new Error('boom')
      },
    })
    p = parsePrometheusText(await scrape())
    assert.equal(sampleSum(p, 'saslgate_queue_depth'), 2)
    assert.equal(sampleSum(p, 'saslgate_kdc_in_flight'), 4)
    assert.equal(findSamples(p, 'saslgate_kdc_breaker_state').length, 0)
  })

  test('cache entries gauge: positive and negative from the source', async () => {
    const { metrics, scrape } = privateMeter()
    metrics.observe({ cacheEntries: () => ({ positive: 7, negative: 1234 }) })
    const p = parsePrometheusText(await scrape())
    assert.equal(sampleSum(p, 'saslgate_cache_entries', { cache: 'positive' }), 7)
    assert.equal(sampleSum(p, 'saslgate_cache_entries', { cache: 'negative' }), 1234)
  })
})

describe('principalLabel', () => {
  const key = Buffer.alloc(32, 1)
  test('plain, omit', () => {
    assert.equal(principalLabel('plain', key)('alice@EX'), 'alice@EX')
    assert.equal(principalLabel('omit', key)('alice@EX'), undefined)
  })

  test('hash: h: and 16 hex of HMAC-SHA256, stable per key, differs across keys', () => {
    const label = principalLabel('hash', key)
    const a = label('alice@EX')
    assert.match(a ?? '', /^h:[0-9a-f]{16}$/)
    assert.equal(label('alice@EX'), a)
    assert.notEqual(label('bob@EX'), a)
    assert.notEqual(principalLabel('hash', randomPrincipalKey())('alice@EX'), a)
    // known answer: HMAC-SHA256(key = 32 x 0x01, "alice@EX")
    const mac = createHmac('sha256', key).update('alice@EX', 'utf8').digest('hex')
    const expected = `h:${mac.slice(0, 16)}`
    assert.equal(a, expected)
  })

  test('hash copies the key and refuses a short one', () => {
    const mutable = Buffer.alloc(32, 2)
    const label = principalLabel('hash', mutable)
    const before = label('alice@EX')
    mutable.fill(0)
    assert.equal(label('alice@EX'), before)
    assert.throws(
      () => principalLabel('hash', Buffer.alloc(8)),
      (err) => isSaslgateError(err, 'SASLGATE_ERR_CONFIG'),
    )
    assert.throws(
      () => principalLabel('bogus' as 'plain', key),
      (err) => isSaslgateError(err, 'SASLGATE_ERR_CONFIG'),
    )
  })
})

describe('LogLimiter', () => {
  test('burst, then refused and counted; refill; the next allowed line reports the count', () => {
    let now = 0
    const limiter = new LogLimiter({ perSecond: 2, burst: 3, now: () => now })
    assert.deepEqual(
      [1, 2, 3, 4, 5].map(() => limiter.allow('shed')),
      [true, true, true, false, false],
    )
    assert.equal(limiter.allow('breaker'), true, 'keys are independent')
    assert.deepEqual(limiter.pending(), new Map([['shed', 2]]))
    now += 400 // 0.8 token
    assert.deepEqual(limiter.check('shed'), { allowed: false, suppressed: 0 })
    now += 100 // 1.0 token
    assert.deepEqual(limiter.check('shed'), { allowed: true, suppressed: 3 })
    assert.deepEqual(limiter.pending(), new Map())
    now += 60_000
    assert.deepEqual(
      [1, 2, 3, 4].map(() => limiter.allow('shed')),
      [true, true, true, false],
      'refill stops at burst',
    )
  })

  test('flush reports and resets what a storm left behind', () => {
    const limiter = new LogLimiter({ perSecond: 1, burst: 1, now: () => 0 })
    for (let i = 0; i < 10; i++) limiter.allow('kdc_timeout')
    assert.deepEqual(limiter.flush(), new Map([['kdc_timeout', 9]]))
    assert.deepEqual(limiter.flush(), new Map())
  })

  test('bounded keys: least recently used evicted, its count kept under (evicted)', () => {
    const limiter = new LogLimiter({ perSecond: 1, burst: 1, maxKeys: 3, now: () => 0 })
    for (const key of ['a', 'a', 'b', 'c']) limiter.allow(key)
    limiter.allow('b') // touch b: a is now the oldest
    limiter.allow('d') // evicts a (1 suppressed)
    assert.equal(limiter.size, 3)
    assert.deepEqual(
      limiter.flush(),
      new Map([
        ['b', 1],
        [EVICTED_KEY, 1],
      ]),
    )
    for (let i = 0; i < 10_000; i++) limiter.allow(`k${i}`)
    assert.equal(limiter.size, 3)
  })

  test('a total cap bounds many distinct keys together', () => {
    let now = 0
    const limiter = new LogLimiter({
      perSecond: 10,
      burst: 10,
      total: { perSecond: 1, burst: 5 },
      now: () => now,
    })
    const allowed = Array.from({ length: 50 }, (_, i) => limiter.allow(`kind${i % 25}`))
    assert.equal(allowed.filter(Boolean).length, 5)
    now += 1000
    assert.equal(limiter.allow('kind0'), true)
    assert.equal(limiter.allow('kind1'), false)
  })

  test('bad options are refused', () => {
    for (const o of [
      { perSecond: 0, burst: 1 },
      { perSecond: 1, burst: 0.5 },
      { perSecond: Number.NaN, burst: 1 },
      { perSecond: 1, burst: 1, maxKeys: 0 },
      { perSecond: 1, burst: 1, total: { perSecond: -1, burst: 1 } },
    ]) {
      assert.throws(
        () => new LogLimiter(o),
        (err) => isSaslgateError(err, 'SASLGATE_ERR_CONFIG'),
      )
    }
  })
})

describe('parsePrometheusText', () => {
  test('accepts the format: HELP/TYPE, escapes, comments, NaN/Inf, timestamps, histograms', () => {
    const text = [
      '# A comment',
      '# HELP http_requests_total The total\\nnumber of \\\\ requests.',
      '# TYPE http_requests_total counter',
      'http_requests_total{method="post",code="200"} 1027 1395066363000',
      'http_requests_total{ method = "post" , code="400", } 3',
      '',
      'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9',
      'metric_without_timestamp_and_labels 12.47',
      '# TYPE g gauge',
      'g{a="x"} -Inf',
      'g{a="y"} NaN',
      'g{a="z"} +Inf',
      '# HELP h A histogram.',
      '# UNIT h seconds',
      '# TYPE h histogram',
      'h_bucket{le="0.05"} 24054',
      'h_bucket{le="0.1"} 33444',
      'h_bucket{le="+Inf"} 144320',
      'h_sum 53423',
      'h_count 144320',
      '# TYPE s summary',
      's{quantile="0.5"} 4773',
      's_sum 1.7560473e+07',
      's_count 2693',
      '',
    ].join('\n')
    const p = parsePrometheusText(text)
    const counter = p.families.get('http_requests_total')!
    assert.equal(counter.type, 'counter')
    assert.equal(counter.help, 'The total\nnumber of \\ requests.')
    assert.equal(counter.samples[0]!.timestampMs, 1395066363000)
    assert.deepEqual(counter.samples[1]!.labels, { method: 'post', code: '400' })
    assert.equal(
      findSamples(p, 'msdos_file_access_time_seconds')[0]!.labels.error,
      'Cannot find file:\n"FILE.TXT"',
    )
    assert.ok(Number.isNaN(findSamples(p, 'g', { a: 'y' })[0]!.value))
    assert.equal(findSamples(p, 'g', { a: 'x' })[0]!.value, -Infinity)
    assert.equal(p.families.get('h')!.samples.length, 5)
    assert.equal(p.families.get('h')!.unit, 'seconds')
    assert.equal(p.families.get('s')!.samples.length, 3)
    assert.deepEqual(parsePrometheusText('').samples, [])
  })

  const bad: [string, string][] = [
    ['no final newline', 'a 1'],
    ['carriage return', 'a 1\r\n'],
    ['bad metric name', '1a 1\n'],
    ['no value', 'a\n'],
    ['bad value', 'a one\n'],
    ['trailing junk', 'a 1 2 3\n'],
    ['bad timestamp', 'a 1 1.5\n'],
    ['unterminated label value', 'a{b="c} 1\n'],
    ['bad label escape', 'a{b="\\t"} 1\n'],
    ['bad label name', 'a{0b="c"} 1\n'],
    ['missing quote', 'a{b=c} 1\n'],
    ['missing comma', 'a{b="c" d="e"} 1\n'],
    ['duplicate label', 'a{b="c",b="d"} 1\n'],
    ['duplicate series', 'a{b="c"} 1\na{b="c"} 2\n'],
    ['unknown type', '# TYPE a countr\na 1\n'],
    ['second TYPE', '# TYPE a counter\n# TYPE a counter\na 1\n'],
    ['second HELP', '# HELP a x\n# HELP a y\na 1\n'],
    ['TYPE after samples', 'a 1\n# TYPE a counter\n'],
    ['split family', '# TYPE a gauge\na{x="1"} 1\n# TYPE b gauge\nb 1\na{x="2"} 2\n'],
    ['bad HELP escape', '# HELP a bad \\t escape\na 1\n'],
    ['negative counter', '# TYPE a counter\na -1\n'],
    ['histogram bucket without le', '# TYPE h histogram\nh_bucket 1\nh_count 1\n'],
    ['histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n'],
    [
      'histogram buckets decrease',
      '# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="2"} 3\nh_bucket{le="+Inf"} 5\n',
    ],
    [
      'histogram count differs',
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_count 3\n',
    ],
    ['histogram with a plain sample', '# TYPE h histogram\nh 1\n'],
    ['summary without quantile', '# TYPE s summary\ns 1\n'],
  ]
  for (const [what, text] of bad) {
    test(`rejects: ${what}`, () => {
      assert.throws(() => parsePrometheusText(text), PrometheusParseError)
    })
  }
})

describe('OtlpReceiver', () => {
  test('refuses other paths, methods, content types and bad bodies; takes gzip JSON', async () => {
    const receiver = await OtlpReceiver.start()
    const send = (
      path: string,
      body: Buffer | string,
      headers: Record<string, string>,
      method = 'POST',
    ) =>
      new Promise<number>((resolve, reject) => {
        request({ host: '127.0.0.1', port: receiver.port, path, method, headers }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        })
          .on('error', reject)
          .end(body)
      })
    try {
      const json = { 'content-type': 'application/json' }
      assert.equal(await send('/v1/nope', '{}', json), 404)
      assert.equal(await send('/v1/traces', '', json, 'GET'), 405)
      assert.equal(await send('/v1/traces', 'x', { 'content-type': 'text/plain' }), 415)
      assert.equal(await send('/v1/traces', '{', json), 400)
      assert.equal(
        await send('/v1/traces', Buffer.from([0x0a, 0x05, 0x01]), {
          'content-type': 'application/x-protobuf',
        }),
        400,
        'truncated protobuf',
      )
      assert.equal(receiver.errors.length, 2)
      const doc = {
        resourceSpans: [
          {
            resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] },
            scopeSpans: [
              {
                scope: { name: 'saslgate' },
                spans: [
                  {
                    traceId: '0af7651916cd43dd8448eb211c80319c',
                    spanId: 'b7ad6b7169203331',
                    parentSpanId: '',
                    name: 'n',
                    kind: 2,
                    attributes: [{ key: 'n', value: { intValue: '42' } }],
                  },
                ],
              },
            ],
          },
        ],
      }
      assert.equal(
        await send('/v1/traces', gzipSync(JSON.stringify(doc)), {
          ...json,
          'content-encoding': 'gzip',
        }),
        200,
      )
      assert.deepEqual(
        receiver.spans.map((s) => [s.traceId, s.parentSpanId, s.service, s.attributes.n]),
        [['0af7651916cd43dd8448eb211c80319c', undefined, 'svc', 42]],
      )
      assert.equal(receiver.contains('b7ad6b7169203331'), true, 'searches decompressed bodies')
      await assert.rejects(
        receiver.waitForSpans((s) => s.length > 5, 50),
        /timed out/,
      )
    } finally {
      await receiver.close()
    }
  })

  test('protobuf wire reader', () => {
    // field 1 varint 150, field 2 bytes "hi", field 3 fixed32, field 4 fixed64
    const buf = Buffer.from([
      0x08, 0x96, 0x01, 0x12, 0x02, 0x68, 0x69, 0x1d, 1, 0, 0, 0, 0x21, 2, 0, 0, 0, 0, 0, 0, 0,
    ])
    const fields = decodeProtobuf(buf)
    assert.deepEqual(
      fields.map((f) => [f.no, f.wire]),
      [
        [1, 0],
        [2, 2],
        [3, 5],
        [4, 1],
      ],
    )
    assert.equal(fields[0]!.wire === 0 && fields[0]!.int, 150n)
    assert.throws(() => decodeProtobuf(Buffer.from([0x08, 0x96])), /truncated/)
    assert.throws(() => decodeProtobuf(Buffer.from([0x0b])), /wire type/)
  })
})
