/**
 * Negotiate (SPNEGO) on the service: the acceptor with its allow-list and the session
 * tokens it hands out, built from the configuration.
 */
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { SaslgateError } from '../errors.js'
import type { NegotiateParts } from './from-config.js'
import { NegotiateAcceptor, parseServicePrincipal } from './negotiate.js'
import { looksLikeSessionToken, SessionTokens } from './session-token.js'

export async function buildNegotiate(
  config: Config,
  defaultKeytab: string,
  logger: Logger,
): Promise<NegotiateParts> {
  const s = config.service
  const keytab = (s.negotiateKeytab || defaultKeytab).replace(/^(FILE|WRFILE):/, '')
  let service: ReturnType<typeof parseServicePrincipal>
  try {
    service = parseServicePrincipal(s.negotiatePrincipal)
  } catch (err) {
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option service.negotiatePrincipal: ${(err as Error).message}`,
    )
  }
  if (service === undefined)
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      'config option service.negotiatePrincipal: required with service.negotiate',
    )
  // The MAC key derives from the acceptor principal's keys only (`HTTP@host` is the same
  // principal as `HTTP/host`): every replica with the same keytab agrees.
  const sessions = await SessionTokens.fromKeytab(keytab, {
    principal: service.realm !== undefined ? `${service.name}@${service.realm}` : service.name,
  })
  const acceptor = new NegotiateAcceptor({
    principal: s.negotiatePrincipal,
    allow: s.negotiateAllow,
    keytab,
  })
  // A token is checked against the allow-list on every use, not only when issued: a
  // principal taken off the list (on any replica, all share the MAC key) is refused at once.
  const allowed = new Set(s.negotiateAllow)
  return {
    sessions: {
      looksLike: looksLikeSessionToken,
      verify: (token) => {
        const principal = sessions.verify(token)
        return principal !== null && allowed.has(principal) ? principal : null
      },
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
