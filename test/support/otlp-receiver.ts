/**
 * A real OTLP/HTTP receiver for tests, on 127.0.0.1 and a kernel-chosen port.
 *
 * Accepts `POST /v1/traces`, `/v1/metrics` and `/v1/logs` in `application/json` and in
 * `application/x-protobuf` (decoded by the small protobuf wire reader below: no generated
 * code, no extra dependency), optionally gzip-compressed. Anything else gets 404/405/415.
 * Keeps every body (as received and decompressed, for secret scans), the spans (trace and
 * span ids as lowercase hex, attributes, service name) and the metric points it could parse.
 * Logs are kept as bodies only.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'

export type AttrValue = string | number | boolean | AttrValue[] | { [key: string]: AttrValue }
export type Attributes = Record<string, AttrValue>

export interface ReceivedSpan {
  traceId: string
  spanId: string
  /** Undefined for a root span. */
  parentSpanId: string | undefined
  name: string
  kind: number
  attributes: Attributes
  /** `service.name` of the resource. */
  service: string | undefined
  scope: string | undefined
  status: { code: number; message: string }
  events: { name: string; attributes: Attributes }[]
}

export interface ReceivedMetricPoint {
  metric: string
  service: string | undefined
  kind: 'sum' | 'gauge' | 'histogram' | 'other'
  attributes: Attributes
  /** The value of a sum or gauge point; the count of a histogram point. */
  value: number
  /** The sum of a histogram point. */
  sum?: number
}

export interface ReceivedRequest {
  path: string
  contentType: string
  contentEncoding: string
  /** The bytes as they came over the wire. */
  raw: Buffer
  /** Decompressed. */
  body: Buffer
  status: number
}

export interface OtlpReceiverOptions {
  host?: string
  /** Largest accepted body (bytes, before and after decompression); default 32 MiB. */
  maxBodyBytes?: number
}

const PATHS = new Set(['/v1/traces', '/v1/metrics', '/v1/logs'])

export class OtlpReceiver {
  readonly requests: ReceivedRequest[] = []
  readonly spans: ReceivedSpan[] = []
  readonly metricPoints: ReceivedMetricPoint[] = []
  /** Bodies that could not be decoded (a test usually asserts this stays empty). */
  readonly errors: string[] = []
  readonly #server: Server
  readonly #maxBody: number
  readonly #waiters = new Set<() => void>()
  #port = 0
  #host = '127.0.0.1'
  #closed = false

  private constructor(options: OtlpReceiverOptions) {
    this.#maxBody = options.maxBodyBytes ?? 32 * 1024 * 1024
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err) => {
        this.errors.push(`handler: ${String(err)}`)
        if (!res.headersSent) res.writeHead(500)
        res.end()
      })
    })
  }

  /** Starts a receiver on `host` (default 127.0.0.1) and a free port. */
  static async start(options: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
    const receiver = new OtlpReceiver(options)
    receiver.#host = options.host ?? '127.0.0.1'
    receiver.#server.listen({ host: receiver.#host, port: 0 })
    await once(receiver.#server, 'listening')
    receiver.#port = (receiver.#server.address() as AddressInfo).port
    return receiver
  }

  get port(): number {
    return this.#port
  }

  /** For `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporters append `/v1/traces` and `/v1/metrics`). */
  get url(): string {
    const host = this.#host.includes(':') ? `[${this.#host}]` : this.#host
    return `http://${host}:${this.#port}`
  }

  /** Every decompressed body received so far, for secret scans. */
  allBodies(): Buffer {
    return Buffer.concat(this.requests.map((r) => r.body))
  }

  /**
   * True when `secret` occurs in any body, as UTF-8 bytes or in its JSON-escaped form (so a
   * secret with quotes or backslashes is found in a JSON body as well).
   */
  contains(secret: string): boolean {
    const forms = new Set([secret, JSON.stringify(secret).slice(1, -1)])
    return this.requests.some((r) =>
      [...forms].some((f) => r.body.includes(Buffer.from(f, 'utf8')) || r.raw.includes(f)),
    )
  }

  /** Resolves with the spans once `done(spans)` holds; rejects after `timeoutMs`. */
  waitForSpans(
    done: (spans: readonly ReceivedSpan[]) => boolean,
    timeoutMs = 5000,
  ): Promise<ReceivedSpan[]> {
    return this.#waitFor(
      () => done(this.spans),
      () => [...this.spans],
      timeoutMs,
      'spans',
    )
  }

  /** Resolves with the metric points once `done(points)` holds; rejects after `timeoutMs`. */
  waitForMetrics(
    done: (points: readonly ReceivedMetricPoint[]) => boolean,
    timeoutMs = 5000,
  ): Promise<ReceivedMetricPoint[]> {
    return this.#waitFor(
      () => done(this.metricPoints),
      () => [...this.metricPoints],
      timeoutMs,
      'metrics',
    )
  }

  /** Stops listening and drops open connections. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const wake of this.#waiters) wake()
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    this.#server.closeAllConnections()
    await closed
  }

  #waitFor<T>(ready: () => boolean, value: () => T, timeoutMs: number, what: string): Promise<T> {
    if (ready()) return Promise.resolve(value())
    return new Promise<T>((resolve, reject) => {
      const finish = (err?: Error) => {
        clearTimeout(timer)
        this.#waiters.delete(check)
        if (err) reject(err)
        else resolve(value())
      }
      const check = () => {
        if (ready()) finish()
        else if (this.#closed) finish(new Error(`OTLP receiver closed while waiting for ${what}`))
      }
      const timer = setTimeout(
        () =>
          finish(new Error(`OTLP receiver: timed out after ${timeoutMs} ms waiting for ${what}`)),
        timeoutMs,
      )
      this.#waiters.add(check)
    })
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://receiver').pathname
    const raw = await readBody(req, this.#maxBody)
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    const contentEncoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase()
    if (raw === undefined) {
      const empty = Buffer.alloc(0)
      this.requests.push({
        path,
        contentType,
        contentEncoding,
        raw: empty,
        body: empty,
        status: 413,
      })
      res.writeHead(413).end()
      return
    }
    const record = (status: number, body: Buffer = raw) => {
      this.requests.push({ path, contentType, contentEncoding, raw, body, status })
    }
    if (!PATHS.has(path)) {
      record(404)
      res.writeHead(404).end()
      return
    }
    if (req.method !== 'POST') {
      record(405)
      res.writeHead(405, { allow: 'POST' }).end()
      return
    }
    const json = contentType === 'application/json'
    if (!json && contentType !== 'application/x-protobuf') {
      record(415)
      res.writeHead(415).end()
      return
    }
    let body: Buffer
    if (contentEncoding === 'gzip') {
      try {
        body = gunzipSync(raw, { maxOutputLength: this.#maxBody })
      } catch (err) {
        record(400)
        this.errors.push(`${path}: gzip: ${String(err)}`)
        res.writeHead(400).end()
        return
      }
    } else if (contentEncoding === 'identity' || contentEncoding === 'none') {
      body = raw
    } else {
      record(415)
      res.writeHead(415).end()
      return
    }
    try {
      if (path === '/v1/traces') {
        this.spans.push(...(json ? spansFromJson(body) : spansFromProtobuf(body)))
      } else if (path === '/v1/metrics') {
        this.metricPoints.push(...(json ? metricsFromJson(body) : metricsFromProtobuf(body)))
      }
    } catch (err) {
      record(400, body)
      this.errors.push(`${path}: ${String(err)}`)
      res.writeHead(400).end()
      return
    }
    record(200, body)
    if (json) res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
    for (const wake of [...this.#waiters]) wake()
  }
}

/** The body, or undefined when it is larger than `max` (the rest is drained). */
async function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size <= max) chunks.push(chunk)
  }
  return size > max ? undefined : Buffer.concat(chunks)
}

// ---------------------------------------------------------------------------------------
// OTLP JSON (ids are hex strings; 64-bit integers may be strings)

type Json = Record<string, unknown>
const asArray = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : [])
const asObject = (v: unknown): Json => (v !== null && typeof v === 'object' ? (v as Json) : {})

function jsonId(v: unknown): string {
  if (typeof v !== 'string' || v === '') return ''
  if (/^[0-9a-fA-F]+$/.test(v) && (v.length === 16 || v.length === 32)) return v.toLowerCase()
  return Buffer.from(v, 'base64').toString('hex') // some encoders use base64
}

function jsonNumber(v: unknown): number {
  if (typeof v === 'number') return v
  if (typeof v === 'string' && v !== '') return Number(v)
  return 0
}

function jsonAnyValue(v: unknown): AttrValue {
  const o = asObject(v)
  if ('stringValue' in o) return String(o.stringValue)
  if ('boolValue' in o) return Boolean(o.boolValue)
  if ('intValue' in o) return safeInt(BigInt(String(o.intValue)))
  if ('doubleValue' in o) return jsonNumber(o.doubleValue)
  if ('arrayValue' in o) return asArray(asObject(o.arrayValue).values).map(jsonAnyValue)
  if ('kvlistValue' in o) return jsonAttributes(asObject(o.kvlistValue).values)
  if ('bytesValue' in o) return String(o.bytesValue)
  return ''
}

function jsonAttributes(v: unknown): Attributes {
  const out: Attributes = {}
  for (const kv of asArray(v)) out[String(kv.key)] = jsonAnyValue(kv.value)
  return out
}

function serviceOf(attributes: Attributes): string | undefined {
  const name = attributes['service.name']
  return typeof name === 'string' ? name : undefined
}

function spansFromJson(body: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = []
  const doc = asObject(JSON.parse(body.toString('utf8')))
  for (const rs of asArray(doc.resourceSpans)) {
    const service = serviceOf(jsonAttributes(asObject(rs.resource).attributes))
    for (const ss of asArray(rs.scopeSpans)) {
      const scope = asObject(ss.scope).name
      for (const s of asArray(ss.spans)) {
        const parent = jsonId(s.parentSpanId)
        const status = asObject(s.status)
        out.push({
          traceId: jsonId(s.traceId),
          spanId: jsonId(s.spanId),
          parentSpanId: parent === '' ? undefined : parent,
          name: String(s.name ?? ''),
          kind: jsonNumber(s.kind),
          attributes: jsonAttributes(s.attributes),
          service,
          scope: typeof scope === 'string' ? scope : undefined,
          status: { code: jsonNumber(status.code), message: String(status.message ?? '') },
          events: asArray(s.events).map((e) => ({
            name: String(e.name ?? ''),
            attributes: jsonAttributes(e.attributes),
          })),
        })
      }
    }
  }
  return out
}

function metricsFromJson(body: Buffer): ReceivedMetricPoint[] {
  const out: ReceivedMetricPoint[] = []
  const doc = asObject(JSON.parse(body.toString('utf8')))
  for (const rm of asArray(doc.resourceMetrics)) {
    const service = serviceOf(jsonAttributes(asObject(rm.resource).attributes))
    for (const sm of asArray(rm.scopeMetrics)) {
      for (const m of asArray(sm.metrics)) {
        const metric = String(m.name ?? '')
        for (const kind of ['sum', 'gauge'] as const) {
          if (!(kind in m)) continue
          for (const p of asArray(asObject(m[kind]).dataPoints)) {
            const value = 'asDouble' in p ? jsonNumber(p.asDouble) : jsonNumber(p.asInt)
            out.push({ metric, service, kind, attributes: jsonAttributes(p.attributes), value })
          }
        }
        if ('histogram' in m) {
          for (const p of asArray(asObject(m.histogram).dataPoints)) {
            out.push({
              metric,
              service,
              kind: 'histogram',
              attributes: jsonAttributes(p.attributes),
              value: jsonNumber(p.count),
              sum: jsonNumber(p.sum),
            })
          }
        }
      }
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------
// OTLP protobuf: a minimal wire-format reader (varint, fixed64, length-delimited, fixed32)

type Field =
  | { no: number; wire: 0; int: bigint }
  | { no: number; wire: 1; bytes: Buffer }
  | { no: number; wire: 2; bytes: Buffer }
  | { no: number; wire: 5; bytes: Buffer }

/** The fields of one message, in order. Throws on malformed input. */
export function decodeProtobuf(buf: Buffer): Field[] {
  const fields: Field[] = []
  let pos = 0
  const varint = (): bigint => {
    let result = 0n
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = buf[pos++]
      if (b === undefined) throw new Error('protobuf: truncated varint')
      result |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return result
    }
    throw new Error('protobuf: varint too long')
  }
  const take = (n: number): Buffer => {
    if (n < 0 || pos + n > buf.length) throw new Error('protobuf: truncated field')
    const out = buf.subarray(pos, pos + n)
    pos += n
    return out
  }
  while (pos < buf.length) {
    const tag = varint()
    const no = Number(tag >> 3n)
    const wire = Number(tag & 7n)
    if (no === 0) throw new Error('protobuf: field number 0')
    if (wire === 0) fields.push({ no, wire, int: varint() })
    else if (wire === 1) fields.push({ no, wire, bytes: take(8) })
    else if (wire === 2) fields.push({ no, wire, bytes: take(Number(varint())) })
    else if (wire === 5) fields.push({ no, wire, bytes: take(4) })
    else throw new Error(`protobuf: unsupported wire type ${wire}`)
  }
  return fields
}

const sub = (fields: Field[], no: number): Buffer[] =>
  fields.filter((f) => f.no === no && f.wire === 2).map((f) => (f as { bytes: Buffer }).bytes)
const first = (fields: Field[], no: number): Field | undefined =>
  fields.findLast((f) => f.no === no)
const str = (fields: Field[], no: number): string => {
  const f = first(fields, no)
  return f !== undefined && f.wire === 2 ? f.bytes.toString('utf8') : ''
}
const hex = (fields: Field[], no: number): string => {
  const f = first(fields, no)
  return f !== undefined && f.wire === 2 ? f.bytes.toString('hex') : ''
}
const uint = (fields: Field[], no: number): number => {
  const f = first(fields, no)
  if (f === undefined) return 0
  if (f.wire === 0) return Number(f.int)
  if (f.wire === 1) return Number(f.bytes.readBigUInt64LE())
  if (f.wire === 5) return f.bytes.readUInt32LE()
  return 0
}
const double = (fields: Field[], no: number): number | undefined => {
  const f = first(fields, no)
  return f !== undefined && f.wire === 1 ? f.bytes.readDoubleLE() : undefined
}

function safeInt(v: bigint): number | string {
  const n = BigInt.asIntN(64, v)
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(n)
    : n.toString()
}

function pbAnyValue(buf: Buffer): AttrValue {
  const f = decodeProtobuf(buf)
  const v = f[f.length - 1]
  if (v === undefined) return ''
  switch (v.no) {
    case 1:
      return v.wire === 2 ? v.bytes.toString('utf8') : ''
    case 2:
      return v.wire === 0 && v.int !== 0n
    case 3:
      return v.wire === 0 ? safeInt(v.int) : 0
    case 4:
      return v.wire === 1 ? v.bytes.readDoubleLE() : 0
    case 5:
      return v.wire === 2 ? sub(decodeProtobuf(v.bytes), 1).map(pbAnyValue) : []
    case 6:
      return v.wire === 2 ? pbAttributes(sub(decodeProtobuf(v.bytes), 1)) : {}
    case 7:
      return v.wire === 2 ? v.bytes.toString('base64') : ''
    default:
      return ''
  }
}

function pbAttributes(keyValues: Buffer[]): Attributes {
  const out: Attributes = {}
  for (const kv of keyValues) {
    const f = decodeProtobuf(kv)
    const value = sub(f, 2)[0]
    out[str(f, 1)] = value === undefined ? '' : pbAnyValue(value)
  }
  return out
}

function pbService(resourceMessage: Buffer | undefined): string | undefined {
  if (resourceMessage === undefined) return undefined
  return serviceOf(pbAttributes(sub(decodeProtobuf(resourceMessage), 1)))
}

function spansFromProtobuf(body: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = []
  for (const rs of sub(decodeProtobuf(body), 1)) {
    const rsf = decodeProtobuf(rs)
    const service = pbService(sub(rsf, 1)[0])
    for (const ss of sub(rsf, 2)) {
      const ssf = decodeProtobuf(ss)
      const scopeMsg = sub(ssf, 1)[0]
      const scope = scopeMsg === undefined ? undefined : str(decodeProtobuf(scopeMsg), 1)
      for (const span of sub(ssf, 2)) {
        const f = decodeProtobuf(span)
        const statusMsg = sub(f, 15)[0]
        const status = statusMsg === undefined ? [] : decodeProtobuf(statusMsg)
        const parent = hex(f, 4)
        out.push({
          traceId: hex(f, 1),
          spanId: hex(f, 2),
          parentSpanId: parent === '' ? undefined : parent,
          name: str(f, 5),
          kind: uint(f, 6),
          attributes: pbAttributes(sub(f, 9)),
          service,
          scope,
          status: { code: uint(status, 3), message: str(status, 2) },
          events: sub(f, 11).map((e) => {
            const ef = decodeProtobuf(e)
            return { name: str(ef, 2), attributes: pbAttributes(sub(ef, 3)) }
          }),
        })
      }
    }
  }
  return out
}

function metricsFromProtobuf(body: Buffer): ReceivedMetricPoint[] {
  const out: ReceivedMetricPoint[] = []
  for (const rm of sub(decodeProtobuf(body), 1)) {
    const rmf = decodeProtobuf(rm)
    const service = pbService(sub(rmf, 1)[0])
    for (const sm of sub(rmf, 2)) {
      for (const m of sub(decodeProtobuf(sm), 2)) {
        const mf = decodeProtobuf(m)
        const metric = str(mf, 1)
        // Metric.data: gauge = 5, sum = 7, histogram = 9 (others are kept as bodies only).
        for (const [no, kind] of [
          [5, 'gauge'],
          [7, 'sum'],
        ] as const) {
          for (const data of sub(mf, no)) {
            for (const p of sub(decodeProtobuf(data), 1)) {
              const pf = decodeProtobuf(p)
              const asInt = first(pf, 6)
              const value =
                double(pf, 4) ??
                (asInt !== undefined && asInt.wire === 1 ? Number(asInt.bytes.readBigInt64LE()) : 0)
              out.push({ metric, service, kind, attributes: pbAttributes(sub(pf, 7)), value })
            }
          }
        }
        for (const data of sub(mf, 9)) {
          for (const p of sub(decodeProtobuf(data), 1)) {
            const pf = decodeProtobuf(p)
            const point: ReceivedMetricPoint = {
              metric,
              service,
              kind: 'histogram',
              attributes: pbAttributes(sub(pf, 9)),
              value: uint(pf, 4),
            }
            const sum = double(pf, 5)
            if (sum !== undefined) point.sum = sum
            out.push(point)
          }
        }
      }
    }
  }
  return out
}
