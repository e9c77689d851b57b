/**
 * `POST /v1/session` with `Authorization: Negotiate <token>`: one Kerberos (SPNEGO) exchange
 * earns a short-lived session token that the caller then sends as
 * `Authorization: Bearer <session token>` on every RPC, so no login pays for GSSAPI.
 * Any replica accepts the token: its MAC key is derived from the shared keytab.
 */
import type { FastifyInstance } from 'fastify'

export interface NegotiateRoute {
  accept(
    base64Token: string,
  ): Promise<
    | { ok: true; principal: string; replyToken?: string }
    | { ok: false; code: string; reason?: string; principal?: string; detail?: string }
  >
  issue(principal: string): { token: string; expiresAt: number }
  /** GSSAPI exchanges in flight at most; more get 503 at once (they cost a thread each). */
  maxInFlight?: number
  onResult?: (event: {
    ok: boolean
    principal?: string
    code?: string
    reason?: string
    detail?: string
  }) => void
}

export const SESSION_PATH = '/v1/session'

export function registerNegotiate(app: FastifyInstance, route: NegotiateRoute): void {
  const max = route.maxInFlight ?? 16
  let inFlight = 0
  app.post(SESSION_PATH, async (req, reply) => {
    reply.header('cache-control', 'no-store')
    const m = /^Negotiate +([A-Za-z0-9+/=]{1,16384})\s*$/.exec(req.headers.authorization ?? '')
    if (m?.[1] === undefined) {
      reply.code(401).header('www-authenticate', 'Negotiate')
      return { code: 'unauthenticated', message: 'send Authorization: Negotiate <SPNEGO token>' }
    }
    if (inFlight >= max) {
      reply.code(503).header('retry-after', '1')
      return { code: 'unavailable', message: 'too many Negotiate exchanges in flight' }
    }
    inFlight++
    try {
      const r = await route.accept(m[1])
      if (!r.ok) {
        route.onResult?.({
          ok: false,
          code: r.code,
          ...(r.reason !== undefined ? { reason: r.reason } : {}),
          ...(r.principal !== undefined ? { principal: r.principal } : {}),
          ...(r.detail !== undefined ? { detail: r.detail } : {}),
        })
        reply.code(r.code === 'SASLGATE_ERR_NEGOTIATE_NOT_ALLOWED' ? 403 : 401)
        if (r.code !== 'SASLGATE_ERR_NEGOTIATE_NOT_ALLOWED')
          reply.header('www-authenticate', 'Negotiate')
        return {
          code:
            r.code === 'SASLGATE_ERR_NEGOTIATE_NOT_ALLOWED'
              ? 'permission_denied'
              : 'unauthenticated',
          message:
            r.code === 'SASLGATE_ERR_NEGOTIATE_NOT_ALLOWED'
              ? 'this Kerberos principal is not on service.negotiateAllow'
              : 'the Negotiate token was not accepted',
        }
      }
      route.onResult?.({ ok: true, principal: r.principal })
      const session = route.issue(r.principal)
      if (r.replyToken !== undefined) reply.header('www-authenticate', `Negotiate ${r.replyToken}`)
      return { token: session.token, expiresInMs: Math.max(0, session.expiresAt - Date.now()) }
    } finally {
      inFlight--
    }
  })
}
