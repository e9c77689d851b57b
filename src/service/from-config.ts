/**
 * Builds the RPC service from the configuration: caller authentication (tokens, mTLS,
 * Negotiate), TLS material, limits. Refuses to start a service no caller has to
 * authenticate to: the service is a password oracle.
 */
import type { Logger } from 'pino'
import type { Authenticator } from '../authenticator.js'
import type { Config } from '../config.js'
import { SaslgateError } from '../errors.js'
import type { Observability } from '../telemetry/observability.js'
import { ServiceApp, type TlsMaterial } from './app.js'
import { CallerAuth, type SessionVerifier } from './caller-auth.js'
import type { Readiness } from './health.js'
import type { NegotiateRoute } from './negotiate-route.js'
import { readPemFile, readTokenFile } from './secret-files.js'

const configError = (option: string, message: string) =>
  new SaslgateError('SASLGATE_ERR_CONFIG', `config option ${option}: ${message}`)

export interface ServiceParts {
  app: ServiceApp
  close(): Promise<void>
}

export interface NegotiateParts {
  sessions: SessionVerifier
  route: NegotiateRoute
  close(): Promise<void>
}

export async function buildService(
  config: Config,
  deps: {
    authenticator: Authenticator
    readiness: Readiness
    logger: Logger
    /** Kerberos keytab of the verifier (default for `service.negotiateKeytab`). */
    keytab: string
    observability?: Observability
    metrics?: () => Promise<string>
  },
): Promise<ServiceParts> {
  const s = config.service
  let tls: TlsMaterial | undefined
  if ((s.tlsCert === '') !== (s.tlsKey === ''))
    throw configError(
      s.tlsCert === '' ? 'service.tlsCert' : 'service.tlsKey',
      'TLS needs both service.tlsCert and service.tlsKey',
    )
  if (s.tlsCert !== '') {
    tls = {
      cert: readPemFile('service.tlsCert', s.tlsCert),
      key: readPemFile('service.tlsKey', s.tlsKey),
      ...(s.clientCa !== '' ? { clientCa: readPemFile('service.clientCa', s.clientCa) } : {}),
    }
  } else if (s.clientCa !== '') {
    throw configError(
      'service.clientCa',
      'client certificates need TLS: set service.tlsCert and service.tlsKey',
    )
  }
  if (s.clientNames.length > 0 && s.clientCa === '')
    throw configError('service.clientNames', 'needs service.clientCa')

  let negotiate: NegotiateParts | undefined
  if (s.negotiate) {
    if (s.negotiateAllow.length === 0)
      throw configError(
        'service.negotiateAllow',
        'Negotiate needs an allow-list of client principals (e.g. host/fe1.example.org@EXAMPLE.ORG)',
      )
    const { buildNegotiate } = await import('./negotiate-setup.js')
    negotiate = await buildNegotiate(config, deps.keytab, deps.logger)
  } else if (s.negotiateAllow.length > 0) {
    throw configError('service.negotiateAllow', 'set service.negotiate: true to use it')
  }

  const callerAuth = new CallerAuth({
    tokens: s.tokenFile !== '' ? readTokenFile('service.tokenFile', s.tokenFile) : [],
    mtls: tls?.clientCa !== undefined,
    clientNames: s.clientNames,
    ...(negotiate !== undefined ? { sessions: negotiate.sessions } : {}),
  })
  if (!callerAuth.configured)
    throw configError(
      'service.tokenFile',
      'the service answers no caller it has not authenticated: set service.tokenFile (--token-file), service.clientCa (--client-ca) or service.negotiate',
    )

  const app = new ServiceApp({
    authenticator: deps.authenticator,
    callerAuth,
    readiness: deps.readiness,
    logger: deps.logger,
    ...(tls !== undefined ? { tls } : {}),
    ...(negotiate !== undefined ? { negotiate: negotiate.route } : {}),
    bodyLimitBytes: s.bodyLimitBytes,
    maxConnections: s.maxConnections,
    readyDelayMs: s.readyDelayMs,
    drainTimeoutMs: s.drainTimeoutMs,
    ...(deps.observability !== undefined ? { observability: deps.observability } : {}),
    ...(deps.metrics !== undefined ? { metrics: deps.metrics } : {}),
  })
  return {
    app,
    async close() {
      await app.close()
      await negotiate?.close()
    },
  }
}
