/**
 * Which libkrb5 results are verdicts on the user, and which are not.
 *
 * Only a verdict about the user may be cached and counted against them: a KDC error is
 * unauthenticated, so anything a forger or a broken KDC can say that does not concern the
 * user's own password or account must not end up as "this password is wrong". The rules:
 *
 * - a wrong password is believed only as the KDC's answer to a pre-authenticated request
 *   (PREAUTH_FAILED after PA-ENC-TIMESTAMP), or as an AS-REP that does not decrypt with the
 *   password's key when no pre-authentication was asked for (a principal without
 *   `requires_preauth`: that is how the KDC says it);
 * - unknown client, expired password, disabled, locked, not yet valid, policy: verdicts on
 *   the account;
 * - everything else is not about the user: service unavailable, an unknown server (the
 *   verify principal: a configuration error), a reply failing integrity after the KDC
 *   accepted our pre-authentication or in the TGS exchange (forged or modified), clock
 *   skew, any other KDC error, and local libkrb5 errors (keytab, bad string-to-key
 *   parameters, EINVAL, ENOMEM, unknown codes). Those are `unavailable`: never cached, never
 *   a guard failure.
 *
 * The codes are MIT's com_err numbers (krb5.h, stable ABI): protocol error n is
 * ERROR_TABLE_BASE_krb5 + n.
 */
import type { Reason } from '../errors.js'

/** ERROR_TABLE_BASE_krb5: KDC protocol error `n` comes back from libkrb5 as this + n. */
export const KRB5_ERROR_BASE = -1765328384

/** KRB-ERROR codes (RFC 4120 §7.5.9) as they are on the wire. */
export const KdcError = {
  NAME_EXP: 1,
  C_PRINCIPAL_UNKNOWN: 6,
  S_PRINCIPAL_UNKNOWN: 7,
  POLICY: 12,
  CLIENT_REVOKED: 18,
  CLIENT_NOTYET: 21,
  KEY_EXPIRED: 23,
  PREAUTH_FAILED: 24,
  PREAUTH_REQUIRED: 25,
  SVC_UNAVAILABLE: 29,
  AP_ERR_BAD_INTEGRITY: 31,
  AP_ERR_SKEW: 37,
  AP_ERR_MODIFIED: 41,
  MORE_PREAUTH_DATA_REQUIRED: 91,
} as const

/** libkrb5's local error codes this module names (krb5.h). */
export const Krb5Local = {
  KDCREP_MODIFIED: -1765328237,
  KDCREP_SKEW: -1765328236,
  KT_NOTFOUND: -1765328203,
  PREAUTH_FAILED: -1765328174,
  KT_KVNONOTFOUND: -1765328154,
  ERR_BAD_S2K_PARAMS: -1765328140,
} as const

/** The KDC protocol error number carried by a libkrb5 code, or undefined for a local one. */
export function kdcErrorOf(code: number): number | undefined {
  const n = code - KRB5_ERROR_BASE
  return n >= 0 && n < 128 ? n : undefined
}

/** Verdicts on the account, whatever the stage. */
function accountVerdict(n: number): Reason | undefined {
  switch (n) {
    case KdcError.C_PRINCIPAL_UNKNOWN:
      return 'unknown_principal'
    case KdcError.KEY_EXPIRED:
      return 'password_expired'
    case KdcError.CLIENT_REVOKED:
      return 'principal_locked'
    case KdcError.POLICY:
    case KdcError.NAME_EXP:
    case KdcError.CLIENT_NOTYET:
      return 'principal_disabled'
    default:
      return undefined
  }
}

/** Not about the user, whatever the stage. */
function notAboutTheUser(code: number): Reason {
  const n = kdcErrorOf(code)
  if (n === undefined) {
    if (code === Krb5Local.KDCREP_MODIFIED) return 'kdc_reply_modified'
    if (code === Krb5Local.KDCREP_SKEW) return 'kdc_clock_skew'
    return 'krb5_local_error' // KT_NOTFOUND, BAD_S2K_PARAMS, EINVAL, ENOMEM, anything else
  }
  switch (n) {
    case KdcError.S_PRINCIPAL_UNKNOWN:
      return 'verify_principal_unknown'
    case KdcError.SVC_UNAVAILABLE:
      return 'kdc_unavailable'
    case KdcError.AP_ERR_SKEW:
      return 'kdc_clock_skew'
    case KdcError.AP_ERR_BAD_INTEGRITY:
    case KdcError.AP_ERR_MODIFIED:
      return 'kdc_reply_modified'
    default:
      return 'kdc_refused'
  }
}

/**
 * The reason for a failing AS step. `preauthSent`: a request carrying pre-authentication
 * (sent after the KDC asked for it) went out in this exchange.
 */
export function reasonForAsCode(code: number, preauthSent: boolean): Reason {
  const n = kdcErrorOf(code)
  if (n !== undefined) {
    const account = accountVerdict(n)
    if (account !== undefined) return account
    // PREAUTH_FAILED to a request without pre-authentication is no answer to anything we
    // asked: a forger's.
    if (n === KdcError.PREAUTH_FAILED) return preauthSent ? 'bad_password' : 'kdc_refused'
    // The AS-REP does not decrypt with the password's key. Without pre-authentication this
    // is the KDC's "wrong password"; after the KDC accepted our pre-authentication (it
    // answered an AS-REP, not PREAUTH_FAILED) the password was right: the reply is forged.
    if (n === KdcError.AP_ERR_BAD_INTEGRITY || n === KdcError.AP_ERR_MODIFIED) {
      return preauthSent ? 'kdc_reply_modified' : 'bad_password'
    }
  }
  // libkrb5's "generic preauthentication failure" is local (no usable mechanism in a
  // PREAUTH_REQUIRED, e.g. a forged one): not a verdict.
  return notAboutTheUser(code)
}

/** The reason for a failing TGS step: the TGS reply says nothing about the password. */
export function reasonForTgsCode(code: number): Reason {
  const n = kdcErrorOf(code)
  if (n !== undefined) {
    const account = accountVerdict(n)
    if (account !== undefined) return account
  }
  return notAboutTheUser(code)
}

/**
 * The reason for a failing `krb5_rd_req` of the service ticket: a ticket our keytab does
 * not accept means the KDC is rogue or broken (`verify_failed`, not cached); a keytab we
 * cannot use at all is a local error.
 */
export function reasonForVerifyCode(code: number): Reason {
  if (kdcErrorOf(code) !== undefined || code === Krb5Local.KT_KVNONOTFOUND) return 'verify_failed'
  return 'krb5_local_error'
}
