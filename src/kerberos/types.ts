import type { Reason } from '../errors.js'

/** The outcome of one Kerberos password check; the decision follows from the reason. */
export interface VerifyResult {
  reason: Reason
  /** KDC round trips used (for metrics and tests). */
  roundTrips: number
  /**
   * A pre-authenticated request (the password's proof) was sent to a KDC: the KDC may have
   * counted it against the user, so its budget unit stays charged. Absent: taken as sent
   * when any round trip was made (fail closed).
   */
  preauthSent?: boolean
  /** libkrb5's error code when the check failed inside libkrb5. */
  krb5Code?: number
  /**
   * The check was redone on a primary KDC after a replica's verdict, and the primary
   * answered: this result is the primary's (`kerberos.retryOnPrimary`).
   */
  retriedOnPrimary?: boolean
  /**
   * The retry's own pre-authenticated request went out (its budget unit, taken through
   * `VerifyOptions.reserveRetry`, stays charged). `preauthSent` covers both exchanges.
   */
  retryPreauthSent?: boolean
}

/** What the caller lends one check. */
export interface VerifyOptions {
  /**
   * Asked before a retry on the primary KDC: take one more unit of the principal's KDC
   * budget (the primary counts the second pre-authenticated request too). False: no retry,
   * the first verdict stands. Absent: no retry.
   */
  reserveRetry?: () => Promise<boolean>
}

/** Checks a password against the KDCs of the principal's realm, within `signal`'s deadline. */
export interface PasswordVerifier {
  verify(
    principal: string,
    password: Buffer,
    signal: AbortSignal,
    options?: VerifyOptions,
  ): Promise<VerifyResult>
  /** True when every KDC breaker of the realm is open (offline mode). */
  allKdcsDown(realm: string): boolean
  close(): Promise<void>
}

export type KdcProtocol = 'udp' | 'tcp'

export interface KdcReply {
  /** The reply bytes (a KRB-ERROR, AS-REP or TGS-REP), without the TCP length prefix. */
  reply: Buffer
  /** `host:port` of the KDC that answered. */
  kdc: string
  protocol: KdcProtocol
  /** 1-based attempt number within this send. */
  attempt: number
}

export interface KdcSendOptions {
  signal: AbortSignal
  /** Send over TCP only (after RESPONSE_TOO_BIG, and for the rest of that exchange). */
  tcp?: boolean
  /** Try this KDC first (keeps one exchange on one KDC while it answers). */
  preferKdc?: string
  /** Send only to the realm's primary KDCs (`kerberos.primaryKdcs`). */
  primaryOnly?: boolean
}

/** Sends Kerberos messages to the KDCs of a realm. Owns timeouts, retries, failover, breakers. */
export interface KdcTransport {
  send(realm: string, request: Buffer, options: KdcSendOptions): Promise<KdcReply>
  /** True when every KDC breaker of the realm is open. */
  allOpen(realm: string): boolean
  /**
   * True when `kdc` (`host:port` of a reply) is one of the realm's primary KDCs; undefined
   * when the realm has none configured (no retry on a primary is possible).
   */
  isPrimary?(realm: string, kdc: string): boolean | undefined
  close(): Promise<void>
}
