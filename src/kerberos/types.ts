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
}

/** Checks a password against the KDCs of the principal's realm, within `signal`'s deadline. */
export interface PasswordVerifier {
  verify(principal: string, password: Buffer, signal: AbortSignal): Promise<VerifyResult>
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
}

/** Sends Kerberos messages to the KDCs of a realm. Owns timeouts, retries, failover, breakers. */
export interface KdcTransport {
  send(realm: string, request: Buffer, options: KdcSendOptions): Promise<KdcReply>
  /** True when every KDC breaker of the realm is open. */
  allOpen(realm: string): boolean
  close(): Promise<void>
}
