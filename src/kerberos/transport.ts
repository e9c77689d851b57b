/**
 * Sends Kerberos messages to the KDCs of a realm over UDP and TCP, without ever blocking
 * the event loop: every deadline, retry, failover and circuit breaker lives here.
 *
 * One `send`: KDCs in order (the preferred one first), skipping those whose breaker is
 * open; UDP first unless asked for TCP or the request is over `udpPreferenceLimit`; a
 * timeout, refusal or garbage moves on to the next KDC at once; KRB_ERR_RESPONSE_TOO_BIG
 * over UDP resends the same request to the same KDC over TCP; KDC_ERR_SVC_UNAVAILABLE
 * (error 29: the KDC is up but cannot serve, e.g. its database is down) is that KDC's
 * failure and moves on, as MIT's sendto_kdc does. The list is walked `passes` times while
 * the caller's signal allows.
 *
 * As in MIT's sendto_kdc, a UDP attempt that timed out keeps listening until the send
 * settles: a slow KDC's late reply is taken, whichever attempt is under way then. TCP
 * sockets live for one attempt.
 *
 * `primaryOnly` sends go to the realm's primary KDCs only (`primaries`, MIT's `primary_kdc`): the
 * verifier's retry after a replica's PREAUTH_FAILED. A primary that is also in the realm's
 * list shares its breaker.
 *
 * KDC host names are resolved before an attempt starts (kdc-resolver.ts: hosts file and
 * c-ares, never getaddrinfo on the thread pool), within the attempt timeout; a name that
 * does not resolve skips that KDC without counting against its breaker (DNS is not the
 * KDC's fault).
 */
import dgram from 'node:dgram'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { SaslgateError } from '../errors.js'
import {
  type BreakerChangeListener,
  type BreakerState,
  type BreakerVerdict,
  DEFAULT_BREAKER_OPTIONS,
  type KdcBreakerOptions,
  KdcBreakers,
} from './kdc-breakers.js'
import { classifyKdcReply, KRB_ERR_RESPONSE_TOO_BIG } from './kdc-message.js'
import {
  DEFAULT_RESOLVER_OPTIONS,
  KdcResolver,
  type KdcResolverOptions,
  type ResolvedAddress,
} from './kdc-resolver.js'
import type { KdcProtocol, KdcReply, KdcSendOptions, KdcTransport } from './types.js'

export type { BreakerState } from './kdc-breakers.js'

/**
 * `late_reply`: an earlier attempt's late reply settled the send while this one waited.
 * `error` details include `dns` (the name did not resolve in time; neutral for the breaker)
 * and `svc_unavailable` (KRB-ERROR 29).
 */
export type KdcAttemptOutcome =
  | 'reply'
  | 'timeout'
  | 'refused'
  | 'error'
  | 'too_big'
  | 'aborted'
  | 'late_reply'

export interface KdcAttemptEvent {
  realm: string
  /** `host:port` (`[v6]:port`) as configured. */
  kdc: string
  protocol: KdcProtocol
  /** 1-based attempt number within the send. */
  attempt: number
  /** `aborted`: cut short by the caller's signal or by `close()`. */
  outcome: KdcAttemptOutcome
  durationMs: number
  /** A short machine word for `error` outcomes (`bad_reply`, `reset`, `dns`, an errno code). */
  detail?: string
}

export interface KdcTransportOptions {
  /** KDC addresses per realm: `host`, `host:port`, `[v6]:port`, `v6`; default port 88. */
  realms: Record<string, readonly string[]>
  /** Primary KDCs per realm (same syntax); a realm without any has no `primaryOnly` send. */
  primaries?: Record<string, readonly string[]>
  udpAttemptTimeoutMs: number
  tcpAttemptTimeoutMs: number
  /** Requests larger than this many bytes go over TCP first (MIT's udp_preference_limit). */
  udpPreferenceLimit: number
  /** Attempts on one KDC within one pass before moving on. */
  maxAttemptsPerKdc: number
  /** Times the KDC list is walked while the caller's signal allows. */
  passes: number
  /** Largest TCP reply accepted (length prefix above it: the attempt fails). */
  maxReplyBytes: number
  /** KDC host name resolution (TTLs, c-ares timeout and tries, servers, hosts file). */
  dns: KdcResolverOptions
  breaker: KdcBreakerOptions
  onAttempt?: (event: KdcAttemptEvent) => void
  onBreakerChange?: BreakerChangeListener
}

export type KdcTransportInit = Partial<
  Omit<KdcTransportOptions, 'breaker' | 'realms' | 'primaries' | 'dns'>
> & {
  realms: Record<string, readonly string[]>
  primaries?: Record<string, readonly string[]>
  breaker?: Partial<KdcBreakerOptions>
  dns?: Partial<KdcResolverOptions>
}

export const DEFAULT_TRANSPORT_OPTIONS: Readonly<Omit<KdcTransportOptions, 'realms'>> =
  Object.freeze({
    udpAttemptTimeoutMs: 400,
    tcpAttemptTimeoutMs: 1000,
    udpPreferenceLimit: 1465,
    maxAttemptsPerKdc: 1,
    passes: 2,
    maxReplyBytes: 65536,
    dns: DEFAULT_RESOLVER_OPTIONS,
    breaker: DEFAULT_BREAKER_OPTIONS,
  })

export const DEFAULT_KDC_PORT = 88

export interface KdcAddress {
  /** Hostname (lowercased) or IP literal, without brackets. */
  host: string
  port: number
  /** 4 or 6 for an IP literal, 0 for a hostname. */
  family: 0 | 4 | 6
  /** `host:port`, or `[v6]:port`: the breaker key and the `kdc` of a reply. */
  key: string
}

const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$/

/** Parses a KDC address as krb5.conf writes it. Throws SASLGATE_ERR_CONFIG. */
export function parseKdcAddress(spec: string, defaultPort = DEFAULT_KDC_PORT): KdcAddress {
  const bad = (why: string) =>
    new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `realms: bad KDC address ${JSON.stringify(spec)}: ${why}`,
    )
  const s = spec.trim()
  let host: string
  let portText: string | undefined
  if (s.startsWith('[')) {
    const end = s.indexOf(']')
    if (end < 0) throw bad('unclosed [')
    host = s.slice(1, end)
    const rest = s.slice(end + 1)
    if (rest.startsWith(':')) portText = rest.slice(1)
    else if (rest !== '') throw bad('junk after ]')
    if (net.isIP(host) !== 6) throw bad('not an IPv6 address inside [ ]')
  } else {
    const first = s.indexOf(':')
    if (first >= 0 && first === s.lastIndexOf(':')) {
      host = s.slice(0, first)
      portText = s.slice(first + 1)
    } else {
      host = s
      if (first >= 0 && net.isIP(host) !== 6) throw bad('not an IPv6 address')
    }
  }
  let port = defaultPort
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText)) throw bad('bad port')
    port = Number(portText)
  }
  if (port < 1 || port > 65535) throw bad('port out of range')
  const family = net.isIP(host) as 0 | 4 | 6
  if (family === 0) {
    if (!HOSTNAME.test(host)) throw bad('bad hostname')
    host = host.toLowerCase()
  }
  return { host, port, family, key: family === 6 ? `[${host}]:${port}` : `${host}:${port}` }
}

/** KRB-ERROR 29, KDC_ERR_SVC_UNAVAILABLE. */
const KDC_ERR_SVC_UNAVAILABLE = 29

type AttemptResult =
  | { outcome: 'reply'; reply: Buffer }
  | { outcome: 'late_reply'; late: LateReply }
  | { outcome: 'too_big' }
  | { outcome: 'timeout' }
  | { outcome: 'refused' }
  | { outcome: 'error'; detail: string }
  | { outcome: 'aborted' }

type Finish = (result: AttemptResult) => void

interface LateReply {
  reply: Buffer
  /** The KDC and attempt whose socket it came to. */
  kdc: string
  attempt: number
}

/**
 * The UDP sockets of one send's timed-out attempts, still listening. A late reply settles
 * the attempt under way (`current`), or waits for the next one; `close()` when the send
 * settles.
 */
class LateReplies {
  readonly #closers: Array<() => void> = []
  #arrived: LateReply | undefined
  current: ((late: LateReply) => void) | undefined

  /** The first late reply, if one came. */
  arrived(): LateReply | undefined {
    return this.#arrived
  }

  keep(close: () => void): void {
    this.#closers.push(close)
  }

  deliver(late: LateReply): void {
    if (this.#arrived !== undefined) return // the first one wins
    this.#arrived = late
    this.current?.(late)
  }

  close(): void {
    this.current = undefined
    for (const close of this.#closers.splice(0)) {
      try {
        close()
      } catch {
        // already closed
      }
    }
  }
}

function positiveInt(name: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', `${name} must be an integer >= ${min}`)
  }
  return value
}

function errnoOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'unknown'
}

/** The error a send rejects with once its signal fired. */
function abortError(signal: AbortSignal): SaslgateError {
  const reason: unknown = signal.reason
  if (reason instanceof SaslgateError) {
    if (reason.code === 'SASLGATE_ERR_DEADLINE' || reason.code === 'SASLGATE_ERR_ABORTED') {
      return new SaslgateError(reason.code, reason.message, { cause: reason })
    }
  }
  if ((reason as { name?: unknown } | null)?.name === 'TimeoutError') {
    return new SaslgateError('SASLGATE_ERR_DEADLINE', 'the deadline passed while waiting for a KDC')
  }
  return new SaslgateError('SASLGATE_ERR_ABORTED', 'the caller aborted the KDC exchange', {
    cause: reason,
  })
}

export class KdcClient implements KdcTransport {
  readonly #options: Omit<KdcTransportOptions, 'realms' | 'primaries' | 'breaker'>
  readonly #realms = new Map<string, KdcAddress[]>()
  readonly #primaries = new Map<string, KdcAddress[]>()
  readonly #breakers: KdcBreakers
  /** Cancels every attempt under way (close()). */
  readonly #inflight = new Set<() => void>()
  readonly #resolver: KdcResolver
  #closed = false

  constructor(init: KdcTransportInit) {
    const { realms, primaries, breaker, dns, ...rest } = init
    const o = {
      ...DEFAULT_TRANSPORT_OPTIONS,
      ...rest,
      dns: { ...DEFAULT_RESOLVER_OPTIONS, ...dns },
    }
    positiveInt('udpAttemptTimeoutMs', o.udpAttemptTimeoutMs)
    positiveInt('tcpAttemptTimeoutMs', o.tcpAttemptTimeoutMs)
    positiveInt('udpPreferenceLimit', o.udpPreferenceLimit, 0)
    positiveInt('maxAttemptsPerKdc', o.maxAttemptsPerKdc)
    positiveInt('passes', o.passes)
    positiveInt('maxReplyBytes', o.maxReplyBytes, 64)
    positiveInt('dns.ttlMs', o.dns.ttlMs, 0)
    positiveInt('dns.staleMs', o.dns.staleMs, 0)
    positiveInt('dns.negativeTtlMs', o.dns.negativeTtlMs, 0)
    positiveInt('dns.timeoutMs', o.dns.timeoutMs)
    positiveInt('dns.tries', o.dns.tries)
    const b = { ...DEFAULT_BREAKER_OPTIONS, ...breaker }
    positiveInt('breaker.resetTimeoutMs', b.resetTimeoutMs)
    positiveInt('breaker.volumeThreshold', b.volumeThreshold, 0)
    positiveInt('breaker.rollingCountTimeoutMs', b.rollingCountTimeoutMs)
    positiveInt('breaker.rollingCountBuckets', b.rollingCountBuckets)
    if (!(b.errorThresholdPercentage >= 0 && b.errorThresholdPercentage <= 100)) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'breaker.errorThresholdPercentage: 0..100')
    }
    this.#options = o
    this.#breakers = new KdcBreakers(b, o.onBreakerChange)
    this.#resolver = new KdcResolver(o.dns)
    for (const [target, source] of [
      [this.#realms, realms],
      [this.#primaries, primaries],
    ] as const) {
      for (const [realm, specs] of Object.entries(source ?? {})) {
        const seen = new Set<string>()
        const list: KdcAddress[] = []
        for (const spec of specs) {
          const kdc = parseKdcAddress(spec)
          if (seen.has(kdc.key)) continue
          seen.add(kdc.key)
          list.push(kdc)
          this.#breakers.ensure(kdc.key)
        }
        if (list.length > 0) target.set(realm, list)
      }
    }
  }

  async send(realm: string, request: Buffer, options: KdcSendOptions): Promise<KdcReply> {
    const { signal } = options
    if (this.#closed) throw new SaslgateError('SASLGATE_ERR_CLOSED', 'the KDC transport is closed')
    if (signal.aborted) throw abortError(signal)
    const kdcs = (options.primaryOnly ? this.#primaries : this.#realms).get(realm)
    if (!kdcs || kdcs.length === 0) {
      const what = options.primaryOnly ? 'primary KDC' : 'KDC'
      throw new SaslgateError('SASLGATE_ERR_NO_KDC', `no ${what} is configured for realm ${realm}`)
    }
    const preferred = options.preferKdc ? kdcs.find((k) => k.key === options.preferKdc) : undefined
    const order = preferred ? [preferred, ...kdcs.filter((k) => k !== preferred)] : kdcs
    if (!order.some((k) => this.#breakers.isAvailable(k.key))) {
      throw new SaslgateError('SASLGATE_ERR_BREAKERS_OPEN', `every KDC breaker of ${realm} is open`)
    }

    let protocol: KdcProtocol =
      options.tcp || request.length > this.#options.udpPreferenceLimit ? 'tcp' : 'udp'
    let attempt = 0
    const tally: Record<string, number> = {}
    const late = new LateReplies()
    const lateReply = (l: LateReply): KdcReply => ({
      reply: l.reply,
      kdc: l.kdc,
      protocol: 'udp',
      attempt: l.attempt,
    })

    try {
      for (let pass = 0; pass < this.#options.passes; pass++) {
        for (const kdc of order) {
          for (let n = 0; n < this.#options.maxAttemptsPerKdc; n++) {
            const early = late.arrived()
            if (early) return lateReply(early)
            if (!this.#breakers.isAvailable(kdc.key)) break
            // Resolved before the breaker is asked: a slow or failing resolver is not the
            // KDC's failure, and its wait is not taken from the attempt timeout.
            attempt++
            const address =
              kdc.family !== 0
                ? { address: kdc.host, family: kdc.family }
                : await this.#addressOf(realm, kdc, protocol, signal, attempt, late)
            if (address === 'aborted') {
              if (this.#closed) {
                throw new SaslgateError('SASLGATE_ERR_CLOSED', 'the KDC transport was closed')
              }
              throw abortError(signal)
            }
            if (address === 'dns') {
              tally.dns = (tally.dns ?? 0) + 1
              break // next KDC
            }
            if ('reply' in address) return lateReply(address)
            const ticket = this.#breakers.admit(kdc.key)
            if (!ticket) break
            let verdict: BreakerVerdict = 'neutral'
            try {
              // Reads `protocol` and `attempt` when called: the retry over TCP gets the new ones.
              const once = () =>
                this.#attempt(realm, kdc, address, protocol, request, signal, attempt, late)
              let result = await once()
              if (result.outcome === 'too_big') {
                protocol = 'tcp' // the reply does not fit a datagram: TCP for the rest
                attempt++
                result = await once()
              }
              if (result.outcome === 'aborted') {
                verdict = ticket.probe ? 'failure' : 'neutral'
                if (this.#closed) {
                  throw new SaslgateError('SASLGATE_ERR_CLOSED', 'the KDC transport was closed')
                }
                throw abortError(signal)
              }
              if (result.outcome === 'late_reply') {
                // This KDC had no fair chance; a probe that did not answer stays unproven.
                verdict = ticket.probe ? 'failure' : 'neutral'
                return lateReply(result.late)
              }
              if (result.outcome === 'reply') {
                verdict = 'success'
                return { reply: result.reply, kdc: kdc.key, protocol, attempt }
              }
              verdict = 'failure'
              const key = result.outcome === 'error' ? result.detail : result.outcome
              tally[key] = (tally[key] ?? 0) + 1
              if (result.outcome !== 'timeout') break // refused or broken: next KDC now
            } finally {
              ticket.settle(verdict)
            }
          }
          if (signal.aborted) throw abortError(signal)
          if (this.#closed)
            throw new SaslgateError('SASLGATE_ERR_CLOSED', 'the KDC transport was closed')
        }
      }
      const last = late.arrived()
      if (last) return lateReply(last)
    } finally {
      late.close()
    }

    const summary = Object.entries(tally)
      .map(([outcome, count]) => `${count} ${outcome}`)
      .join(', ')
    if (attempt === 0) {
      throw new SaslgateError('SASLGATE_ERR_BREAKERS_OPEN', `every KDC breaker of ${realm} is open`)
    }
    const code = tally.timeout ? 'SASLGATE_ERR_KDC_TIMEOUT' : 'SASLGATE_ERR_KDC_UNREACHABLE'
    throw new SaslgateError(code, `no KDC of ${realm} answered (${attempt} attempts: ${summary})`)
  }

  /** True when every KDC breaker of the realm is open (or half-open with its probe taken). */
  allOpen(realm: string): boolean {
    const kdcs = this.#realms.get(realm)
    if (!kdcs || kdcs.length === 0 || this.#closed) return false
    return kdcs.every((k) => !this.#breakers.isAvailable(k.key))
  }

  isPrimary(realm: string, kdc: string): boolean | undefined {
    const primaries = this.#primaries.get(realm)
    if (primaries === undefined) return undefined
    return primaries.some((p) => p.key === kdc)
  }

  /** The breaker state of every configured KDC, keyed by `host:port`. */
  breakerStates(): Record<string, BreakerState> {
    return this.#breakers.states()
  }

  /** Host-name look-ups made so far (cache hits excluded). */
  dnsLookups(): number {
    return this.#resolver.lookups
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const cancel of [...this.#inflight]) cancel()
    this.#inflight.clear()
    this.#breakers.close()
    this.#resolver.close()
  }

  #emit(event: KdcAttemptEvent): void {
    const hook = this.#options.onAttempt
    if (!hook) return
    try {
      hook(event)
    } catch {
      // a telemetry hook must never break the transport
    }
  }

  /**
   * A KDC host name's address through the resolver (IP literals never come here), waited for
   * at most one attempt timeout (the look-up goes on and fills the cache for later sends).
   * A failure is reported as an `error`/`dns` attempt.
   */
  async #addressOf(
    realm: string,
    kdc: KdcAddress,
    protocol: KdcProtocol,
    signal: AbortSignal,
    attempt: number,
    late: LateReplies,
  ): Promise<ResolvedAddress | LateReply | 'dns' | 'aborted'> {
    if (signal.aborted || this.#closed) return 'aborted'
    const started = performance.now()
    const timeoutMs =
      protocol === 'udp' ? this.#options.udpAttemptTimeoutMs : this.#options.tcpAttemptTimeoutMs
    const outcome = await new Promise<ResolvedAddress | LateReply | 'dns' | 'aborted'>(
      (resolve) => {
        const cleanups: Array<() => void> = []
        const done = (v: ResolvedAddress | LateReply | 'dns' | 'aborted') => {
          for (const c of cleanups.splice(0)) c()
          resolve(v)
        }
        const onAbort = () => done('aborted')
        signal.addEventListener('abort', onAbort, { once: true })
        cleanups.push(() => signal.removeEventListener('abort', onAbort))
        this.#inflight.add(onAbort)
        cleanups.push(() => this.#inflight.delete(onAbort))
        late.current = done
        cleanups.push(() => {
          late.current = undefined
        })
        const timer = setTimeout(() => done('dns'), timeoutMs)
        timer.unref()
        cleanups.push(() => clearTimeout(timer))
        this.#resolver.resolve(kdc.host).then(done, () => done('dns'))
      },
    )
    if (outcome === 'dns') {
      this.#emit({
        realm,
        kdc: kdc.key,
        protocol,
        attempt,
        outcome: 'error',
        detail: 'dns',
        durationMs: performance.now() - started,
      })
    }
    return outcome
  }

  /** One attempt on one KDC; never rejects. */
  async #attempt(
    realm: string,
    kdc: KdcAddress,
    address: ResolvedAddress,
    protocol: KdcProtocol,
    request: Buffer,
    signal: AbortSignal,
    attempt: number,
    late: LateReplies,
  ): Promise<AttemptResult> {
    const started = performance.now()
    const result = await this.#run(kdc, address, protocol, request, signal, attempt, late)
    const event: KdcAttemptEvent = {
      realm,
      kdc: kdc.key,
      protocol,
      attempt,
      outcome: result.outcome,
      durationMs: performance.now() - started,
    }
    if (result.outcome === 'error') event.detail = result.detail
    this.#emit(event)
    return result
  }

  #run(
    kdc: KdcAddress,
    address: ResolvedAddress,
    protocol: KdcProtocol,
    request: Buffer,
    signal: AbortSignal,
    attempt: number,
    late: LateReplies,
  ): Promise<AttemptResult> {
    const timeoutMs =
      protocol === 'udp' ? this.#options.udpAttemptTimeoutMs : this.#options.tcpAttemptTimeoutMs
    return new Promise<AttemptResult>((resolve) => {
      const cleanups: Array<(result: AttemptResult) => void> = []
      let done = false
      const finish: Finish = (result) => {
        if (done) return
        done = true
        for (const cleanup of cleanups) {
          try {
            cleanup(result)
          } catch {
            // closing an already closed socket
          }
        }
        resolve(result)
      }
      const onAbort = () => finish({ outcome: 'aborted' })
      if (signal.aborted || this.#closed) return onAbort()
      const early = late.arrived()
      if (early) return finish({ outcome: 'late_reply', late: early })
      signal.addEventListener('abort', onAbort, { once: true })
      cleanups.push(() => signal.removeEventListener('abort', onAbort))
      this.#inflight.add(onAbort)
      cleanups.push(() => this.#inflight.delete(onAbort))
      late.current = (l) => finish({ outcome: 'late_reply', late: l })
      cleanups.push(() => {
        late.current = undefined
      })
      let badReplies = 0
      const timer = setTimeout(
        () =>
          finish(
            badReplies > 0 ? { outcome: 'error', detail: 'bad_reply' } : { outcome: 'timeout' },
          ),
        timeoutMs,
      )
      timer.unref()
      cleanups.push(() => clearTimeout(timer))
      const onBadReply = () => {
        badReplies++
      }
      try {
        if (protocol === 'udp') {
          udpExchange(address, kdc.port, request, finish, cleanups, onBadReply, {
            keep: (close) => late.keep(close),
            deliver: (reply) => late.deliver({ reply, kdc: kdc.key, attempt }),
          })
        } else {
          tcpExchange(address, kdc.port, request, this.#options.maxReplyBytes, finish, cleanups)
        }
      } catch (err) {
        finish({ outcome: 'error', detail: errnoOf(err) }) // e.g. EMFILE thrown at once
      }
    })
  }
}

/** What a KRB-ERROR that ends an attempt means (undefined: a reply for the caller). */
function replyOutcome(msg: Buffer): AttemptResult | 'garbage' {
  const info = classifyKdcReply(msg)
  if (!info) return 'garbage'
  if (info.kind === 'krb-error' && info.errorCode === KRB_ERR_RESPONSE_TOO_BIG) {
    return { outcome: 'too_big' }
  }
  // The KDC cannot serve now (e.g. its database is down): its failure, try the next one.
  if (info.kind === 'krb-error' && info.errorCode === KDC_ERR_SVC_UNAVAILABLE) {
    return { outcome: 'error', detail: 'svc_unavailable' }
  }
  return { outcome: 'reply', reply: msg }
}

/**
 * One UDP request/reply on a connected socket (the kernel drops datagrams from others).
 * After a timeout the socket goes on listening: `late.keep` gets its closer, a late reply
 * goes to `late.deliver`.
 */
function udpExchange(
  to: ResolvedAddress,
  port: number,
  request: Buffer,
  finish: Finish,
  cleanups: Array<(result: AttemptResult) => void>,
  onBadReply: () => void,
  late: { keep: (close: () => void) => void; deliver: (reply: Buffer) => void },
): void {
  const socket = dgram.createSocket(to.family === 6 ? 'udp6' : 'udp4')
  let closed = false
  let lingering = false
  const close = () => {
    if (closed) return
    closed = true
    socket.close()
  }
  cleanups.push((result) => {
    const timedOut =
      result.outcome === 'timeout' || (result.outcome === 'error' && result.detail === 'bad_reply')
    if (timedOut && !closed) {
      lingering = true
      late.keep(close)
    } else close()
  })
  socket.on('error', (err) => {
    if (lingering) return close()
    // a connected socket reports ICMP port unreachable as ECONNREFUSED
    if (errnoOf(err) === 'ECONNREFUSED') finish({ outcome: 'refused' })
    else finish({ outcome: 'error', detail: errnoOf(err) })
  })
  socket.on('message', (msg) => {
    const outcome = replyOutcome(msg)
    if (outcome === 'garbage') {
      if (!lingering) onBadReply() // keep waiting for a real reply
      return
    }
    if (!lingering) return finish(outcome)
    // Only a real answer settles the send late; TOO_BIG or error 29 are that KDC's
    // failure, already counted when its attempt timed out.
    if (outcome.outcome === 'reply') late.deliver(msg)
  })
  socket.connect(port, to.address, () => {
    if (closed) return
    socket.send(request, (err) => {
      if (err && !lingering) finish({ outcome: 'error', detail: errnoOf(err) })
    })
  })
}

/** One TCP request/reply, both framed with a 4-byte big-endian length. */
function tcpExchange(
  to: ResolvedAddress,
  port: number,
  request: Buffer,
  maxReplyBytes: number,
  finish: Finish,
  cleanups: Array<(result: AttemptResult) => void>,
): void {
  const socket = net.connect({ host: to.address, port, family: to.family, noDelay: true })
  cleanups.push(() => socket.destroy())
  const chunks: Buffer[] = []
  let received = 0
  let expected = -1
  socket.on('connect', () => {
    const prefix = Buffer.alloc(4)
    prefix.writeUInt32BE(request.length, 0)
    socket.write(Buffer.concat([prefix, request]))
  })
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk)
    received += chunk.length
    if (expected < 0 && received >= 4) {
      const head = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
      const length = head.readUInt32BE(0)
      // The top bit is reserved (RFC 4120 7.2.2); zero or oversized lengths are no reply.
      if (length === 0 || length > maxReplyBytes) {
        return finish({ outcome: 'error', detail: 'bad_length' })
      }
      expected = length
    }
    if (expected >= 0 && received >= 4 + expected) {
      const all = Buffer.concat(chunks, received)
      const outcome = replyOutcome(Buffer.from(all.subarray(4, 4 + expected)))
      finish(outcome === 'garbage' ? { outcome: 'error', detail: 'bad_reply' } : outcome)
    }
  })
  socket.on('error', (err) => {
    if (errnoOf(err) === 'ECONNREFUSED') finish({ outcome: 'refused' })
    else finish({ outcome: 'error', detail: errnoOf(err) })
  })
  socket.on('close', () => finish({ outcome: 'error', detail: 'closed' }))
}
