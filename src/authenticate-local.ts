/**
 * The local decision maker: principal mapping, the defence pipeline and the Kerberos check,
 * built from the configuration. Used by single-host mode (`serve --saslauthd-socket`) and,
 * later, by the RPC service.
 */
import { accessSync, constants } from 'node:fs'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import {
  checkKeytabAtStart,
  createKerberos,
  mappedRealms,
  resolveKerberosSettings,
} from './kerberos/setup.js'
import { type DecisionEvent, Pipeline } from './pipeline/pipeline.js'
import { createPrincipalMapper, type PrincipalMapper } from './pipeline/principal.js'
import { RedisGuardStore } from './state/redis-store.js'
import type { Observability } from './telemetry/observability.js'

export interface LocalAuthenticator {
  pipeline: Pipeline
  defaultRealm: string
  /**
   * Ready to decide: the keytab is readable, and some KDC breaker of the default realm is not
   * open or offline mode can answer for known-good users.
   */
  readiness(): { ready: boolean; reason?: string }
  close(): Promise<void>
}

function keytabReadable(path: string): boolean {
  const file = path.replace(/^(FILE|WRFILE):/, '')
  if (/^[A-Z]+:/.test(file)) return true // MEMORY: and other non-file keytabs
  try {
    accessSync(file, constants.R_OK)
    return true
  } catch {
    return false
  }
}

/** Principal mapping as configured; the default realm is always allowed. */
export function mapperFromConfig(config: Config, defaultRealm: string): PrincipalMapper {
  const domainRealms: Record<string, string> = {}
  for (const [domain, realm] of Object.entries(config.realm.domainRealms))
    domainRealms[domain] = realm.toUpperCase()
  return createPrincipalMapper({
    defaultRealm,
    realms: mappedRealms(config, defaultRealm),
    domainRealms,
    allowInstances: config.realm.allowInstances,
  })
}

export async function buildLocalAuthenticator(
  config: Config,
  env: NodeJS.ProcessEnv,
  logger: Logger,
  onDecision?: (event: DecisionEvent) => void,
  obs?: Observability,
): Promise<LocalAuthenticator> {
  const settings = await resolveKerberosSettings(config, env)
  // Before anything listens: a keytab this process cannot use would refuse every right password.
  await checkKeytabAtStart(config, settings)
  const { verifier, transport } = createKerberos(config, settings, {
    onBreakerChange: (e) =>
      obs !== undefined
        ? obs.onBreakerChange(e)
        : logger.warn({ kdc: e.kdc, state: e.state }, 'KDC breaker changed state'),
    ...(obs !== undefined ? { onAttempt: (e) => obs.onKdcAttempt(e) } : {}),
    onRefusedReply: (e) =>
      logger.warn(
        { realm: e.realm, kdc: e.kdc, reason: e.reason, detail: e.detail },
        'refused a KDC reply before libkrb5 saw it (spoofed or misconfigured KDC)',
      ),
    onPrimaryRetry: (e) =>
      logger.info(
        {
          realm: e.realm,
          replica: e.replica,
          replicaReason: e.replicaReason,
          outcome: e.outcome,
          reason: e.reason,
        },
        "redid a replica KDC's verdict on the primary KDC (kerberos.retryOnPrimary)",
      ),
    onVerifyPrincipal: (e) => {
      if (e.known)
        logger.info({ verifyPrincipal: e.principal }, 'the KDC knows the verify principal again')
      else
        logger.error(
          { verifyPrincipal: e.principal },
          `configuration error: the KDC does not know the verify principal ${e.principal} (S_PRINCIPAL_UNKNOWN); every check answers unavailable and nothing is cached until it exists: create it (kadmin addprinc -randkey) and put its keys in the keytab, or set kerberos.verifyPrincipal`,
        )
    },
  })
  const mapper = mapperFromConfig(config, settings.defaultRealm)
  const guardStore =
    config.state.url !== ''
      ? new RedisGuardStore({
          url: config.state.url,
          keyPrefix: config.state.keyPrefix,
          callTimeoutMs: config.state.callTimeoutMs,
        })
      : undefined
  if (obs !== undefined)
    guardStore?.on('fallback', (e: { operation: string }) => obs.onStateFallback(e))
  const pipeline = new Pipeline(
    {
      verifier,
      mapper,
      guardStore,
      onDecision: (e) => {
        obs?.onPipelineDecision(e)
        onDecision?.(e)
      },
    },
    { ...config.pipeline },
  )
  obs?.observe({
    queueDepth: () => pipeline.stats().queued,
    kdcInFlight: () => pipeline.stats().kdcInFlight,
    cacheEntries: () => pipeline.stats().cache,
    refusalHold: () => pipeline.stats().refusalHold,
    breakerStates: () => transport.breakerStates(),
  })
  logger.info(
    {
      defaultRealm: settings.defaultRealm,
      kdcs: settings.kdcs,
      ...(config.kerberos.retryOnPrimary ? { primaryKdcs: settings.primaryKdcs } : {}),
      krb5Config: settings.krb5ConfigPath,
      keytab: settings.keytab,
      verifyPrincipal: settings.verifyPrincipal(settings.defaultRealm),
      sharedState: config.state.url !== '',
    },
    'kerberos settings',
  )
  return {
    pipeline,
    defaultRealm: settings.defaultRealm,
    readiness() {
      if (!keytabReadable(settings.keytab)) return { ready: false, reason: 'keytab unreadable' }
      // Every KDC breaker open: with offline mode on, this replica still lets known-good
      // users in, so it stays ready (else Kubernetes would take every replica out of the
      // Service during a KDC outage and nobody could log in); without it, not ready.
      if (
        verifier.allKdcsDown(settings.defaultRealm) &&
        config.pipeline.offlineMaxStalenessMs === 0
      )
        return { ready: false, reason: 'every KDC breaker open' }
      return { ready: true }
    },
    async close() {
      await pipeline.close()
      await verifier.close()
      await guardStore?.close()
    },
  }
}
