/**
 * Who is calling? The service is a password oracle: no RPC reaches the pipeline unless its
 * caller proved who it is by one of
 *   - a client certificate signed by `service.clientCa` (mutual TLS), optionally restricted
 *     to `service.clientNames` (CN or DNS subjectAltName);
 *   - `Authorization: Bearer <token>` with a token from `service.tokenFile`;
 *   - `Authorization: Bearer <session token>` earned by a Negotiate (Kerberos) exchange.
 * Token comparison is constant time over SHA-256 digests, over every configured token.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { TLSSocket } from 'node:tls'

export type CallerMethod = 'mtls' | 'token' | 'session'

export interface Caller {
  method: CallerMethod
  /** Certificate name, `token#<n>` (never the token), or the Kerberos principal. */
  name: string
}

/** Verifies session tokens (see session-token.ts). */
export interface SessionVerifier {
  looksLike(token: string): boolean
  verify(token: string): string | null
}

export interface CallerAuthOptions {
  tokens?: readonly string[]
  /** True when the TLS server requests client certificates from `clientCa`. */
  mtls?: boolean
  clientNames?: readonly string[]
  sessions?: SessionVerifier
}

/** The socket fields we read; an HTTP/1 socket, a TLS socket or an HTTP/2 socket proxy. */
type PeerSocket = Partial<Pick<TLSSocket, 'authorized' | 'getPeerCertificate'>>

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()

export class CallerAuth {
  readonly #tokens: Buffer[]
  readonly #mtls: boolean
  readonly #clientNames: ReadonlySet<string>
  readonly #sessions: SessionVerifier | undefined

  constructor(options: CallerAuthOptions) {
    this.#tokens = (options.tokens ?? []).map(digest)
    this.#mtls = options.mtls === true
    this.#clientNames = new Set(options.clientNames ?? [])
    this.#sessions = options.sessions
  }

  /** True when at least one way to authenticate is configured. */
  get configured(): boolean {
    return this.#tokens.length > 0 || this.#mtls || this.#sessions !== undefined
  }

  identify(headers: IncomingHttpHeaders, socket: PeerSocket | undefined): Caller | undefined {
    const bearer = bearerOf(headers.authorization)
    if (bearer !== undefined) {
      if (this.#sessions?.looksLike(bearer)) {
        const principal = this.#sessions.verify(bearer)
        if (principal !== null) return { method: 'session', name: principal }
      } else {
        const index = this.#matchToken(bearer)
        if (index >= 0) return { method: 'token', name: `token#${index + 1}` }
      }
    }
    if (this.#mtls && socket?.authorized === true) {
      const name = this.#certificateName(socket)
      if (name !== undefined) return { method: 'mtls', name }
    }
    return undefined
  }

  #matchToken(token: string): number {
    if (this.#tokens.length === 0) return -1
    const d = digest(token)
    let found = -1
    // No early exit: the time taken does not depend on which token matched.
    this.#tokens.forEach((t, i) => {
      if (timingSafeEqual(t, d) && found < 0) found = i
    })
    return found
  }

  #certificateName(socket: PeerSocket): string | undefined {
    const cert = socket.getPeerCertificate?.()
    if (cert === undefined || cert === null || Object.keys(cert).length === 0) return undefined
    const cn = typeof cert.subject?.CN === 'string' ? cert.subject.CN : undefined
    const sans = (cert.subjectaltname ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => s.slice(4))
    const names = [...(cn !== undefined ? [cn] : []), ...sans]
    if (this.#clientNames.size === 0) return names[0] ?? 'certificate'
    return names.find((n) => this.#clientNames.has(n))
  }
}

/** The token of `Authorization: Bearer <token>`, or undefined. */
export function bearerOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  const m = /^Bearer +([\x21-\x7e]+)\s*$/i.exec(header)
  return m?.[1]
}
