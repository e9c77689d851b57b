/**
 * Builds the RPC service from the configuration: caller authentication (tokens, mTLS,
 * Negotiate), TLS material, limits. Refuses to start a service no caller has to
 * authenticate to (the service is a password oracle), plain HTTP on an address other hosts
 * can reach unless `service.insecure` says so, and Negotiate without its acceptor principal.
 */
import type { Logger } from 'pino'
import type { Authenticator } from '../authenticator.js'
import type { Config } from '../config.js'
import { SaslgateError } from '../errors.js'
import type { Observability } from '../telemetry/observability.js'
import { ServiceApp, type TlsMaterial } from './app.js'
import { CallerAuth, type SessionVerifier } from './caller-auth.js'
import type { Readiness } from './health.js'
import { isLoopbackHost, parseListen } from './listen-address.js'
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
  if (tls === undefined) {
    const { host } = parseListen('service.listen', s.listen)
    if (!isLoopbackHost(host)) {
      if (!s.insecure)
        throw configError(
          'service.insecure',
          `plain HTTP on ${s.listen}, an address other hosts can reach, carries passwords and tokens in the clear: set service.tlsCert and service.tlsKey, or service.insecure: true behind a TLS-terminating proxy or mesh`,
        )
      deps.logger.warn(
        { listen: s.listen, option: 'service.insecure' },
        'plain HTTP on a non-loopback address (service.insecure): passwords cross the network in the clear unless a proxy or mesh encrypts them',
      )
    }
  }
  if (tls?.clientCa !== undefined && s.clientNames.length === 0)
    deps.logger.warn(
      { option: 'service.clientNames' },
      'mTLS: service.clientNames is empty: any certificate signed by service.clientCa is accepted as a caller',
    )

  let negotiate: NegotiateParts | undefined
  if (s.negotiate) {
    if (s.negotiateAllow.length === 0)
      throw configError(
        'service.negotiateAllow',
        'Negotiate needs an allow-list of client principals (e.g. host/fe1.example.org@EXAMPLE.ORG)',
      )
    // Without it the acceptor takes a ticket for any key of the keytab (the verify
    // principal's included) and every key would feed the session-token MAC key.
    if (s.negotiatePrincipal === '')
      throw configError(
        'service.negotiatePrincipal',
        'Negotiate needs its acceptor principal (e.g. HTTP/saslgate.example.org): only tickets for it are accepted and only its keys key the session tokens',
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
