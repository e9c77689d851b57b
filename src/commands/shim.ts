/**
 * `saslgate shim`: answers the saslauthd socket on a Cyrus front-end by asking the saslgate
 * service, always within `saslauthd.answerDeadlineMs` (NO at the deadline).
 */
import { SpanKind } from '@opentelemetry/api'
import type { Config } from '../config.js'
import { SaslgateError } from '../errors.js'
import { disableCoreDumps } from '../hardening.js'
import { createLogger } from '../logging.js'
import { SaslauthdListener } from '../saslauthd/listener.js'
import { startAdmin } from '../service/admin.js'
import { isLoopbackHost } from '../service/listen-address.js'
import { readPemFile } from '../service/secret-files.js'
import { noCredentials, tokenCredentials } from '../shim/credentials.js'
import type { TlsClientMaterial } from '../shim/endpoint-client.js'
import { type CallerCredentials, RemoteAuthenticator } from '../shim/remote-authenticator.js'
import { parseUpstream } from '../shim/upstreams.js'
import type { Telemetry } from '../telemetry/sdk.js'
import { boundedShutdown, observabilityFromConfig } from '../telemetry/setup.js'
import { ignoreSighup } from './signals.js'

const configError = (option: string, message: string) =>
  new SaslgateError('SASLGATE_ERR_CONFIG', `config option ${option}: ${message}`)

export async function shim(config: Config, telemetry: Telemetry): Promise<number> {
  const logger = createLogger(config.log.level, 'shim')
  // From the first moment: a SIGHUP during start-up must not kill the process either.
  ignoreSighup(logger)
  disableCoreDumps(logger)
  const c = config.shim
  if (config.saslauthd.socket === '')
    throw configError('saslauthd.socket', 'the shim needs a socket to answer: --socket PATH')
  if (c.deadlineMs >= config.saslauthd.answerDeadlineMs)
    throw configError(
      'shim.deadlineMs',
      `must be below saslauthd.answerDeadlineMs (${config.saslauthd.answerDeadlineMs}) so the answer is a decision, not the listener's deadline`,
    )
  if ((c.tlsCert === '') !== (c.tlsKey === ''))
    throw configError(
      c.tlsCert === '' ? 'shim.tlsCert' : 'shim.tlsKey',
      'a client certificate needs both shim.tlsCert and shim.tlsKey',
    )
  // Every login's password crosses this connection: plain HTTP only to this machine, or
  // when the operator says the path is otherwise protected.
  for (const url of c.upstreams) {
    const u = parseUpstream('shim.upstreams', url)
    if (u.protocol !== 'http:' || isLoopbackHost(u.host)) continue
    if (!c.insecure)
      throw configError(
        'shim.insecure',
        `upstream ${u.source} is plain HTTP to another host: passwords would cross the network in the clear; use https:// or set shim.insecure: true over a trusted tunnel`,
      )
    logger.warn(
      { upstream: u.source, option: 'shim.insecure' },
      'plain HTTP upstream to another host (shim.insecure): passwords cross the network in the clear',
    )
  }
  const tls: TlsClientMaterial = {
    ...(c.ca !== '' ? { ca: readPemFile('shim.ca', c.ca) } : {}),
    ...(c.tlsCert !== ''
      ? { cert: readPemFile('shim.tlsCert', c.tlsCert), key: readPemFile('shim.tlsKey', c.tlsKey) }
      : {}),
  }
  const methods = [c.tokenFile !== '', c.negotiateService !== ''].filter(Boolean).length
  if (methods > 1)
    throw configError(
      'shim.negotiateService',
      'use either shim.tokenFile or shim.negotiateService, not both',
    )
  let credentials: CallerCredentials = noCredentials
  let closeCredentials = async () => {}
  if (c.tokenFile !== '') credentials = tokenCredentials('shim.tokenFile', c.tokenFile)
  else if (c.negotiateService !== '') {
    const { sessionCredentials } = await import('../shim/session-credentials.js')
    const s = sessionCredentials(config, tls, logger)
    credentials = s
    closeCredentials = () => s.close()
  } else if (tls.cert === undefined) {
    throw configError(
      'shim.tokenFile',
      'the service authenticates every caller: set shim.tokenFile (--token-file), a client certificate (--tls-cert/--tls-key) or shim.negotiateService',
    )
  }
  const obs = observabilityFromConfig(config, telemetry, logger)
  const remote = new RemoteAuthenticator({
    upstreams: c.upstreams,
    tls,
    credentials,
    deadlineMs: c.deadlineMs,
    attemptTimeoutMs: c.attemptTimeoutMs,
    ejectMs: c.ejectMs,
    resolveIntervalMs: c.resolveIntervalMs,
    connectionMaxAgeMs: c.connectionMaxAgeMs,
    maxConnectionsPerUpstream: c.maxConnectionsPerUpstream,
    observability: obs,
    onAttempt: (e) => obs.onUpstreamAttempt(e),
    onUpstreamError: (err) => logger.warn({ err: String(err) }, 'upstream resolution failed'),
  })
  await remote.start()
  const listener = new SaslauthdListener({
    socketPath: config.saslauthd.socket,
    authenticator: obs.traced(remote, 'saslgate.saslauthd.request', SpanKind.SERVER),
    fields: config.saslauthd.fields,
    socketMode: Number.parseInt(config.saslauthd.socketMode, 8),
    ...(config.saslauthd.socketGroup !== '' ? { socketGroup: config.saslauthd.socketGroup } : {}),
    readTimeoutMs: config.saslauthd.readTimeoutMs,
    answerDeadlineMs: config.saslauthd.answerDeadlineMs,
    maxConnections: config.saslauthd.maxConnections,
    logger,
    onDecision: (e) => obs.onListenerDecision(e, false),
  })
  let admin: { close(): Promise<void> } | undefined
  try {
    await listener.listen()
    obs.observe({ openConnections: () => ({ saslauthd: listener.stats().openConnections }) })
    if (c.adminListen !== '')
      admin = await startAdmin(
        'shim.adminListen',
        c.adminListen,
        () =>
          remote.endpoints.length > 0 ? { ready: true } : { ready: false, reason: 'no upstream' },
        () => telemetry.scrape(),
      )
  } catch (err) {
    await listener.close()
    await remote.close()
    await closeCredentials()
    obs.close()
    await boundedShutdown(telemetry)
    throw err
  }
  logger.info(
    {
      socket: config.saslauthd.socket,
      upstreams: remote.endpoints.map((e) => e.baseUrl),
      pid: process.pid,
    },
    'saslgate ready',
  )
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  logger.info({ signal }, 'shutting down: answering requests in flight')
  await listener.close()
  await remote.close()
  await closeCredentials()
  await admin?.close()
  obs.close()
  await boundedShutdown(telemetry)
  logger.info('stopped')
  return 0
}
