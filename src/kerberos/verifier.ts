/**
 * The Kerberos password check: AS exchange with the user's password, a service ticket for
 * the verify principal, and that ticket checked against our keytab, so a rogue KDC cannot
 * make a password pass. libkrb5 (through the addon) builds and reads every message; the
 * transport moves the bytes, so every wait has our deadline and no thread waits on a KDC.
 *
 * Before any KDC reply reaches libkrb5 its PA-ETYPE-INFO2 is read: absurd string-to-key
 * iteration counts are refused (the reply is unauthenticated), and for the enctypes we
 * handle the user's key is derived here with OpenSSL's PBKDF2 (node:crypto, off the event
 * loop) and handed to libkrb5 as a MEMORY keytab entry: ~3x cheaper than libk5crypto's
 * built-in SHA-1. Any other enctype or salt takes libkrb5's own password path.
 */
import { type ErrorCode, isSaslgateError, type Reason, Reasons, SaslgateError } from '../errors.js'
import {
  checkS2kSafety,
  type EtypeInfo2Entry,
  inspectKdcReply,
  s2kIterations,
} from './etype-info.js'
import {
  KdcError,
  reasonForAsCode,
  reasonForTgsCode,
  reasonForVerifyCode,
} from './krb5-verdicts.js'
import { type Krb5Codes, krb5, type NativeSession, type StepResult } from './native.js'
import { deriveKey, supportsEtype } from './string-to-key.js'
import type { KdcTransport, PasswordVerifier, VerifyResult } from './types.js'

export interface VerifierOptions {
  transport: KdcTransport
  /** The verify principal for a realm, fully qualified (`host/name@REALM`). */
  verifyPrincipal: (realm: string) => string
  /** Keytab holding the verify principal's keys; empty: libkrb5's default (`KRB5_KTNAME`). */
  keytab: string
  /** `as`: service ticket in the AS exchange (2 round trips); `tgs`: a separate TGS exchange. */
  serviceTicketVia: 'as' | 'tgs'
  /** Refuse KDC replies asking for more PBKDF2 iterations than this. */
  maxS2kIterations: number
  /** Derive keys with node:crypto where we can (else libkrb5 does string-to-key). */
  deriveKeys: boolean
  /** Lifetime asked for the throw-away tickets. */
  ticketLifetimeS: number
  /** Bound on round trips of one exchange (a loop guard). */
  maxRoundTrips: number
  /**
   * Told when the KDC says it does not know the verify principal (`known: false`, again at
   * most every VERIFY_PRINCIPAL_REPORT_MS while it lasts) and when it knows it again.
   */
  onVerifyPrincipal?: (event: { principal: string; known: boolean }) => void
}

export const DEFAULT_VERIFIER_OPTIONS = {
  keytab: '',
  serviceTicketVia: 'as',
  maxS2kIterations: 100_000,
  deriveKeys: true,
  ticketLifetimeS: 300,
  maxRoundTrips: 8,
} as const satisfies Partial<VerifierOptions>

type Outcome = { done: true; result: VerifyResult } | { done: false; step: StepResult }

/** What one check has done so far: round trips, and whether pre-authentication went out. */
interface Progress {
  n: number
  /** A request went out after the KDC asked for pre-authentication (a counted guess). */
  preauthSent: boolean
  /** The KDC showed it knows the verify principal (AS mode: it asked for preauth). */
  serverKnown: boolean
}

/** A missing verify principal is reported again at most this often while it lasts. */
export const VERIFY_PRINCIPAL_REPORT_MS = 60_000

function result(reason: Reason, p: Progress, krb5Code?: number): VerifyResult {
  const r: VerifyResult = { reason, roundTrips: p.n, preauthSent: p.preauthSent }
  if (krb5Code !== undefined) r.krb5Code = krb5Code
  return r
}

/** Races a promise against the signal: libkrb5 work cannot be interrupted, our wait can. */
function bounded<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted)
    return Promise.reject(new SaslgateError('SASLGATE_ERR_DEADLINE', 'deadline passed'))
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new SaslgateError('SASLGATE_ERR_DEADLINE', 'deadline passed'))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

function reasonForError(err: unknown): Reason {
  if (!isSaslgateError(err)) return 'internal_error'
  const map: Partial<Record<ErrorCode, Reason>> = {
    SASLGATE_ERR_BREAKERS_OPEN: 'breakers_open',
    SASLGATE_ERR_DEADLINE: 'deadline',
    SASLGATE_ERR_ABORTED: 'deadline',
    SASLGATE_ERR_KDC_TIMEOUT: 'kdc_unavailable',
    SASLGATE_ERR_KDC_UNREACHABLE: 'kdc_unavailable',
    SASLGATE_ERR_KDC_BAD_REPLY: 'kdc_unavailable',
    SASLGATE_ERR_NO_KDC: 'kdc_unavailable',
    SASLGATE_ERR_UNSAFE_S2K: 'unsafe_kdc_reply',
  }
  return map[err.code] ?? 'internal_error'
}

export class KerberosVerifier implements PasswordVerifier {
  readonly #o: VerifierOptions
  /** Verify principals the KDC said it does not know -> when that was last reported. */
  readonly #unknownServers = new Map<string, number>()
  #closed = false

  constructor(
    options: Pick<VerifierOptions, 'transport' | 'verifyPrincipal'> & Partial<VerifierOptions>,
  ) {
    this.#o = { ...DEFAULT_VERIFIER_OPTIONS, ...options }
  }

  allKdcsDown(realm: string): boolean {
    return this.#o.transport.allOpen(realm)
  }

  async verify(principal: string, password: Buffer, signal: AbortSignal): Promise<VerifyResult> {
    if (this.#closed) throw new SaslgateError('SASLGATE_ERR_CLOSED', 'verifier closed')
    const at = principal.lastIndexOf('@')
    const realm = principal.slice(at + 1)
    if (
      at <= 0 ||
      realm === '' ||
      principal.includes('\0') ||
      password.length === 0 ||
      password.includes(0)
    ) {
      return { reason: 'malformed_request', roundTrips: 0, preauthSent: false }
    }
    if (this.#o.transport.allOpen(realm)) {
      return { reason: 'breakers_open', roundTrips: 0, preauthSent: false }
    }
    const server = this.#o.verifyPrincipal(realm)
    const progress: Progress = { n: 0, preauthSent: false, serverKnown: false }
    const r = await this.#check(principal, server, realm, password, signal, progress)
    return this.#noteServer(server, r, progress)
  }

  async #check(
    principal: string,
    server: string,
    realm: string,
    password: Buffer,
    signal: AbortSignal,
    progress: Progress,
  ): Promise<VerifyResult> {
    const { Session, codes } = krb5()
    const session = new Session({
      client: principal,
      server,
      asService: this.#o.serviceTicketVia === 'as',
      ticketLifetimeS: this.#o.ticketLifetimeS,
    })
    try {
      const as = await this.#asExchange(session, realm, password, signal, progress, codes)
      if (as.done) return as.result
      if (this.#o.serviceTicketVia === 'tgs') {
        const tgs = await this.#tgsExchange(session, realm, signal, progress, codes)
        if (tgs.done) return tgs.result
      }
      progress.serverKnown = true // a ticket for it came back
      const v = await bounded(session.verify(this.#o.keytab), signal)
      if (v.code !== 0) return result(reasonForVerifyCode(v.code), progress, v.code)
      return result('ok', progress)
    } catch (err) {
      return result(reasonForError(err), progress)
    } finally {
      session.close()
    }
  }

  /**
   * A KDC that does not know the verify principal fails every check: say so (rate-limited)
   * and, until a check shows the principal exists, answer every check that way. Else an
   * unknown user (refused before the server is looked up) would get "invalid" and a known
   * one "unavailable": an enumeration oracle, and verdicts cached during a config error.
   */
  #noteServer(server: string, r: VerifyResult, progress: Progress): VerifyResult {
    const now = performance.now()
    const reportedAt = this.#unknownServers.get(server)
    if (r.reason === 'verify_principal_unknown') {
      if (reportedAt === undefined || now - reportedAt >= VERIFY_PRINCIPAL_REPORT_MS) {
        this.#unknownServers.set(server, now)
        this.#report(server, false)
      }
      return r
    }
    if (reportedAt === undefined) return r
    if (progress.serverKnown) {
      this.#unknownServers.delete(server)
      this.#report(server, true)
      return r
    }
    if (Reasons[r.reason].decision === 'unavailable') return r
    return { ...r, reason: 'verify_principal_unknown' }
  }

  #report(principal: string, known: boolean): void {
    try {
      this.#o.onVerifyPrincipal?.({ principal, known })
    } catch {
      // a logging hook must never break a check
    }
  }

  async #asExchange(
    session: NativeSession,
    realm: string,
    password: Buffer,
    signal: AbortSignal,
    trips: Progress,
    codes: Krb5Codes,
  ): Promise<Outcome> {
    let step = await bounded(session.asStart(password), signal)
    let tcp = false
    let kdc: string | undefined
    let first = true
    let preauthAsked = false
    for (;;) {
      if (step.code === codes.KRB5KRB_ERR_RESPONSE_TOO_BIG && step.continue) tcp = true
      else if (step.code !== 0) {
        const reason = reasonForAsCode(step.code, trips.preauthSent)
        return { done: true, result: result(reason, trips, step.code) }
      }
      if (!step.continue) return { done: false, step }
      if (trips.n >= this.#o.maxRoundTrips || step.out === null) {
        return { done: true, result: result('internal_error', trips) }
      }
      // From here the KDC may count this password against the user (lockout), whatever
      // comes back (a forged error racing the real PREAUTH_FAILED included): the pipeline
      // keeps the budget unit charged.
      if (preauthAsked) trips.preauthSent = true
      const sent = await this.#o.transport.send(step.realm ?? realm, step.out, {
        signal,
        tcp,
        preferKdc: kdc,
      })
      trips.n++
      kdc = sent.kdc
      if (sent.protocol === 'tcp') tcp = true
      const info = inspectKdcReply(sent.reply)
      if (
        info.kind === 'krb-error' &&
        (info.errorCode === KdcError.PREAUTH_REQUIRED ||
          info.errorCode === KdcError.MORE_PREAUTH_DATA_REQUIRED)
      ) {
        preauthAsked = true
        // In AS mode the KDC looks the service up before it asks for pre-authentication.
        if (this.#o.serviceTicketVia === 'as') trips.serverKnown = true
      }
      const safety = checkS2kSafety(info, this.#o.maxS2kIterations)
      if (!safety.ok) {
        throw new SaslgateError(
          'SASLGATE_ERR_UNSAFE_S2K',
          `KDC ${sent.kdc} sent unusable string-to-key parameters (${safety.reason}${safety.iterations !== undefined ? `, ${safety.iterations} iterations` : ''})`,
        )
      }
      const entries: EtypeInfo2Entry[] = info.eTypeInfo2 ?? []
      if (
        first &&
        this.#o.deriveKeys &&
        info.kind === 'krb-error' &&
        info.errorCode === 25 &&
        entries[0] !== undefined &&
        supportsEtype(entries[0].etype) &&
        entries[0].salt !== undefined
      ) {
        const e = entries[0]
        const key = await bounded(
          deriveKey({
            etype: e.etype,
            password,
            salt: Buffer.from(e.salt as Buffer | string),
            iterations: s2kIterations(e.etype, e.s2kparams) ?? 4096,
          }),
          signal,
        )
        if (key !== null) {
          const restarted = await bounded(session.useKey(e.etype, key), signal)
          key.fill(0)
          if (restarted.code !== 0) {
            return { done: true, result: result('internal_error', trips, restarted.code) }
          }
        }
      }
      first = false
      step = await bounded(session.asStep(sent.reply), signal)
    }
  }

  async #tgsExchange(
    session: NativeSession,
    realm: string,
    signal: AbortSignal,
    trips: Progress,
    codes: Krb5Codes,
  ): Promise<Outcome> {
    let step = await bounded(session.tgsStart(), signal)
    let tcp = false
    let rounds = 0
    for (;;) {
      if (step.code === codes.KRB5KRB_ERR_RESPONSE_TOO_BIG && step.continue) tcp = true
      else if (step.code !== 0) {
        return { done: true, result: result(reasonForTgsCode(step.code), trips, step.code) }
      }
      if (!step.continue) return { done: false, step }
      if (++rounds > this.#o.maxRoundTrips || step.out === null) {
        return { done: true, result: result('internal_error', trips) }
      }
      const sent = await this.#o.transport.send(step.realm ?? realm, step.out, { signal, tcp })
      trips.n++
      if (sent.protocol === 'tcp') tcp = true
      step = await bounded(session.tgsStep(sent.reply), signal)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#o.transport.close()
  }
}
