/**
 * HTTP Negotiate (SPNEGO) initiator for the shim: makes the token for
 * `Authorization: Negotiate <token>` from the front-end's host keytab, through GSSAPI (the
 * `kerberos` npm package over MIT libgssapi_krb5). The shim calls `token()` only to get a
 * session token from the service, not per login.
 *
 * Credentials (MIT >= 1.11, checked on 1.20 by test/integration/negotiate.test.ts): with
 * `KRB5_CLIENT_KTNAME` naming the host keytab and a private ccache (`KRB5CCNAME=MEMORY:...` or a
 * FILE in a private directory), gss_init_sec_context gets a TGT from the client keytab by itself
 * and renews it when it expires; the TGT and the service ticket stay in the ccache, so every
 * token after the first costs no KDC round trip. Without `principal`, the client is the first
 * principal in the client keytab. The options `clientKeytab`, `ccache` and `krb5Config` set those
 * variables in process.env (process-wide; MIT reads them per call): set them once at start-up,
 * before any GSSAPI call runs.
 *
 * Put `dns_canonicalize_hostname = false` (or `fallback`) in the shim's krb5.conf: otherwise MIT
 * resolves the service host through DNS on every token() (measured: one lookup per token), on a
 * pool thread, and a slow resolver stalls it for seconds.
 *
 * Bounded: a token() whose GSSAPI work does not finish within `timeoutMs` (a KDC that does not
 * answer: MIT's own retries take up to ~30 s) rejects with SASLGATE_ERR_DEADLINE; the pool
 * thread lingers until libgssapi returns (it cannot be cancelled). `maxInFlight` bounds how many
 * pool threads it may hold; beyond that token() fails at once. A token is single-use (the
 * acceptor's replay cache refuses it a second time): never share one between requests.
 */

import type { InitializeClientOptions } from 'kerberos'
import { SaslgateError } from '../errors.js'
import { gss, positiveInt, TIMED_OUT, within } from '../kerberos/gss.js'

export interface NegotiateInitiatorOptions {
  /** GSS host-based service name, `HTTP@saslgate.example.org` (`HTTP/host` is accepted too). */
  service: string
  /** Bound on one token() (may include an AS and a TGS exchange with the KDC). */
  timeoutMs?: number
  /** GSSAPI calls (pool threads) token() may hold at once, lingering timed-out ones included. */
  maxInFlight?: number
  /** `spnego` (HTTP Negotiate, the default) or a raw `krb5` token. */
  mech?: 'spnego' | 'krb5'
  /** The client principal to use (`host/fe1.example.org@REALM`); default: the keytab's first. */
  principal?: string
  /** Sets process.env.KRB5_CLIENT_KTNAME (process-wide). */
  clientKeytab?: string
  /** Sets process.env.KRB5CCNAME (process-wide), e.g. `MEMORY:saslgate-shim`. */
  ccache?: string
  /** Sets process.env.KRB5_CONFIG (process-wide). */
  krb5Config?: string
}

export const DEFAULT_NEGOTIATE_INITIATOR_OPTIONS = {
  timeoutMs: 5000,
  maxInFlight: 2,
  mech: 'spnego',
} as const

const HOSTBASED_RE = /^([^\s@/]+)@([^\s@/]+)$/
const SLASH_RE = /^([^\s@/]+)\/([^\s@/]+)$/
const MAX_DETAIL_CHARS = 200

/** `HTTP@host` or `HTTP/host` -> `HTTP@host`. */
export function hostBasedServiceName(service: string): string {
  const hb = typeof service === 'string' ? HOSTBASED_RE.exec(service) : null
  if (hb !== null) return service
  const sl = typeof service === 'string' ? SLASH_RE.exec(service) : null
  if (sl !== null) return `${sl[1]}@${sl[2]}`
  throw new SaslgateError(
    'SASLGATE_ERR_CONFIG',
    `negotiate service: expected service@host, got ${JSON.stringify(service)}`,
  )
}

export class NegotiateInitiator {
  readonly #service: string
  readonly #timeoutMs: number
  readonly #maxInFlight: number
  readonly #mechOID: number
  readonly #principal: string | undefined
  #inFlight = 0
  #closed = false

  constructor(opts: NegotiateInitiatorOptions) {
    const d = DEFAULT_NEGOTIATE_INITIATOR_OPTIONS
    this.#service = hostBasedServiceName(opts.service)
    this.#timeoutMs = positiveInt(opts.timeoutMs ?? d.timeoutMs, 'negotiate timeoutMs')
    this.#maxInFlight = positiveInt(opts.maxInFlight ?? d.maxInFlight, 'negotiate maxInFlight')
    const mech = opts.mech ?? d.mech
    if (mech !== 'spnego' && mech !== 'krb5') {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'negotiate mech: spnego or krb5')
    }
    if (opts.principal !== undefined && !/^[^\s@]+@[^\s@]+$/.test(opts.principal)) {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        `negotiate principal: ${JSON.stringify(opts.principal)} is not name@REALM`,
      )
    }
    this.#principal = opts.principal
    const k = gss()
    this.#mechOID = mech === 'spnego' ? k.GSS_MECH_OID_SPNEGO : k.GSS_MECH_OID_KRB5
    if (opts.krb5Config !== undefined) process.env.KRB5_CONFIG = opts.krb5Config
    if (opts.clientKeytab !== undefined) {
      process.env.KRB5_CLIENT_KTNAME = /^[A-Z]+:/.test(opts.clientKeytab)
        ? opts.clientKeytab
        : `FILE:${opts.clientKeytab}`
    }
    if (opts.ccache !== undefined) process.env.KRB5CCNAME = opts.ccache
  }

  /** GSSAPI calls still running (timed-out ones included). */
  get inFlight(): number {
    return this.#inFlight
  }

  /**
   * A fresh initial token (base64) for `Authorization: Negotiate <token>`. Rejects with
   * SASLGATE_ERR_DEADLINE (timeout, or too many calls still running), SASLGATE_ERR_KRB5 (GSSAPI
   * failed: no keytab, unknown service, KDC unreachable, ...) or SASLGATE_ERR_CLOSED.
   */
  async token(): Promise<string> {
    if (this.#closed) throw new SaslgateError('SASLGATE_ERR_CLOSED', 'negotiate initiator closed')
    if (this.#inFlight >= this.#maxInFlight) {
      throw new SaslgateError(
        'SASLGATE_ERR_DEADLINE',
        `negotiate: ${this.#inFlight} GSSAPI calls still running`,
      )
    }
    this.#inFlight++
    const work = (async () => {
      try {
        const k = gss()
        // The addon reads `flags` (its index.d.ts says `gssFlag`). Mutual authentication, no
        // delegation: the service never gets our credentials.
        const options = {
          mechOID: this.#mechOID,
          flags: k.GSS_C_MUTUAL_FLAG | k.GSS_C_SEQUENCE_FLAG,
          ...(this.#principal === undefined ? {} : { principal: this.#principal }),
        } as InitializeClientOptions
        const client = await k.initializeClient(this.#service, options)
        return await client.step('')
      } finally {
        this.#inFlight--
      }
    })()
    let outcome: string | typeof TIMED_OUT
    try {
      outcome = await within(work, this.#timeoutMs)
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err)
      throw new SaslgateError(
        'SASLGATE_ERR_KRB5',
        `negotiate: GSSAPI failed: ${msg.slice(0, MAX_DETAIL_CHARS)}`,
      )
    }
    if (outcome === TIMED_OUT) {
      work.catch(() => {}) // settles later on its pool thread; nobody waits for it
      throw new SaslgateError(
        'SASLGATE_ERR_DEADLINE',
        `negotiate: no token within ${this.#timeoutMs} ms`,
      )
    }
    if (typeof outcome !== 'string' || outcome === '') {
      throw new SaslgateError('SASLGATE_ERR_KRB5', 'negotiate: GSSAPI produced no token')
    }
    return outcome
  }

  /** Further token() calls fail. GSSAPI calls already running finish on their own. */
  async close(): Promise<void> {
    this.#closed = true
  }
}
