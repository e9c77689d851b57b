import type { Decision, Reason } from './errors.js'

/** One password check, as any front door (saslauthd socket, RPC) hands it over. */
export interface AuthRequest {
  /** The login as the client sent it (Cyrus lowercases it). */
  login: string
  /** The password bytes, exactly as sent. Never logged, never stored unkeyed. */
  password: Buffer
  /** The service name (`imap`, `smtp`, ...). */
  service: string
  /** The realm field (Cyrus puts the part after the last `@` here); may be empty. */
  realm: string
  /** `ip;port` of the end user when the client sends it (5-field frames). */
  clientAddress?: string
  /** Aborts when the caller's deadline passes or the caller goes away. */
  signal: AbortSignal
}

export interface AuthResult {
  decision: Decision
  /** Internal reason: logs, metrics, traces only. */
  reason: Reason
  /** Which stage decided (`decode`, `mapping`, `cache`, `guard`, `admission`, `kerberos`, ...). */
  stage: string
  /** A hint for well-behaved callers: try again after this many ms. */
  retryAfterMs?: number
}

/** Decides password checks. The saslauthd listener takes one; so does the RPC service. */
export interface Authenticator {
  authenticate(req: AuthRequest): Promise<AuthResult>
  close(): Promise<void>
}
