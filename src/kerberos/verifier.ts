/**
 * The Kerberos password check: AS exchange with the user's password, a service ticket for
 * the verify principal, and that ticket checked against our keytab, so a rogue KDC cannot
 * make a password pass. libkrb5 (through the addon) builds and reads every message; the
 * transport moves the bytes, so every wait has our deadline and no thread waits on a KDC.
 *
 * Before any KDC reply reaches libkrb5 it is inspected (unauthenticated, so a spoofer's):
 * string-to-key iteration counts above the enctype's ceiling are refused, and so is a hint
 * that offers none of the allowed enctypes (`kerberos.enctypes`: a downgrade to rc4 or des3).
 *
 * At most one string-to-key per check, by construction: at the first reply that asks for
 * pre-authentication the user's key is derived once, here (OpenSSL's PBKDF2 through
 * node:crypto, off the event loop, ~3x cheaper than libk5crypto's built-in SHA-1) or by
 * libkrb5 in the addon (other enctypes, or `kerberos.deriveKeys` off), and the exchange
 * restarts from a MEMORY keytab holding that key. From then on libkrb5 only looks keys up;
 * its password path would run string-to-key again for every reply naming other parameters
 * (a spoofed PREAUTH_FAILED, MORE_PREAUTH_DATA_REQUIRED or AS-REP). The password path only
 * ever sees replies after which libkrb5 derives nothing or stops: an AS-REP to a request
 * without pre-authentication (one string-to-key, then done) or a final error.
 *
 * Retry on the primary (`retryOnPrimary`, off by default), as libkrb5's
 * krb5_get_init_creds_password does (gic_pwd.c): a password changed a moment ago may not have
 * reached a replica yet. When a KDC that is not one of the realm's primaries answered a
 * pre-authenticated request with PREAUTH_FAILED, or said it does not know the principal (a
 * principal just created; retried too so that an unknown user costs what a wrong password
 * costs: the same budget units and round trips, no enumeration by counting), the check is
 * redone once against the primaries only, if the caller's `reserveRetry` gives it one more
 * budget unit. The AS exchange restarts in the same libkrb5 session from the key already
 * derived (`asRestart`): no second string-to-key when the primary's hint names the same
 * parameters; other parameters get node:crypto's derivation, never libkrb5's (when only
 * libkrb5 could derive them the retry is given up before the primary sees a guess). The
 * primary's verdict is the answer; if it cannot be reached (timeout, breakers, deadline) the
 * replica's stands, as in libkrb5.
 */
import { type ErrorCode, isSaslgateError, type Reason, Reasons, SaslgateError } from '../errors.js'
import { DEFAULT_ENCTYPES, parseEnctypes, S2K_DEFAULT_ITERATIONS } from './enctypes.js'
import {
  checkEnctypes,
  checkS2kSafety,
  inspectKdcReply,
  type KdcReplyInfo,
  KrbErrorCode,
  type S2kChoice,
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
import type { KdcTransport, PasswordVerifier, VerifyOptions, VerifyResult } from './types.js'

export interface VerifierOptions {
  transport: KdcTransport
  /** The verify principal for a realm, fully qualified (`host/name@REALM`). */
  verifyPrincipal: (realm: string) => string
  /** Keytab holding the verify principal's keys; empty: libkrb5's default (`KRB5_KTNAME`). */
  keytab: string
  /** `as`: service ticket in the AS exchange (2 round trips); `tgs`: a separate TGS exchange. */
  serviceTicketVia: 'as' | 'tgs'
  /**
   * Refuse KDC replies asking for more PBKDF2 iterations than this, for every enctype; 0:
   * a ceiling per enctype, 4x its default (`s2kCeiling` in enctypes.ts).
   */
  maxS2kIterations: number
  /** The enctypes the AS exchange may use, by name, in preference order. */
  enctypes: readonly string[]
  /** Refuse a string-to-key hint whose salt is not the principal's default salt. */
  requireDefaultSalt: boolean
  /** Derive keys with node:crypto where we can (else libkrb5 does string-to-key). */
  deriveKeys: boolean
  /** Lifetime asked for the throw-away tickets. */
  ticketLifetimeS: number
  /** Bound on round trips of one exchange (a loop guard). */
  maxRoundTrips: number
  /**
   * Redo a replica's PREAUTH_FAILED or unknown-principal verdict once on the realm's primary
   * KDCs (the transport's `isPrimary`, `primaryOnly`), given a budget unit by `reserveRetry`.
   */
  retryOnPrimary: boolean
  /** Called when a KDC reply is refused before libkrb5 sees it (for a log line). */
  onRefusedReply?: (event: RefusedReplyEvent) => void
  /** Called after each retry on the primary KDC (for a log line and a counter). */
  onPrimaryRetry?: (event: PrimaryRetryEvent) => void
  /**
   * Told when the KDC says it does not know the verify principal (`known: false`, again at
   * most every VERIFY_PRINCIPAL_REPORT_MS while it lasts) and when it knows it again.
   */
  onVerifyPrincipal?: (event: { principal: string; known: boolean }) => void
}

/** A KDC reply refused by the inspection: never a password, key or salt. */
export interface RefusedReplyEvent {
  realm: string
  /** `host:port` of the KDC that sent it. */
  kdc: string
  reason: Reason
  /** What was wrong, e.g. `no_allowed_enctype (offered 23)`. */
  detail: string
}

/** One retry on the primary KDC: never a principal, password or key. */
export interface PrimaryRetryEvent {
  realm: string
  /** `host:port` of the replica whose verdict was retried. */
  replica: string
  /** The replica's verdict (`bad_password`, `unknown_principal`). */
  replicaReason: Reason
  /**
   * `answered`: the primary's verdict is the answer (`reason`); `unreached`: the primary
   * could not be reached, the replica's verdict stands; `given_up`: only libkrb5 could have
   * derived the key the primary asked for, the replica's verdict stands.
   */
  outcome: 'answered' | 'unreached' | 'given_up'
  /** The check's answer after the retry. */
  reason: Reason
}

export const DEFAULT_VERIFIER_OPTIONS = {
  keytab: '',
  serviceTicketVia: 'as',
  maxS2kIterations: 0,
  enctypes: DEFAULT_ENCTYPES,
  requireDefaultSalt: false,
  deriveKeys: true,
  ticketLifetimeS: 300,
  maxRoundTrips: 8,
  retryOnPrimary: false,
} as const satisfies Partial<VerifierOptions>

type Outcome = { done: true; result: VerifyResult } | { done: false; step: StepResult }

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

/** What one check has done so far: round trips, and whether pre-authentication went out. */
interface Progress {
  n: number
  /** A request went out after the KDC asked for pre-authentication (a counted guess). */
  preauthSent: boolean
  /** The KDC showed it knows the verify principal (AS mode: it asked for preauth). */
  serverKnown: boolean
  /** The KDC whose reply the AS exchange last read (the one whose verdict ended it). */
  lastKdc?: string
  /** The AS exchange ended with a KDC's error (not the TGS exchange, not a local failure). */
  asRefused?: boolean
  /** The string-to-key parameters of the key the session holds, once derived. */
  keyedWith?: S2kChoice
}

/** The retry on the primary reuses the first exchange's key (undefined: none was derived). */
interface Retry {
  prior: S2kChoice | undefined
}

/** The retry met parameters only libkrb5 could derive a key for: it is given up. */
class RetryGivenUp extends Error {}

/** A retry whose answer is no verdict of the primary's: the replica's verdict stands. */
const PRIMARY_UNREACHED: ReadonlySet<Reason> = new Set<Reason>([
  'kdc_unavailable',
  'breakers_open',
  'deadline',
])

/** The replica verdicts a retry on the primary may overturn. */
const RETRIED: ReadonlySet<Reason> = new Set<Reason>(['bad_password', 'unknown_principal'])

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  return a.equals(b)
}

/** A missing verify principal is reported again at most this often while it lasts. */
export const VERIFY_PRINCIPAL_REPORT_MS = 60_000

function result(reason: Reason, p: Progress, krb5Code?: number): VerifyResult {
  const r: VerifyResult = { reason, roundTrips: p.n, preauthSent: p.preauthSent }
  if (krb5Code !== undefined) r.krb5Code = krb5Code
  return r
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
    SASLGATE_ERR_ENCTYPE_REFUSED: 'kdc_enctype_refused',
  }
  return map[err.code] ?? 'internal_error'
}

export class KerberosVerifier implements PasswordVerifier {
  readonly #o: VerifierOptions
  /** `#o.enctypes` as numbers, preference order (validated once, at construction). */
  readonly #enctypes: number[]
  /** Verify principals the KDC said it does not know -> when that was last reported. */
  readonly #unknownServers = new Map<string, number>()
  #closed = false

  constructor(
    options: Pick<VerifierOptions, 'transport' | 'verifyPrincipal'> & Partial<VerifierOptions>,
  ) {
    this.#o = { ...DEFAULT_VERIFIER_OPTIONS, ...options }
    this.#enctypes = parseEnctypes(this.#o.enctypes)
    // Validates the override once (throws SASLGATE_ERR_CONFIG), not per reply.
    checkS2kSafety({ kind: 'unknown' }, this.#o.maxS2kIterations)
    const max = this.#o.maxS2kIterations
    for (const etype of this.#enctypes) {
      const def = S2K_DEFAULT_ITERATIONS.get(etype)
      if (max > 0 && def !== undefined && max < def) {
        throw new SaslgateError(
          'SASLGATE_ERR_CONFIG',
          `config option kerberos.maxS2kIterations: ${max} is below the default count of enctype ${etype} (${def}); every check with it would be refused`,
        )
      }
    }
  }

  allKdcsDown(realm: string): boolean {
    return this.#o.transport.allOpen(realm)
  }

  async verify(
    principal: string,
    password: Buffer,
    signal: AbortSignal,
    options: VerifyOptions = {},
  ): Promise<VerifyResult> {
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
    const r = await this.#check(principal, server, realm, password, signal, progress, options)
    return this.#noteServer(server, r, progress)
  }

  async #check(
    principal: string,
    server: string,
    realm: string,
    password: Buffer,
    signal: AbortSignal,
    progress: Progress,
    options: VerifyOptions,
  ): Promise<VerifyResult> {
    const { Session, codes } = krb5()
    const session = new Session({
      client: principal,
      server,
      asService: this.#o.serviceTicketVia === 'as',
      requireInitial: this.#o.serviceTicketVia === 'as',
      enctypes: this.#enctypes,
      ticketLifetimeS: this.#o.ticketLifetimeS,
    })
    try {
      const first = await this.#exchange(session, realm, password, signal, progress, codes)
      if (!(await this.#retryWanted(realm, first, progress, signal, options))) return first
      const again: Progress = { n: 0, preauthSent: false, serverKnown: false }
      const retry: Retry = { prior: progress.keyedWith }
      let second: VerifyResult | undefined
      try {
        second = await this.#exchange(session, realm, password, signal, again, codes, retry)
      } catch (err) {
        if (!(err instanceof RetryGivenUp)) throw err
      }
      progress.n += again.n
      if (again.serverKnown) progress.serverKnown = true
      const retryPreauthSent = again.preauthSent
      const replica = progress.lastKdc ?? ''
      if (second === undefined || PRIMARY_UNREACHED.has(second.reason)) {
        const outcome = second === undefined ? 'given_up' : 'unreached'
        this.#notePrimaryRetry(realm, replica, first.reason, outcome, first.reason)
        return { ...first, roundTrips: progress.n, retryPreauthSent }
      }
      this.#notePrimaryRetry(realm, replica, first.reason, 'answered', second.reason)
      return {
        ...second,
        roundTrips: progress.n,
        preauthSent: progress.preauthSent || retryPreauthSent,
        retriedOnPrimary: true,
        retryPreauthSent,
      }
    } finally {
      session.close()
    }
  }

  /**
   * Whether the first exchange's verdict is one to redo on the primary: a replica's genuine
   * PREAUTH_FAILED or unknown principal, a primary configured, and a budget unit given.
   */
  async #retryWanted(
    realm: string,
    first: VerifyResult,
    progress: Progress,
    signal: AbortSignal,
    options: VerifyOptions,
  ): Promise<boolean> {
    if (!this.#o.retryOnPrimary || options.reserveRetry === undefined || signal.aborted) {
      return false
    }
    // Only a verdict of the AS exchange (a TGS-REP's unknown client comes after the key is
    // gone, and says nothing a replica could be behind on).
    if (!RETRIED.has(first.reason) || !progress.asRefused || progress.lastKdc === undefined) {
      return false
    }
    // Only the KDC's PREAUTH_FAILED after our pre-authentication, not a wrong password told
    // by an AS-REP that does not decrypt (no pre-authentication: libkrb5's own string-to-key).
    if (first.reason === 'bad_password' && (!progress.preauthSent || !progress.keyedWith)) {
      return false
    }
    if (this.#o.transport.isPrimary?.(realm, progress.lastKdc) !== false) return false
    try {
      return await options.reserveRetry()
    } catch {
      return false // a failing hook: no retry, the first verdict stands
    }
  }

  /** One AS exchange (and TGS exchange, in TGS mode) and the ticket's verification. */
  async #exchange(
    session: NativeSession,
    realm: string,
    password: Buffer,
    signal: AbortSignal,
    progress: Progress,
    codes: Krb5Codes,
    retry?: Retry,
  ): Promise<VerifyResult> {
    try {
      const as = await this.#asExchange(session, realm, password, signal, progress, codes, retry)
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
      if (err instanceof RetryGivenUp) throw err
      const reason = reasonForError(err)
      if (err instanceof RefusedReply) this.#noteRefused(realm, err, reason)
      return result(reason, progress)
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

  #notePrimaryRetry(
    realm: string,
    replica: string,
    replicaReason: Reason,
    outcome: PrimaryRetryEvent['outcome'],
    reason: Reason,
  ): void {
    try {
      this.#o.onPrimaryRetry?.({ realm, replica, replicaReason, outcome, reason })
    } catch {
      // a hook's failure must not change the answer
    }
  }

  #noteRefused(realm: string, err: RefusedReply, reason: Reason): void {
    try {
      this.#o.onRefusedReply?.({ realm, kdc: err.kdc, reason, detail: err.message })
    } catch {
      // a hook's failure must not change the answer
    }
  }

  /**
   * Refuses (throws) a reply whose string-to-key hint is unsafe, offers no allowed enctype,
   * or (with `requireDefaultSalt`) names a salt other than the principal's default.
   */
  #inspect(
    reply: Buffer,
    kdc: string,
    defaultSalt: () => Buffer,
  ): { info: KdcReplyInfo; choice: S2kChoice } {
    const info = inspectKdcReply(reply)
    const safety = checkS2kSafety(info, this.#o.maxS2kIterations)
    if (!safety.ok) {
      throw new RefusedReply(
        'SASLGATE_ERR_UNSAFE_S2K',
        kdc,
        `${safety.reason}${safety.etype !== undefined ? ` (enctype ${safety.etype}${safety.iterations !== undefined ? `, ${safety.iterations} iterations` : ''})` : ''}`,
      )
    }
    const enctypes = checkEnctypes(info, this.#enctypes)
    if (!enctypes.ok) {
      throw new RefusedReply(
        'SASLGATE_ERR_ENCTYPE_REFUSED',
        kdc,
        `${enctypes.reason} (offered ${enctypes.offered.join(' ') || 'none'}; allowed ${this.#enctypes.join(' ')})`,
      )
    }
    const salt = enctypes.choice.salt
    if (this.#o.requireDefaultSalt && salt !== undefined && !salt.equals(defaultSalt())) {
      // The salt is as unauthenticated as the count: a spoofer that picks one salt for every
      // user can reuse its dictionary work across all of them.
      throw new RefusedReply('SASLGATE_ERR_UNSAFE_S2K', kdc, 'non_default_salt')
    }
    return { info, choice: enctypes.choice }
  }

  /**
   * The one string-to-key of a check: derives the key for `choice` and restarts the AS
   * exchange from it (node:crypto for AES when `deriveKeys`, else libkrb5 in the addon).
   */
  async #switchToKey(
    session: NativeSession,
    password: Buffer,
    choice: S2kChoice,
    signal: AbortSignal,
  ): Promise<StepResult> {
    if (this.#o.deriveKeys && supportsEtype(choice.etype)) {
      const deriving = deriveKey({
        etype: choice.etype,
        password,
        salt: choice.salt ?? session.defaultSalt(),
        iterations: s2kIterations(choice.etype, choice.s2kparams)!,
      })
      let key: Buffer | undefined
      try {
        key = await bounded(deriving, signal)
        // The addon copies the key into a wiped buffer of its own before this returns.
        return await bounded(session.useKey(choice.etype, key), signal)
      } finally {
        // Wiped however this ends; a derivation outliving the deadline is wiped when it lands.
        if (key !== undefined) key.fill(0)
        else
          void deriving.then(
            (k) => k.fill(0),
            () => {},
          )
      }
    }
    return bounded(
      session.usePassword(choice.etype, password, choice.salt ?? null, choice.s2kparams ?? null),
      signal,
    )
  }

  async #asExchange(
    session: NativeSession,
    realm: string,
    password: Buffer,
    signal: AbortSignal,
    trips: Progress,
    codes: Krb5Codes,
    retry?: Retry,
  ): Promise<Outcome> {
    // The retry restarts from the key the first exchange derived, when it derived one.
    const prior = retry?.prior
    let step = await bounded(
      prior !== undefined ? session.asRestart() : session.asStart(password),
      signal,
    )
    let tcp = false
    let kdc: string | undefined
    // Whether the one string-to-key of this check has run (see the header).
    let keyed = false
    let preauthAsked = false
    for (;;) {
      if (step.code === codes.KRB5KRB_ERR_RESPONSE_TOO_BIG && step.continue) tcp = true
      else if (step.code !== 0) {
        const reason = reasonForAsCode(step.code, trips.preauthSent)
        trips.asRefused = true
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
        ...(retry !== undefined ? { primaryOnly: true } : {}),
      })
      trips.n++
      kdc = sent.kdc
      trips.lastKdc = kdc
      if (sent.protocol === 'tcp') tcp = true
      const { info, choice } = this.#inspect(sent.reply, sent.kdc, () => session.defaultSalt())
      if (
        info.kind === 'krb-error' &&
        (info.errorCode === KdcError.PREAUTH_REQUIRED ||
          info.errorCode === KdcError.MORE_PREAUTH_DATA_REQUIRED)
      ) {
        preauthAsked = true
        // In AS mode the KDC looks the service up before it asks for pre-authentication.
        if (this.#o.serviceTicketVia === 'as') trips.serverKnown = true
      }
      if (!keyed && asksForPreauth(info)) {
        keyed = true
        if (prior === undefined || !this.#sameKey(prior, choice, session)) {
          // A retry never runs libkrb5's string-to-key: the check already had its one.
          if (prior !== undefined && !(this.#o.deriveKeys && supportsEtype(choice.etype))) {
            throw new RetryGivenUp()
          }
          const restarted = await this.#switchToKey(session, password, choice, signal)
          if (restarted.code !== 0) {
            return { done: true, result: result('internal_error', trips, restarted.code) }
          }
        }
        trips.keyedWith = choice
      }
      step = await bounded(session.asStep(sent.reply), signal)
    }
  }

  /** Whether `choice` names the key derived for `prior` (same enctype, salt and count). */
  #sameKey(prior: S2kChoice, choice: S2kChoice, session: NativeSession): boolean {
    if (prior.etype !== choice.etype) return false
    const salt = (c: S2kChoice) => c.salt ?? session.defaultSalt()
    if (!salt(prior).equals(salt(choice))) return false
    if (sameBytes(prior.s2kparams, choice.s2kparams)) return true
    // Absent parameters are the enctype's default count: the same key as naming it.
    const count = s2kIterations(prior.etype, prior.s2kparams)
    return count !== undefined && count === s2kIterations(choice.etype, choice.s2kparams)
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
      // The KDC that answered the AS exchange first (after a retry: the primary).
      const sent = await this.#o.transport.send(step.realm ?? realm, step.out, {
        signal,
        tcp,
        preferKdc: trips.lastKdc,
      })
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

/** A KDC reply refused by the inspection, with the KDC that sent it. */
class RefusedReply extends SaslgateError {
  readonly kdc: string
  constructor(code: ErrorCode, kdc: string, detail: string) {
    super(code, detail)
    this.kdc = kdc
  }
}

/**
 * A KRB-ERROR after which libkrb5's password path would run pre-authentication, i.e.
 * string-to-key (get_in_tkt.c `init_creds_step_reply`, 1.20): PREAUTH_REQUIRED,
 * PREAUTH_FAILED and MORE_PREAUTH_DATA_REQUIRED with padata. Any other error ends the
 * exchange or restarts it without a key.
 */
function asksForPreauth(info: KdcReplyInfo): boolean {
  if (info.kind !== 'krb-error') return false
  if (
    info.errorCode !== KrbErrorCode.preauthRequired &&
    info.errorCode !== KrbErrorCode.preauthFailed &&
    info.errorCode !== KrbErrorCode.morePreauthDataRequired
  ) {
    return false
  }
  return (info.paTypes?.length ?? 0) > 0
}
