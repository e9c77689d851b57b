/**
 * `saslgate serve`: single-host mode (`--saslauthd-socket PATH`): the saslauthd drop-in that
 * decides locally. Stops gracefully on SIGTERM/SIGINT: stop accepting, answer in flight, exit.
 */
import { pino } from 'pino'
import { buildLocalAuthenticator } from '../authenticate-local.js'
import type { Config } from '../config.js'
import { SaslauthdListener } from '../saslauthd/listener.js'

export async function serve(config: Config): Promise<number> {
  const logger = pino({ level: config.log.level, base: { role: 'serve' } }, pino.destination(2))
  if (config.saslauthd.socket === '') {
    logger.error(
      'nothing to serve: give --saslauthd-socket PATH (or saslauthd.socket in the config)',
    )
    return 64
  }
  const local = await buildLocalAuthenticator(config, process.env, logger)
  const listener = new SaslauthdListener({
    socketPath: config.saslauthd.socket,
    authenticator: local.pipeline,
    fields: config.saslauthd.fields,
    socketMode: Number.parseInt(config.saslauthd.socketMode, 8),
    ...(config.saslauthd.socketGroup !== '' ? { socketGroup: config.saslauthd.socketGroup } : {}),
    readTimeoutMs: config.saslauthd.readTimeoutMs,
    answerDeadlineMs: config.saslauthd.answerDeadlineMs,
    maxConnections: config.saslauthd.maxConnections,
    logger,
    onDecision: (e) => {
      logger.debug(
        {
          decision: e.decision,
          reason: e.reason,
          stage: e.stage,
          detail: e.detail,
          ms: Math.round(e.latencyMs * 10) / 10,
          login: e.login,
          service: e.service,
        },
        'decision',
      )
    },
  })
  try {
    await listener.listen()
  } catch (err) {
    await local.close()
    throw err
  }
  logger.info({ socket: config.saslauthd.socket, pid: process.pid }, 'saslgate ready')
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  logger.info({ signal }, 'shutting down: answering requests in flight')
  await listener.close()
  await local.close()
  logger.info('stopped')
  return 0
}
