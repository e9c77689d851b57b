/**
 * The shim's authenticator: asks a saslgate service replica, within a hard deadline.
 *
 *   - One end-to-end deadline (`shim.deadlineMs`): at the deadline the answer is
 *     `unavailable` (NO), whatever is still in flight.
 *   - A replica that fails (refused, reset, 5xx, draining) is ejected for `shim.ejectMs` and
 *     the request goes to another replica at once.
 *   - A replica silent for `shim.attemptTimeoutMs` gets a second replica asked in parallel
 *     (a hedge); the first answer wins, so a slow replica cannot take logins down with it.
 *   - Only a decision from the service is ever `ok`; every error is `unavailable` (fail closed).
 */
import { Code, ConnectError } from '@connectrpc/connect'
import type { Authenticator, AuthRequest, AuthResult } from '../authenticator.js'
import { decisionOf, type Reason } from '../errors.js'
import { Decision } from '../gen/saslgate/v1/auth_pb.js'
import type { Observability } from '../telemetry/observability.js'
import { EndpointClient, type TlsClientMaterial } from './endpoint-client.js'
import { type Endpoint, Upstreams } from './upstreams.js'

/** Supplies the `Authorization` header value for a call (static token or session token). */
export interface CallerCredentials {
  authorization(signal: AbortSignal): Promise<string | undefined>
  /** The service said `unauthenticated`: drop a cached session token. */
  rejected?(): void
}

export interface RemoteAuthenticatorOptions {
  upstreams: readonly string[]
  tls: TlsClientMaterial
  credentials: CallerCredentials
  deadlineMs: number
  attemptTimeoutMs: number
  ejectMs: number
  resolveIntervalMs: number
  connectionMaxAgeMs: number
  maxConnectionsPerUpstream: number
  /** At most this many replicas are asked for one request (first try, failovers, hedges). */
  maxAttempts?: number
  resolve?: (host: string) => Promise<string[]>
  onAttempt?: (event: AttemptEvent) => void
  /** Traces: the active span's context is sent to the service (W3C trace context). */
  observability?: Observability
  onUpstreamError?: (err: unknown) => void
}

export interface AttemptEvent {
  endpoint: string
  outcome: 'answer' | 'failed' | 'unauthenticated' | 'abandoned'
  hedge: boolean
  ms: number
  code?: string
  /**
   * Why the connection failed, as Node names it (`ECONNREFUSED`, `ECONNRESET`, a TLS
   * verification code such as `UNABLE_TO_VERIFY_LEAF_SIGNATURE`): tells a replica that is
   * down from one the shim does not trust. Never a message, a URL or a credential.
   */
  cause?: string
}

const ANSWERS: Record<number, Reason> = {
  [Decision.OK]: 'remote_ok',
  [Decision.INVALID]: 'remote_invalid',
  [Decision.UNAVAILABLE]: 'remote_unavailable',
}

export class RemoteAuthenticator implements Authenticator {
  readonly #o: RemoteAuthenticatorOptions
  readonly #upstreams: Upstreams
  readonly #clients = new Map<string, EndpointClient>()
  #closed = false

  constructor(options: RemoteAuthenticatorOptions) {
    this.#o = options
    this.#upstreams = new Upstreams({
      urls: options.upstreams,
      ejectMs: options.ejectMs,
      resolveIntervalMs: options.resolveIntervalMs,
      ...(options.resolve !== undefined ? { resolve: options.resolve } : {}),
      onChange: (endpoints) => this.#prune(endpoints),
      ...(options.onUpstreamError !== undefined ? { onError: options.onUpstreamError } : {}),
    })
  }

  async start(): Promise<void> {
    await this.#upstreams.start()
  }

  get endpoints(): readonly Endpoint[] {
    return this.#upstreams.endpoints
  }

  #prune(endpoints: readonly Endpoint[]): void {
    const live = new Set(endpoints.map((e) => e.baseUrl))
    for (const [url, client] of this.#clients) {
      if (!live.has(url)) {
        client.close()
        this.#clients.delete(url)
      }
    }
  }

  #client(e: Endpoint): EndpointClient {
    let c = this.#clients.get(e.baseUrl)
    if (c === undefined) {
      c = new EndpointClient({
        baseUrl: e.baseUrl,
        servername: e.servername,
        tls: this.#o.tls,
        maxConnections: this.#o.maxConnectionsPerUpstream,
        connectionMaxAgeMs: this.#o.connectionMaxAgeMs,
      })
      this.#clients.set(e.baseUrl, c)
    }
    return c
  }

  authenticate(req: AuthRequest): Promise<AuthResult> {
    if (this.#closed || req.signal.aborted) return Promise.resolve(result('upstream_unavailable'))
    const started = performance.now()
    const deadline = started + this.#o.deadlineMs
    const all = new AbortController()
    const maxAttempts = this.#o.maxAttempts ?? 3
    const tried = new Set<Endpoint>()
    return new Promise<AuthResult>((resolve) => {
      let settled = false
      let pending = 0
      let lastFailure: Reason = 'upstream_unavailable'
      let reauthenticated = false
      const timers = new Set<NodeJS.Timeout>()
      const finish = (r: AuthResult) => {
        if (settled) return
        settled = true
        for (const t of timers) clearTimeout(t)
        clearTimeout(deadlineTimer)
        req.signal.removeEventListener('abort', onAbort)
        all.abort()
        resolve(r)
      }
      const onAbort = () => finish(result('upstream_unavailable'))
      req.signal.addEventListener('abort', onAbort, { once: true })
      const deadlineTimer = setTimeout(onAbort, this.#o.deadlineMs)

      const launch = (hedge: boolean, retrySame?: Endpoint) => {
        if (settled) return
        const left = deadline - performance.now()
        if (left <= 1) return
        const e = retrySame ?? (tried.size < maxAttempts ? this.#upstreams.pick(tried) : undefined)
        if (e === undefined) {
          if (pending === 0) finish(result(lastFailure))
          return
        }
        tried.add(e)
        pending++
        e.inFlight++
        const t0 = performance.now()
        const hedgeTimer = setTimeout(() => {
          timers.delete(hedgeTimer)
          launch(true)
        }, this.#o.attemptTimeoutMs)
        timers.add(hedgeTimer)
        this.#call(e, req, all.signal, Math.floor(left))
          .then(
            (decision) => {
              this.#upstreams.succeeded(e)
              this.#o.onAttempt?.({
                endpoint: e.baseUrl,
                outcome: 'answer',
                hedge,
                ms: performance.now() - t0,
              })
              finish(result(ANSWERS[decision] ?? 'upstream_unavailable'))
            },
            (err: unknown) => {
              const ce = ConnectError.from(err)
              if (settled) {
                this.#o.onAttempt?.({
                  endpoint: e.baseUrl,
                  outcome: 'abandoned',
                  hedge,
                  ms: performance.now() - t0,
                })
                return
              }
              if (err instanceof CredentialsFailed) {
                // No credentials to present (our token source or Kerberos failed, not the
                // replica): the replica is not ejected; the answer is NO.
                lastFailure = 'upstream_refused_caller'
                finish(result(lastFailure))
                return
              }
              if (ce.code === Code.Unauthenticated || ce.code === Code.PermissionDenied) {
                this.#o.onAttempt?.({
                  endpoint: e.baseUrl,
                  outcome: 'unauthenticated',
                  hedge,
                  ms: performance.now() - t0,
                  code: Code[ce.code],
                })
                lastFailure = 'upstream_refused_caller'
                this.#o.credentials.rejected?.()
                if (!reauthenticated) {
                  // A session token may have expired or a replica rotated: one fresh try.
                  reauthenticated = true
                  clearTimeout(hedgeTimer)
                  timers.delete(hedgeTimer)
                  launch(hedge, e)
                }
                return
              }
              const cause = causeCode(ce.cause)
              this.#o.onAttempt?.({
                endpoint: e.baseUrl,
                outcome: 'failed',
                hedge,
                ms: performance.now() - t0,
                code: Code[ce.code],
                ...(cause !== undefined ? { cause } : {}),
              })
              this.#upstreams.failed(e)
              clearTimeout(hedgeTimer)
              timers.delete(hedgeTimer)
              launch(hedge)
            },
          )
          .finally(() => {
            pending--
            e.inFlight--
            if (!settled && pending === 0 && !timersPending()) {
              // Nothing in flight and nothing scheduled: try another replica or give up.
              launch(false)
              if (!settled && pending === 0) finish(result(lastFailure))
            }
          })
      }
      const timersPending = () => timers.size > 0
      launch(false)
    })
  }

  async #call(
    e: Endpoint,
    req: AuthRequest,
    signal: AbortSignal,
    timeoutMs: number,
  ): Promise<Decision> {
    let authorization: string | undefined
    try {
      authorization = await this.#o.credentials.authorization(signal)
    } catch (err) {
      throw new CredentialsFailed(err)
    }
    // Settled meanwhile (another replica answered, the deadline): encode no password for it
    // (the listener wipes the frame's password once the request is answered).
    if (signal.aborted) throw new ConnectError('aborted', Code.Canceled)
    // The trace context of the socket request span: the service's RPC span is its child
    // (attempts and hedges are events on the request span, not spans of their own).
    const headers: Record<string, string> = {}
    this.#o.observability?.inject(headers)
    const res = await this.#client(e).client.authenticate(
      {
        login: req.login,
        password: req.password,
        service: req.service,
        realm: req.realm,
        clientAddress: req.clientAddress ?? '',
      },
      { signal, timeoutMs, headers, ...(authorization !== undefined ? { authorization } : {}) },
    )
    return res.decision
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#upstreams.close()
    for (const c of this.#clients.values()) c.close()
    this.#clients.clear()
  }
}

/**
 * `credentials.authorization()` failed: ours, not the replica's, so nothing is ejected
 * (ejecting every replica because our own token source broke would leave none).
 */
class CredentialsFailed extends Error {
  constructor(cause: unknown) {
    super('caller credentials unavailable', { cause })
  }
}

/** A Node error code (`ECONNREFUSED`, `CERT_HAS_EXPIRED`), or undefined. */
function causeCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code
  return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : undefined
}

function result(reason: Reason): AuthResult {
  return { decision: decisionOf(reason), reason, stage: 'upstream' }
}
