/**
 * Every reason code and error code saslgate uses, in one table.
 *
 * Reasons explain a decision internally (logs, metrics, traces). They never leave the
 * process towards an untrusted caller: the saslauthd reply and the RPC answer carry only
 * the decision (`ok`, `invalid`, `unavailable`), so a caller cannot tell an unknown user
 * from a wrong password.
 */

/** The closed set of decisions a caller may see. */
export type Decision = 'ok' | 'invalid' | 'unavailable'

/** Why a request was decided as it was (internal only). */
export const Reasons = {
  ok: { decision: 'ok', text: 'password verified against the KDC and the keytab' },
  cached_ok: { decision: 'ok', text: 'known-good credentials from the verdict cache' },
  offline_ok: {
    decision: 'ok',
    text: 'every KDC unreachable; known-good credentials within staleness',
  },
  bad_password: { decision: 'invalid', text: 'the KDC refused the password' },
  unknown_principal: { decision: 'invalid', text: 'the KDC does not know the principal' },
  password_expired: { decision: 'invalid', text: 'the password has expired' },
  principal_disabled: { decision: 'invalid', text: 'the principal may not get tickets' },
  principal_locked: { decision: 'invalid', text: 'the KDC locked the principal out' },
  verify_failed: {
    decision: 'invalid',
    text: 'the ticket did not verify against the keytab (rogue or misconfigured KDC)',
  },
  unmappable_login: { decision: 'invalid', text: 'the login does not map to an allowed principal' },
  malformed_request: { decision: 'invalid', text: 'empty, over-long, or NUL-containing field' },
  cached_invalid: { decision: 'invalid', text: 'known-bad credentials from the verdict cache' },
  guard_blocked: { decision: 'invalid', text: 'the principal is in backoff after failures' },
  guard_budget: {
    decision: 'invalid',
    text: 'the principal used its budget of distinct wrong passwords sent to the KDC',
  },
  offline_refused: { decision: 'invalid', text: 'every KDC unreachable and no known-good verdict' },
  kdc_unavailable: { decision: 'unavailable', text: 'no KDC answered before the deadline' },
  breakers_open: { decision: 'unavailable', text: 'every KDC circuit breaker is open' },
  shed: { decision: 'unavailable', text: 'admission queue full or deadline too close' },
  deadline: { decision: 'unavailable', text: 'the request deadline passed' },
  unsafe_kdc_reply: {
    decision: 'unavailable',
    text: 'a KDC reply asked for string-to-key parameters saslgate refuses (count, salt)',
  },
  kdc_enctype_refused: {
    decision: 'unavailable',
    text: 'a KDC reply offered none of the allowed enctypes (kerberos.enctypes) and was refused',
  },
  kdc_refused: {
    decision: 'unavailable',
    text: 'the KDC answered an error that says nothing about the user (not cached, not counted)',
  },
  verify_principal_unknown: {
    decision: 'unavailable',
    text: 'the KDC does not know the verify principal (a configuration error: every check fails)',
  },
  kdc_reply_modified: {
    decision: 'unavailable',
    text: 'a KDC reply failed its integrity check or does not match the request (forged or broken)',
  },
  kdc_clock_skew: {
    decision: 'unavailable',
    text: "a KDC reply's time is outside the allowed clock skew (skewed clock or forged reply)",
  },
  krb5_local_error: {
    decision: 'unavailable',
    text: 'libkrb5 failed locally (keytab, parameters, memory, unknown code): fail closed',
  },
  internal_error: { decision: 'unavailable', text: 'an internal error (fail closed)' },
  upstream_unavailable: { decision: 'unavailable', text: 'no saslgate service answered in time' },
  upstream_refused_caller: {
    decision: 'unavailable',
    text: 'the saslgate service did not accept the shim as a caller (token, certificate, Negotiate)',
  },
  remote_ok: { decision: 'ok', text: 'the saslgate service answered OK' },
  remote_invalid: { decision: 'invalid', text: 'the saslgate service answered invalid' },
  remote_unavailable: {
    decision: 'unavailable',
    text: 'the saslgate service could not decide in time',
  },
} as const satisfies Record<string, { decision: Decision; text: string }>

export type Reason = keyof typeof Reasons

export function decisionOf(reason: Reason): Decision {
  return Reasons[reason].decision
}

/** Error codes for thrown errors (configuration, lifecycle, transport). Match on `code`. */
export const ErrorCodes = {
  SASLGATE_ERR_CONFIG: 'invalid configuration (the message names the option)',
  SASLGATE_ERR_CLOSED: 'the object was closed',
  SASLGATE_ERR_KDC_TIMEOUT: 'a KDC did not answer within the attempt timeout',
  SASLGATE_ERR_KDC_UNREACHABLE: 'a KDC refused or dropped the connection',
  SASLGATE_ERR_KDC_BAD_REPLY: 'a KDC sent bytes that are not a Kerberos reply',
  SASLGATE_ERR_KDC_DNS: 'a KDC host name could not be resolved (hosts file, then DNS)',
  SASLGATE_ERR_NO_KDC: 'no KDC is configured for the realm',
  SASLGATE_ERR_BREAKERS_OPEN: 'every KDC breaker for the realm is open',
  SASLGATE_ERR_DEADLINE: 'the overall deadline passed',
  SASLGATE_ERR_ABORTED: 'the caller aborted the operation',
  SASLGATE_ERR_UNSAFE_S2K: 'a KDC reply asked for refused string-to-key parameters (count, salt)',
  SASLGATE_ERR_ENCTYPE_REFUSED: 'a KDC reply offered none of the allowed enctypes (a downgrade)',
  SASLGATE_ERR_DER: 'malformed or unsupported DER (ASN.1) encoding',
  SASLGATE_ERR_S2K_UNSUPPORTED:
    'no node:crypto string-to-key for this enctype or input (fall back to libkrb5)',
  SASLGATE_ERR_KRB5: 'libkrb5 returned an error',
  SASLGATE_ERR_KEYTAB:
    'the keytab cannot be read or lacks the verify principal (the message names the file and errno or principal)',
  SASLGATE_ERR_SOCKET_IN_USE: 'another live process answers on the socket',
  SASLGATE_ERR_SOCKET_PATH:
    'the socket path cannot be used (not a socket, cannot be probed, removed or chmod-ed)',
  SASLGATE_ERR_FRAME: 'a malformed saslauthd frame',
  SASLGATE_ERR_TEST_REALM: 'a throw-away test realm or fake KDC failed (see the message)',
  SASLGATE_ERR_NEGOTIATE: 'a Negotiate (SPNEGO) exchange with the service failed',
  SASLGATE_ERR_NEGOTIATE_REJECTED: 'an HTTP Negotiate token was refused',
  SASLGATE_ERR_NEGOTIATE_NOT_ALLOWED: 'the Negotiate client is not on the allow-list',
  SASLGATE_ERR_LOAD: 'the load generator or a benchmarked server (storm, bench, demo) failed',
} as const

export type ErrorCode = keyof typeof ErrorCodes

export class SaslgateError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SaslgateError'
    this.code = code
  }
}

export function isSaslgateError(err: unknown, code?: ErrorCode): err is SaslgateError {
  return err instanceof SaslgateError && (code === undefined || err.code === code)
}
