/**
 * The service replicas a shim talks to. Each configured URL becomes one endpoint per
 * address its host name resolves to (re-resolved every `resolveIntervalMs`, so pods that
 * come and go are followed). Endpoints that fail are ejected for `ejectMs`. Picking is
 * "power of two choices" on requests in flight, so a slow replica gets less traffic.
 */
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { SaslgateError } from '../errors.js'

export interface Endpoint {
  /** `https://10.0.0.5:8443` */
  readonly baseUrl: string
  /** The host name of the configured URL: TLS server name and certificate check. */
  readonly servername: string | undefined
  /** The configured URL this endpoint came from. */
  readonly source: string
  inFlight: number
  ejectedUntil: number
  failures: number
}

export interface UpstreamOptions {
  urls: readonly string[]
  ejectMs: number
  resolveIntervalMs: number
  /** For tests: a resolver returning addresses of a host name. */
  resolve?: (host: string) => Promise<string[]>
  onChange?: (endpoints: readonly Endpoint[]) => void
  onError?: (err: unknown) => void
}

interface ParsedUrl {
  source: string
  protocol: 'http:' | 'https:'
  host: string
  port: string
  path: string
}

export function parseUpstream(option: string, url: string): ParsedUrl {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option ${option}: "${url}" is not a URL (e.g. https://saslgate.example.org:8443)`,
    )
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option ${option}: "${url}" must be http:// or https://`,
    )
  if (u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '')
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option ${option}: "${u.origin}": no credentials, query or fragment in upstream URLs`,
    )
  const host = u.hostname.replace(/^\[|\]$/g, '')
  const port = u.port !== '' ? u.port : u.protocol === 'https:' ? '443' : '80'
  return { source: url, protocol: u.protocol, host, port, path: u.pathname.replace(/\/$/, '') }
}

const defaultResolve = async (host: string) =>
  (await lookup(host, { all: true, verbatim: true })).map((a) => a.address)

export class Upstreams {
  readonly #o: UpstreamOptions
  readonly #parsed: ParsedUrl[]
  #endpoints: Endpoint[] = []
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(options: UpstreamOptions) {
    this.#o = options
    if (options.urls.length === 0)
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        'config option shim.upstreams: give at least one service URL (--upstream URL[,URL...])',
      )
    this.#parsed = options.urls.map((u) => parseUpstream('shim.upstreams', u))
  }

  /** Resolves once, then keeps re-resolving in the background. */
  async start(): Promise<void> {
    await this.refresh()
    const tick = () => {
      if (this.#closed) return
      this.refresh()
        .catch((err) => this.#o.onError?.(err))
        .finally(() => {
          if (!this.#closed) this.#timer = setTimeout(tick, this.#o.resolveIntervalMs).unref()
        })
    }
    this.#timer = setTimeout(tick, this.#o.resolveIntervalMs).unref()
  }

  async refresh(): Promise<void> {
    const resolve = this.#o.resolve ?? defaultResolve
    const old = new Map(this.#endpoints.map((e) => [e.baseUrl, e]))
    const next: Endpoint[] = []
    for (const p of this.#parsed) {
      let addresses: string[]
      if (isIP(p.host) !== 0) addresses = [p.host]
      else {
        try {
          addresses = await resolve(p.host)
        } catch (err) {
          // Keep what we had for this name rather than losing every replica to a DNS hiccup.
          this.#o.onError?.(err)
          next.push(...this.#endpoints.filter((e) => e.source === p.source))
          continue
        }
      }
      for (const address of addresses) {
        const hostPart = isIP(address) === 6 ? `[${address}]` : address
        const baseUrl = `${p.protocol}//${hostPart}:${p.port}${p.path}`
        if (next.some((e) => e.baseUrl === baseUrl)) continue
        next.push(
          old.get(baseUrl) ?? {
            baseUrl,
            servername: isIP(p.host) === 0 ? p.host : undefined,
            source: p.source,
            inFlight: 0,
            ejectedUntil: 0,
            failures: 0,
          },
        )
      }
    }
    const changed =
      next.length !== this.#endpoints.length || next.some((e, i) => e !== this.#endpoints[i])
    this.#endpoints = next
    if (changed) this.#o.onChange?.(next)
  }

  get endpoints(): readonly Endpoint[] {
    return this.#endpoints
  }

  /** The endpoint to try next, never one in `exclude`; ejected ones only when nothing else is left. */
  pick(exclude: ReadonlySet<Endpoint>, now = Date.now()): Endpoint | undefined {
    const candidates = this.#endpoints.filter((e) => !exclude.has(e))
    if (candidates.length === 0) return undefined
    const healthy = candidates.filter((e) => e.ejectedUntil <= now)
    if (healthy.length === 0) {
      // Everything is ejected: try the one whose ejection ends first.
      return candidates.reduce((a, b) => (b.ejectedUntil < a.ejectedUntil ? b : a))
    }
    if (healthy.length === 1) return healthy[0]
    const a = healthy[Math.floor(Math.random() * healthy.length)] as Endpoint
    let b = healthy[Math.floor(Math.random() * (healthy.length - 1))] as Endpoint
    if (b === a) b = healthy[healthy.length - 1] as Endpoint
    return b.inFlight < a.inFlight ? b : a
  }

  succeeded(e: Endpoint): void {
    e.failures = 0
    e.ejectedUntil = 0
  }

  failed(e: Endpoint, now = Date.now()): void {
    e.failures++
    e.ejectedUntil = now + this.#o.ejectMs
  }

  close(): void {
    this.#closed = true
    clearTimeout(this.#timer)
  }
}
