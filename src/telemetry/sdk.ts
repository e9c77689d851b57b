/**
 * OpenTelemetry for one saslgate process, configured only by the standard `OTEL_*`
 * environment variables, started before the app is imported (`bin/saslgate.js` ->
 * `src/cli.ts`), ESM-safe (no auto-instrumentation, so no import hooks are needed).
 *
 * - **No OTLP export unless an endpoint is configured** (`OTEL_EXPORTER_OTLP_ENDPOINT` or the
 *   signal's `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`) or the signal's exporter is
 *   named (`OTEL_TRACES_EXPORTER=otlp`...). The OpenTelemetry default would send to
 *   localhost:4318, a port any local user can bind, and tracing costs 18-25% of throughput.
 * - Traces: `NodeSDK` as the variables say (`OTEL_TRACES_EXPORTER`,
 *   `OTEL_EXPORTER_OTLP_*`, `OTEL_BSP_*`, sampler, `OTEL_PROPAGATORS`: W3C trace context and
 *   baggage by default). No auto-instrumentations: saslgate makes its own spans (HTTP
 *   auto-instrumentation would cost throughput on the cached path).
 * - Metrics: one `MeterProvider` of our own with a Prometheus reader that is always there
 *   (served by the app's `/metrics` through `metricsHandler`, never on a port of its own), plus
 *   the readers `OTEL_METRICS_EXPORTER` asks for (`otlp` by default, `console`, `none`;
 *   `prometheus` is the always-present reader).
 * - `OTEL_SDK_DISABLED=true`: no tracing, no OTLP export, and the Prometheus reader still
 *   works.
 * - Service name: `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`,
 *   else `serviceName`.
 *
 * The Prometheus text has no `target_info` and no scope labels: `/metrics` is unauthenticated
 * and must not describe the host or the process (command line, user) to anyone who asks.
 */
import { context, type Meter, metrics, propagation, type Tracer, trace } from '@opentelemetry/api'
import { getStringListFromEnv } from '@opentelemetry/core'
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus'
import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  processDetector,
  type Resource,
  resourceFromAttributes,
} from '@opentelemetry/resources'
import {
  ConsoleMetricExporter,
  type IMetricReader,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics'
import { NodeSDK } from '@opentelemetry/sdk-node'
// NodeSDK's own env readers, so OTLP metric export follows exactly the rules NodeSDK uses
// (protocol, endpoint, interval). sdk-node has no "exports" map, and `^0.223.0` pins 0.223.x.
import {
  getOtlpMetricExporterFromEnv,
  getPeriodicExportingMetricReaderFromEnv,
} from '@opentelemetry/sdk-node/build/src/utils.js'
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions'
import { SaslgateError } from '../errors.js'

/** The instrumentation scope of every saslgate span and metric. */
export const INSTRUMENTATION_SCOPE = 'saslgate'

/** Content type of the Prometheus text exposition format 0.0.4. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export interface TelemetryOptions {
  /** The default service name: `saslgate-service` or `saslgate-shim`. */
  serviceName: 'saslgate-service' | 'saslgate-shim' | (string & {})
  /** Where to read `OTEL_*` from (tests); default `process.env`. */
  env?: NodeJS.ProcessEnv
}

/** The response side `metricsHandler` needs (node:http or node:http2 compat response). */
export interface MetricsResponse {
  statusCode: number
  setHeader(name: string, value: string): unknown
  end(body?: string): unknown
}

export interface Telemetry {
  /** False when `OTEL_SDK_DISABLED=true`: no tracing and no OTLP export (Prometheus still on). */
  readonly enabled: boolean
  readonly serviceName: string
  /** The always-present Prometheus reader (no HTTP server of its own). */
  readonly prometheus: PrometheusExporter
  readonly meterProvider: MeterProvider
  /** Meter of the `saslgate` scope on `meterProvider`: pass it to `createMetrics`. */
  readonly meter: Meter
  /** Tracer of the `saslgate` scope (a no-op tracer when disabled or `OTEL_TRACES_EXPORTER=none`). */
  readonly tracer: Tracer
  /** The current metrics in Prometheus text format. */
  scrape(): Promise<string>
  /** Answers a scrape: `200` and Prometheus text, or `503` (with no detail) if collection failed. */
  metricsHandler(req: unknown, res: MetricsResponse): void
  /**
   * Flushes and stops the exporters (bounded by their export timeouts), then unregisters the
   * global providers. Never rejects (export failures are dropped). Idempotent.
   */
  shutdown(): Promise<void>
}

const SIGNALS = [
  ['OTEL_TRACES_EXPORTER', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'],
  ['OTEL_METRICS_EXPORTER', 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT'],
  ['OTEL_LOGS_EXPORTER', 'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT'],
] as const

/**
 * `env` with `OTEL_<SIGNAL>_EXPORTER=none` for every signal that names no exporter and has no
 * OTLP endpoint (general or its own): the SDK's default would export to localhost:4318.
 */
export function withExportDefaults(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env }
  const set = (name: string) => (env[name] ?? '').trim() !== ''
  for (const [exporter, endpoint] of SIGNALS) {
    if (!set(exporter) && !set('OTEL_EXPORTER_OTLP_ENDPOINT') && !set(endpoint))
      out[exporter] = 'none'
  }
  return out
}

/** Only one telemetry per process: NodeSDK registers process-wide (global) providers. */
let active = false

/**
 * Starts telemetry for this process. Call it once, before the app is imported, and call
 * `shutdown()` at exit (it exports what is buffered).
 */
export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  if (active) {
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      'telemetry is already started in this process (shut it down first)',
    )
  }
  active = true
  // Always a copy, so withOtelEnv puts the defaults into process.env while the SDK is built.
  const env = withExportDefaults(options.env ?? process.env)
  const enabled = !isTrue(env.OTEL_SDK_DISABLED)
  const envServiceName = serviceNameFromEnv(env)
  const serviceName = envServiceName ?? options.serviceName

  let sdk: NodeSDK | undefined
  let meterProvider: MeterProvider
  let prometheus: PrometheusExporter
  try {
    ;({ sdk, meterProvider, prometheus } = withOtelEnv(env, () => {
      const prometheus = new PrometheusExporter({
        preventServerStart: true,
        withoutScopeInfo: true,
        withoutTargetInfo: true,
      })
      const readers: IMetricReader[] = [prometheus]
      if (enabled) readers.push(...metricReadersFromEnv())
      const meterProvider = new MeterProvider({
        resource: metricResource(enabled, serviceName),
        readers,
      })
      let sdk: NodeSDK | undefined
      if (enabled) {
        sdk = new NodeSDK({
          // Unset: the env detector's OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win.
          ...(envServiceName === undefined ? { serviceName } : {}),
          instrumentations: [],
          // Metrics are ours (above): an empty list keeps NodeSDK from making a second provider.
          metricReaders: [],
        })
        sdk.start()
      }
      return { sdk, meterProvider, prometheus }
    }))
  } catch (err) {
    active = false
    throw err
  }
  const ownsGlobalMeter = metrics.setGlobalMeterProvider(meterProvider)
  const serializer = new PrometheusSerializer('', false, undefined, true, true)

  const scrape = async (): Promise<string> => {
    const { resourceMetrics } = await prometheus.collect()
    const text = serializer.serialize(resourceMetrics)
    return text.endsWith('\n') ? text : `${text}\n`
  }

  let stopping: Promise<void> | undefined
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      // A collector that is down at exit must not turn a clean exit into a crash: export
      // failures are dropped here (OTEL_LOG_LEVEL shows them through the OTel diag logger).
      await Promise.allSettled([meterProvider.shutdown(), sdk?.shutdown()])
      if (ownsGlobalMeter) metrics.disable()
      if (sdk !== undefined) {
        trace.disable()
        propagation.disable()
        context.disable()
      }
      active = false
    })()
    return stopping
  }

  return {
    enabled,
    serviceName,
    prometheus,
    meterProvider,
    meter: meterProvider.getMeter(INSTRUMENTATION_SCOPE),
    tracer: trace.getTracer(INSTRUMENTATION_SCOPE),
    scrape,
    metricsHandler(_req, res) {
      scrape().then(
        (text) => {
          res.statusCode = 200
          res.setHeader('content-type', PROMETHEUS_CONTENT_TYPE)
          res.end(text)
        },
        () => {
          res.statusCode = 503
          res.setHeader('content-type', 'text/plain; charset=utf-8')
          res.end('metrics unavailable\n')
        },
      )
    },
    shutdown,
  }
}

/** The readers `OTEL_METRICS_EXPORTER` asks for, besides the always-present Prometheus one. */
function metricReadersFromEnv(): IMetricReader[] {
  const names = [...new Set(getStringListFromEnv('OTEL_METRICS_EXPORTER') ?? [])]
  if (names.length === 0) names.push('otlp')
  if (names.includes('none')) return []
  const readers: IMetricReader[] = []
  for (const name of names) {
    if (name === 'otlp') {
      readers.push(getPeriodicExportingMetricReaderFromEnv(getOtlpMetricExporterFromEnv()))
    } else if (name === 'console') {
      readers.push(new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter() }))
    } else if (name !== 'prometheus') {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        `OTEL_METRICS_EXPORTER: "${name}" is not one of otlp, console, prometheus, none`,
      )
    }
  }
  return readers
}

function metricResource(enabled: boolean, serviceName: string): Resource {
  const base = enabled
    ? defaultResource().merge(
        detectResources({ detectors: [envDetector, hostDetector, processDetector] }),
      )
    : defaultResource()
  return base.merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }))
}

/** `OTEL_SERVICE_NAME`, else `service.name` from `OTEL_RESOURCE_ATTRIBUTES`. */
export function serviceNameFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const direct = env.OTEL_SERVICE_NAME?.trim()
  if (direct) return direct
  for (const pair of (env.OTEL_RESOURCE_ATTRIBUTES ?? '').split(',')) {
    const eq = pair.indexOf('=')
    if (eq < 0 || pair.slice(0, eq).trim() !== ATTR_SERVICE_NAME) continue
    let value = pair.slice(eq + 1).trim()
    try {
      value = decodeURIComponent(value)
    } catch {
      // not percent-encoded after all: keep it as written
    }
    if (value !== '') return value
  }
  return undefined
}

function isTrue(value: string | undefined): boolean {
  return value?.trim().toLowerCase() === 'true'
}

/**
 * Runs `fn` with the `OTEL_*` variables of `env` in `process.env` (the OpenTelemetry SDK
 * reads only `process.env`, synchronously, while its parts are built), then restores them.
 */
function withOtelEnv<T>(env: NodeJS.ProcessEnv, fn: () => T): T {
  if (env === process.env) return fn()
  const keys = new Set(
    [...Object.keys(process.env), ...Object.keys(env)].filter((k) => k.startsWith('OTEL_')),
  )
  const saved = new Map<string, string | undefined>()
  for (const key of keys) {
    saved.set(key, process.env[key])
    const value = env[key]
    if (value === undefined) delete process.env[key]
    else process.env[key] = value
  }
  try {
    return fn()
  } finally {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  }
}
