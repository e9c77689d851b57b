/**
 * Negotiate (SPNEGO) on the service: the acceptor with its allow-list and the session
 * tokens it hands out, built from the configuration.
 */
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { NegotiateParts } from './from-config.js'
import { NegotiateAcceptor } from './negotiate.js'
import { looksLikeSessionToken, SessionTokens } from './session-token.js'

export async function buildNegotiate(
  config: Config,
  defaultKeytab: string,
  logger: Logger,
): Promise<NegotiateParts> {
  const s = config.service
  const keytab = (s.negotiateKeytab || defaultKeytab).replace(/^(FILE|WRFILE):/, '')
  // The MAC key derives from the acceptor's keys: every replica with the same keytab agrees.
  const sessions = await SessionTokens.fromKeytab(
    keytab,
    s.negotiatePrincipal !== '' ? { principal: s.negotiatePrincipal } : {},
  )
  const acceptor = new NegotiateAcceptor({
    principal: s.negotiatePrincipal,
    allow: s.negotiateAllow,
    keytab,
  })
  return {
    sessions: {
      looksLike: looksLikeSessionToken,
      verify: (token) => sessions.verify(token),
    },
    route: {
      accept: (token) => acceptor.accept(token),
      issue: (principal) => sessions.issue(principal, s.sessionTtlMs),
      onResult: (e) => {
        if (e.ok) logger.info({ principal: e.principal }, 'Negotiate: session token issued')
        else
          logger.warn(
            { code: e.code, reason: e.reason, detail: e.detail, principal: e.principal },
            'Negotiate: refused',
          )
      },
    },
    close: async () => acceptor.close(),
  }
}
