/**
 * HTTP Negotiate (SPNEGO, RFC 4559) acceptor: checks the `Authorization: Negotiate <token>` of a
 * caller against the service keytab through GSSAPI (the `kerberos` npm package over MIT
 * libgssapi_krb5) and admits only client principals on an allow-list. The service answers a
 * success with a session token (session-token.ts), so this runs once per token lifetime per
 * shim, not once per login.
 *
 * Facts this relies on (MIT krb5 1.20, kerberos 7.0.0, checked by test/integration/negotiate.test.ts):
 * - The keytab is whatever `KRB5_KTNAME` names when a call runs. MIT reads the environment per
 *   krb5 context (a new one per GSSAPI call), and Node's `process.env.X = ...` calls setenv(3),
 *   so setting it at runtime works (the `keytab` option does that). It is process-wide: set it
 *   once at start-up, before any GSSAPI call runs (setenv racing a getenv on a pool thread is
 *   undefined behaviour in glibc). `KRB5_CONFIG` is not needed by the acceptor.
 * - No acceptor credential is acquired by name: with a named acceptor (`HTTP@host`), MIT
 *   canonicalizes the host through DNS on every call (two lookups per accept, measured; a slow
 *   resolver stalled one for 5 s). We accept with "any key in the keytab" and check the ticket's
 *   server name (authentic: the ticket is encrypted in that principal's key) against `principal`
 *   here, which costs no DNS at all.
 * - Replay cache: MIT keeps one (`KRB5RCACHEDIR`, default /var/tmp, or `KRB5RCACHENAME`); the same
 *   token is refused the second time. It must be writable, or every accept fails. Each replica
 *   has its own, so a token captured off the wire could be replayed once to another replica:
 *   run Negotiate only over TLS.
 * - Every GSSAPI call runs on libuv's thread pool (4 threads by default, shared with fs and
 *   dns.lookup) and cannot be cancelled. A call that does not finish within `timeoutMs` is
 *   answered as rejected, but its thread lingers until libgssapi returns; `maxInFlight` bounds
 *   how many pool threads Negotiate may hold at once (lingering ones included), anything beyond
 *   is rejected at once.
 */
import { SaslgateError } from '../errors.js'
import { gss, positiveInt, TIMED_OUT, within } from '../kerberos/gss.js'

export type NegotiateFailureCode =
  | 'SASLGATE_ERR_NEGOTIATE_REJECTED'
  | 'SASLGATE_ERR_NEGOTIATE_NOT_ALLOWED'

/** Why a token was refused (internal: logs and metrics, never sent to the caller). */
export type NegotiateRejectReason =
  | 'malformed' // not a bounded, well-formed base64 string
  | 'gssapi' // GSSAPI refused it (garbage, wrong key, replay, skew, incomplete exchange, ...)
  | 'wrong_service' // a valid ticket, but for another service principal in the keytab
  | 'timeout' // GSSAPI did not answer within timeoutMs
  | 'busy' // maxInFlight GSSAPI calls already running
  | 'closed' // the acceptor was closed
  | 'not_allowed' // authenticated, but the principal is not on the allow-list

export type NegotiateResult =
  | { ok: true; principal: string; replyToken?: string }
  | {
      ok: false
      code: NegotiateFailureCode
      reason: NegotiateRejectReason
      /** The authenticated client (only for `not_allowed`). */
      principal?: string
      /** GSSAPI's message (only for `gssapi`; names no secret). */
      detail?: string
    }

export interface NegotiateAcceptorOptions {
  /**
   * The service principal callers must have a ticket for: `HTTP/host` (any realm),
   * `HTTP/host@REALM`, or GSS host-based `HTTP@host`. '' or absent: any key in the keytab.
   */
  principal?: string
  /** Client principals admitted, in full (`host/fe1.example.org@EXAMPLE.ORG`), case-sensitive. */
  allow: readonly string[]
  /** Bound on one accept (GSSAPI is local: keytab and replay cache, no network). */
  timeoutMs?: number
  /** GSSAPI calls (pool threads) Negotiate may hold at once, lingering timed-out ones included. */
  maxInFlight?: number
  /** Longest base64 token accepted (Kerberos tickets with a large PAC reach ~16 KiB). */
  maxTokenChars?: number
  /** Keytab path (`FILE:` added if missing); sets process.env.KRB5_KTNAME (process-wide). */
  keytab?: string
}

export const DEFAULT_NEGOTIATE_ACCEPTOR_OPTIONS = {
  timeoutMs: 1000,
  maxInFlight: 2,
  maxTokenChars: 65_536,
} as const

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/
const SERVICE_PRINCIPAL_RE = /^([^\s@/]+)\/([^\s@/]+)(?:@([^\s@/]+))?$/
const HOSTBASED_RE = /^([^\s@/]+)@([^\s@/]+)$/
const MAX_DETAIL_CHARS = 200

interface ServiceMatch {
  /** `svc/host` */
  name: string
  /** The realm, or undefined for any realm. */
  realm: string | undefined
}

/** Parses the `principal` option; undefined means any key in the keytab. */
export function parseServicePrincipal(principal: string | undefined): ServiceMatch | undefined {
  if (principal === undefined || principal === '') return undefined
  const sp = SERVICE_PRINCIPAL_RE.exec(principal)
  if (sp !== null) return { name: `${sp[1]}/${sp[2]}`, realm: sp[3] }
  const hb = HOSTBASED_RE.exec(principal)
  if (hb !== null) return { name: `${hb[1]}/${hb[2]}`, realm: undefined }
  throw new SaslgateError(
    'SASLGATE_ERR_CONFIG',
    `negotiate principal: expected service/host[@REALM] or service@host, got ${JSON.stringify(principal)}`,
  )
}

function matchesService(target: string | null | undefined, want: ServiceMatch): boolean {
  if (typeof target !== 'string') return false
  const at = target.lastIndexOf('@')
  if (at <= 0) return false
  const name = target.slice(0, at)
  const realm = target.slice(at + 1)
  return name === want.name && (want.realm === undefined || want.realm === realm)
}

/** Sets KRB5_KTNAME (process-wide). */
export function useAcceptorKeytab(keytab: string): void {
  process.env.KRB5_KTNAME = /^[A-Z]+:/.test(keytab) ? keytab : `FILE:${keytab}`
}

export class NegotiateAcceptor {
  readonly #service: ServiceMatch | undefined
  readonly #allow: ReadonlySet<string>
  readonly #timeoutMs: number
  readonly #maxInFlight: number
  readonly #maxTokenChars: number
  #inFlight = 0
  #closed = false

  constructor(opts: NegotiateAcceptorOptions) {
    const d = DEFAULT_NEGOTIATE_ACCEPTOR_OPTIONS
    this.#service = parseServicePrincipal(opts.principal)
    if (!Array.isArray(opts.allow) || opts.allow.length === 0) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'negotiate allow: at least one principal')
    }
    for (const p of opts.allow) {
      if (typeof p !== 'string' || !/^[^\s@]+@[^\s@]+$/.test(p)) {
        throw new SaslgateError(
          'SASLGATE_ERR_CONFIG',
          `negotiate allow: ${JSON.stringify(p)} is not a full principal (name@REALM)`,
        )
      }
    }
    this.#allow = new Set(opts.allow)
    this.#timeoutMs = positiveInt(opts.timeoutMs ?? d.timeoutMs, 'negotiate timeoutMs')
    this.#maxInFlight = positiveInt(opts.maxInFlight ?? d.maxInFlight, 'negotiate maxInFlight')
    this.#maxTokenChars = positiveInt(
      opts.maxTokenChars ?? d.maxTokenChars,
      'negotiate maxTokenChars',
    )
    if (opts.keytab !== undefined && opts.keytab !== '') useAcceptorKeytab(opts.keytab)
  }

  /** GSSAPI calls still running (timed-out ones included). */
  get inFlight(): number {
    return this.#inFlight
  }

  /**
   * Checks one base64 token (the part after `Negotiate `). Never throws: anything wrong is a
   * rejection. `replyToken` (the mutual-authentication answer) goes back to the caller as
   * `WWW-Authenticate: Negotiate <replyToken>`.
   */
  async accept(base64Token: string): Promise<NegotiateResult> {
    const reject = (reason: NegotiateRejectReason, detail?: string): NegotiateResult =>
      detail === undefined
        ? { ok: false, code: 'SASLGATE_ERR_NEGOTIATE_REJECTED', reason }
        : { ok: false, code: 'SASLGATE_ERR_NEGOTIATE_REJECTED', reason, detail }
    if (this.#closed) return reject('closed')
    if (
      typeof base64Token !== 'string' ||
      base64Token.length === 0 ||
      base64Token.length > this.#maxTokenChars ||
      base64Token.length % 4 !== 0 ||
      !BASE64_RE.test(base64Token)
    ) {
      return reject('malformed')
    }
    if (this.#inFlight >= this.#maxInFlight) return reject('busy')

    this.#inFlight++
    const work = (async () => {
      try {
        const k = gss()
        // '' = no acceptor credential: any key in the keytab, no DNS (see the file comment).
        const server = await k.initializeServer('')
        const reply = await server.step(base64Token)
        return { server, reply }
      } finally {
        this.#inFlight--
      }
    })()
    let outcome: Awaited<typeof work> | typeof TIMED_OUT
    try {
      outcome = await within(work, this.#timeoutMs)
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err)
      return reject('gssapi', msg.slice(0, MAX_DETAIL_CHARS))
    }
    if (outcome === TIMED_OUT) {
      work.catch(() => {}) // settles later on its pool thread; nobody waits for it
      return reject('timeout')
    }
    const { server, reply } = outcome
    const principal = server.username
    // The binding reports success even on GSS_S_CONTINUE_NEEDED; MIT then has no client name
    // yet, so a non-empty name is what proves the context completed.
    if (!server.contextComplete || typeof principal !== 'string' || principal === '') {
      return reject('gssapi', 'the security context did not complete')
    }
    if (this.#service !== undefined && !matchesService(server.targetName, this.#service)) {
      return reject('wrong_service')
    }
    if (!this.#allow.has(principal)) {
      return {
        ok: false,
        code: 'SASLGATE_ERR_NEGOTIATE_NOT_ALLOWED',
        reason: 'not_allowed',
        principal,
      }
    }
    return typeof reply === 'string' && reply !== ''
      ? { ok: true, principal, replyToken: reply }
      : { ok: true, principal }
  }

  /** Further accepts are rejected. GSSAPI calls already running finish on their own. */
  async close(): Promise<void> {
    this.#closed = true
  }
}
