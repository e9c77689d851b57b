/**
 * `saslgate serve`: the decision service.
 *   - RPC service (`--listen HOST:PORT`, the default when no socket is given): Fastify with
 *     the `proto/` contract, callers authenticated by token, mTLS or Negotiate.
 *   - Single-host mode (`--saslauthd-socket PATH`): the saslauthd drop-in deciding locally.
 * Both can run in one process. SIGTERM/SIGINT: readiness false for `service.readyDelayMs`,
 * stop accepting, answer what is in flight within `service.drainTimeoutMs`, exit.
 */
import { SpanKind } from '@opentelemetry/api'
import { buildLocalAuthenticator } from '../authenticate-local.js'
import type { Config } from '../config.js'
import { disableCoreDumps } from '../hardening.js'
import { resolveKerberosSettings } from '../kerberos/setup.js'
import { createLogger } from '../logging.js'
import { SaslauthdListener } from '../saslauthd/listener.js'
import { startAdmin } from '../service/admin.js'
import { buildService, type ServiceParts } from '../service/from-config.js'
import { parseListen } from '../service/listen-address.js'
import type { Telemetry } from '../telemetry/sdk.js'
import { boundedShutdown, observabilityFromConfig } from '../telemetry/setup.js'
import { ignoreSighup } from './signals.js'

export interface ServeModes {
  /** Serve RPCs on `service.listen`. */
  rpc: boolean
}

export async function serve(
  config: Config,
  modes: ServeModes,
  telemetry: Telemetry,
): Promise<number> {
  const logger = createLogger(config.log.level, 'serve')
  // From the first moment: a SIGHUP during start-up must not kill the process either.
  ignoreSighup(logger)
  disableCoreDumps(logger)
  const socketPath = config.saslauthd.socket
  if (!modes.rpc && socketPath === '') {
    logger.error('nothing to serve: give --listen HOST:PORT and/or --saslauthd-socket PATH')
    return 64
  }
  const listenAt = modes.rpc ? parseListen('service.listen', config.service.listen) : undefined
  const obs = observabilityFromConfig(config, telemetry, logger)
  const local = await buildLocalAuthenticator(config, process.env, logger, undefined, obs)
  const decide = obs.traced(local.pipeline, 'saslgate.decide', SpanKind.INTERNAL)
  const metrics = () => telemetry.scrape()
  const closers: Array<() => Promise<void>> = [
    async () => {
      obs.close()
      await boundedShutdown(telemetry)
    },
    () => local.close(),
  ]
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch(() => {})
  }
  let draining = false
  const readiness = () => (draining ? { ready: false, reason: 'draining' } : local.readiness())
  try {
    // Started first so it stops last: probes and scrapes keep answering while the service drains.
    if (config.service.adminListen !== '') {
      const admin = await startAdmin(
        'service.adminListen',
        config.service.adminListen,
        readiness,
        metrics,
      )
      closers.push(() => admin.close())
      logger.info({ listen: config.service.adminListen, port: admin.port }, 'admin listening')
    }
    if (listenAt !== undefined) {
      const { keytab } = await resolveKerberosSettings(config, process.env)
      const service: ServiceParts = await buildService(config, {
        authenticator: decide,
        readiness,
        logger,
        keytab,
        observability: obs,
        metrics,
      })
      closers.push(() => service.close())
      const bound = await service.app.listen(listenAt.host, listenAt.port)
      logger.info(
        { listen: `${bound.host}:${bound.port}`, tls: config.service.tlsCert !== '' },
        'RPC service listening',
      )
    }
    if (socketPath !== '') {
      const listener = new SaslauthdListener({
        socketPath,
        authenticator: obs.traced(decide, 'saslgate.saslauthd.request', SpanKind.SERVER),
        fields: config.saslauthd.fields,
        socketMode: Number.parseInt(config.saslauthd.socketMode, 8),
        ...(config.saslauthd.socketGroup !== ''
          ? { socketGroup: config.saslauthd.socketGroup }
          : {}),
        readTimeoutMs: config.saslauthd.readTimeoutMs,
        answerDeadlineMs: config.saslauthd.answerDeadlineMs,
        maxConnections: config.saslauthd.maxConnections,
        logger,
        onDecision: (e) => obs.onListenerDecision(e, true),
      })
      await listener.listen()
      obs.observe({ openConnections: () => ({ saslauthd: listener.stats().openConnections }) })
      closers.push(() => listener.close())
    }
  } catch (err) {
    await closeAll()
    throw err
  }
  logger.info(
    {
      socket: socketPath || undefined,
      listen: listenAt !== undefined ? config.service.listen : undefined,
      pid: process.pid,
      telemetry: telemetry.enabled,
    },
    'saslgate ready',
  )
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  draining = true
  logger.info({ signal }, 'shutting down: not ready, answering requests in flight')
  await closeAll()
  logger.info('stopped')
  return 0
}
