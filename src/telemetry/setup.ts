/**
 * Observability for a role (`service` or `shim`), from the configuration and the already
 * started OpenTelemetry SDK (cli.ts starts it before it imports the app).
 */
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { SaslgateError } from '../errors.js'
import { readSecretFile } from '../service/secret-files.js'
import { MIN_PRINCIPAL_KEY_BYTES, randomPrincipalKey } from './names.js'
import { Observability } from './observability.js'
import type { Telemetry } from './sdk.js'
import { stdoutSyslogSink } from './syslog-line.js'

export function observabilityFromConfig(
  config: Config,
  telemetry: Telemetry,
  logger: Logger,
): Observability {
  const t = config.telemetry
  return new Observability({
    telemetry,
    logger,
    principals: t.principals,
    principalKey: principalKeyFromConfig(config) ?? randomPrincipalKey(),
    decisionLogsPerSecond: t.decisionLogsPerSecond,
    ...(config.log.syslog ? { syslog: stdoutSyslogSink() } : {}),
  })
}

/**
 * The key of `telemetry.principalKeyFile`, or undefined when none is configured (then each
 * process draws its own). Shared by the logs and `saslgate principal-hash`.
 */
export function principalKeyFromConfig(config: Config): Buffer | undefined {
  const file = config.telemetry.principalKeyFile
  if (file === '') return undefined
  const key = readSecretFile('telemetry.principalKeyFile', file)
  if (key.length < MIN_PRINCIPAL_KEY_BYTES)
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option telemetry.principalKeyFile: the key needs at least ${MIN_PRINCIPAL_KEY_BYTES} bytes`,
    )
  return key
}

/** Time given to the exporters to flush at exit (a missing collector must not hold it up). */
export const TELEMETRY_SHUTDOWN_MS = 1500

/** `telemetry.shutdown()`, but never longer than `ms`. */
export async function boundedShutdown(
  telemetry: Telemetry,
  ms = TELEMETRY_SHUTDOWN_MS,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    telemetry.shutdown(),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
    }),
  ])
  clearTimeout(timer)
}
