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

export function observabilityFromConfig(
  config: Config,
  telemetry: Telemetry,
  logger: Logger,
): Observability {
  const t = config.telemetry
  let key = randomPrincipalKey()
  if (t.principalKeyFile !== '') {
    key = readSecretFile('telemetry.principalKeyFile', t.principalKeyFile)
    if (key.length < MIN_PRINCIPAL_KEY_BYTES)
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        `config option telemetry.principalKeyFile: the key needs at least ${MIN_PRINCIPAL_KEY_BYTES} bytes`,
      )
  }
  return new Observability({
    telemetry,
    logger,
    principals: t.principals,
    principalKey: key,
    decisionLogsPerSecond: t.decisionLogsPerSecond,
  })
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
