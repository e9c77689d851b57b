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
import { type ErrorCode, isSaslgateError, type Reason, SaslgateError } from '../errors.js'
import {
  checkS2kSafety,
  type EtypeInfo2Entry,
  inspectKdcReply,
  s2kIterations,
} from './etype-info.js'
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

export function reasonForKrb5Code(code: number, c: Krb5Codes): Reason {
  switch (code) {
    case c.KRB5KDC_ERR_PREAUTH_FAILED:
    case c.KRB5_PREAUTH_FAILED:
    case c.KRB5KRB_AP_ERR_BAD_INTEGRITY:
    case c.KRB5KRB_AP_ERR_MODIFIED:
      return 'bad_password'
    case c.KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
      return 'unknown_principal'
    case c.KRB5KDC_ERR_KEY_EXP:
      return 'password_expired'
    case c.KRB5KDC_ERR_CLIENT_REVOKED:
      return 'principal_locked'
    case c.KRB5KDC_ERR_POLICY:
    case c.KRB5KDC_ERR_NAME_EXP:
      return 'principal_disabled'
    default:
      return 'kdc_refused'
  }
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
      return { reason: 'malformed_request', roundTrips: 0 }
    }
    if (this.#o.transport.allOpen(realm)) return { reason: 'breakers_open', roundTrips: 0 }
    const { Session, codes } = krb5()
    const session = new Session({
      client: principal,
      server: this.#o.verifyPrincipal(realm),
      asService: this.#o.serviceTicketVia === 'as',
      ticketLifetimeS: this.#o.ticketLifetimeS,
    })
    const trips = { n: 0 }
    try {
      const as = await this.#asExchange(session, realm, password, signal, trips, codes)
      if (as.done) return as.result
      if (this.#o.serviceTicketVia === 'tgs') {
        const tgs = await this.#tgsExchange(session, realm, signal, trips, codes)
        if (tgs.done) return tgs.result
      }
      const v = await bounded(session.verify(this.#o.keytab), signal)
      if (v.code !== 0) return { reason: 'verify_failed', roundTrips: trips.n, krb5Code: v.code }
      return { reason: 'ok', roundTrips: trips.n }
    } catch (err) {
      return { reason: reasonForError(err), roundTrips: trips.n }
    } finally {
      session.close()
    }
  }

  async #asExchange(
    session: NativeSession,
    realm: string,
    password: Buffer,
    signal: AbortSignal,
    trips: { n: number },
    codes: Krb5Codes,
  ): Promise<Outcome> {
    let step = await bounded(session.asStart(password), signal)
    let tcp = false
    let kdc: string | undefined
    let first = true
    for (;;) {
      if (step.code === codes.KRB5KRB_ERR_RESPONSE_TOO_BIG && step.continue) tcp = true
      else if (step.code !== 0) {
        return {
          done: true,
          result: {
            reason: reasonForKrb5Code(step.code, codes),
            roundTrips: trips.n,
            krb5Code: step.code,
          },
        }
      }
      if (!step.continue) return { done: false, step }
      if (trips.n >= this.#o.maxRoundTrips || step.out === null) {
        return { done: true, result: { reason: 'internal_error', roundTrips: trips.n } }
      }
      const sent = await this.#o.transport.send(step.realm ?? realm, step.out, {
        signal,
        tcp,
        preferKdc: kdc,
      })
      trips.n++
      kdc = sent.kdc
      if (sent.protocol === 'tcp') tcp = true
      const info = inspectKdcReply(sent.reply)
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
        const deriving = deriveKey({
          etype: e.etype,
          password,
          salt: Buffer.from(e.salt as Buffer | string),
          iterations: s2kIterations(e.etype, e.s2kparams) ?? 4096,
        })
        let key: Buffer | undefined
        try {
          key = await bounded(deriving, signal)
          // The addon copies the key into a wiped buffer of its own before this returns.
          const restarted = await bounded(session.useKey(e.etype, key), signal)
          if (restarted.code !== 0) {
            return {
              done: true,
              result: { reason: 'internal_error', roundTrips: trips.n, krb5Code: restarted.code },
            }
          }
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
      first = false
      step = await bounded(session.asStep(sent.reply), signal)
    }
  }

  async #tgsExchange(
    session: NativeSession,
    realm: string,
    signal: AbortSignal,
    trips: { n: number },
    codes: Krb5Codes,
  ): Promise<Outcome> {
    let step = await bounded(session.tgsStart(), signal)
    let tcp = false
    let rounds = 0
    for (;;) {
      if (step.code === codes.KRB5KRB_ERR_RESPONSE_TOO_BIG && step.continue) tcp = true
      else if (step.code !== 0) {
        const reason: Reason =
          step.code === codes.KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN
            ? 'kdc_refused'
            : reasonForKrb5Code(step.code, codes)
        return { done: true, result: { reason, roundTrips: trips.n, krb5Code: step.code } }
      }
      if (!step.continue) return { done: false, step }
      if (++rounds > this.#o.maxRoundTrips || step.out === null) {
        return { done: true, result: { reason: 'internal_error', roundTrips: trips.n } }
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
