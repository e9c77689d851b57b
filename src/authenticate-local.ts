/**
 * The local decision maker: principal mapping, the defence pipeline and the Kerberos check,
 * built from the configuration. Used by single-host mode (`serve --saslauthd-socket`) and,
 * later, by the RPC service.
 */
import { accessSync, constants } from 'node:fs'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { SaslgateError } from './errors.js'
import { parseEnctypes } from './kerberos/enctypes.js'
import { classifyKdcReply } from './kerberos/kdc-message.js'
import { encodeProbeAsReq } from './kerberos/probe-request.js'
import {
  checkKeytabAtStart,
  createKerberos,
  mappedRealms,
  resolveKerberosSettings,
} from './kerberos/setup.js'
import { type DecisionEvent, Pipeline } from './pipeline/pipeline.js'
import { createPrincipalMapper, type PrincipalMapper } from './pipeline/principal.js'
import { KdcReadiness } from './service/readiness.js'
import { RedisGuardStore } from './state/redis-store.js'
import type { Observability } from './telemetry/observability.js'

export interface LocalAuthenticator {
  pipeline: Pipeline
  defaultRealm: string
  /** Ready to serve (src/service/readiness.ts says what that means). */
  readiness(): { ready: boolean; reason?: string }
  close(): Promise<void>
}

/** RFC 4120 KDC_ERR_C_PRINCIPAL_UNKNOWN: the probe's client (the verify principal) is unknown. */
const KDC_ERR_C_PRINCIPAL_UNKNOWN = 6

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
  const realms = mappedRealms(config, defaultRealm)
  try {
    return createPrincipalMapper({
      defaultRealm,
      realms,
      domainRealms,
      allowInstances: config.realm.allowInstances,
    })
  } catch (err) {
    throw mapperConfigError(err, config, defaultRealm, realms)
  }
}

const REALM_RULE = 'a realm name has no spaces, control characters, backslash, @ or /'

/**
 * The mapper names its own parameters (`defaultRealm`, `realms[2]`); an operator set
 * `realm.default`, `realm.allowed` or `realm.domainRealms` (or krb5.conf's default_realm).
 */
function mapperConfigError(
  err: unknown,
  config: Config,
  defaultRealm: string,
  realms: readonly string[],
): unknown {
  if (!(err instanceof SaslgateError) || err.code !== 'SASLGATE_ERR_CONFIG') return err
  const m = /^(defaultRealm|realms\[(\d+)\]|domainRealms(?:\[([^\]]*)\])?)/.exec(err.message)
  if (m === null) return err
  let option: string
  let value: string | undefined
  if (m[1] === 'defaultRealm') {
    option = config.realm.default !== '' ? 'realm.default' : 'realm.default (from default_realm)'
    value = defaultRealm
  } else if (m[2] !== undefined) {
    // The mapper's realm list is realm.allowed and the realm.domainRealms targets together.
    value = realms[Number(m[2])]
    const domain = Object.entries(config.realm.domainRealms).find(
      ([, r]) => r.toUpperCase() === value,
    )?.[0]
    const allowed = config.realm.allowed.some((r) => r.toUpperCase() === value)
    option = allowed || domain === undefined ? 'realm.allowed' : 'realm.domainRealms'
    if (!allowed && domain !== undefined) value = `${domain}=${value}`
  } else {
    option = 'realm.domainRealms'
    value = m[3]
  }
  const why = err.message.includes('not a valid realm name') ? REALM_RULE : err.message
  return new SaslgateError(
    'SASLGATE_ERR_CONFIG',
    `config option ${option}: ${value !== undefined ? `${JSON.stringify(value)}: ` : ''}${why}`,
    { cause: err },
  )
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
  // Fed by every KDC reply; created before the transport so its first reply counts.
  let kdcReadiness: KdcReadiness | undefined
  const { verifier, transport } = createKerberos(config, settings, {
    onBreakerChange: (e) =>
      obs !== undefined
        ? obs.onBreakerChange(e)
        : logger.warn({ kdc: e.kdc, state: e.state }, 'KDC breaker changed state'),
    onAttempt: (e) => {
      if (e.outcome === 'reply' || e.outcome === 'late_reply') kdcReadiness?.noteReply(e.realm)
      obs?.onKdcAttempt(e)
    },
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
      kdcReadiness?.noteVerifyPrincipal(e.principal, e.known)
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
  const realm = settings.defaultRealm
  const verifyPrincipal = settings.verifyPrincipal(realm)
  const sameRealm = verifyPrincipal.endsWith(`@${realm}`)
  const probeRequest = () =>
    encodeProbeAsReq({
      client: verifyPrincipal.slice(0, verifyPrincipal.lastIndexOf('@')),
      realm,
      enctypes: parseEnctypes(config.kerberos.enctypes),
    })
  const tracker = new KdcReadiness({
    realm,
    windowMs: config.service.readyKdcWindowMs,
    async probe() {
      try {
        const r = await transport.send(realm, probeRequest(), {
          signal: AbortSignal.timeout(config.pipeline.deadlineMs),
        })
        const info = classifyKdcReply(r.reply)
        if (info === undefined) return { answered: false }
        // Only a verify principal of this realm is the probe's client as such (TGS mode may
        // name one of another realm, which this realm's KDC does not hold).
        if (!sameRealm) return { answered: true }
        return {
          answered: true,
          verifyPrincipalKnown: info.errorCode !== KDC_ERR_C_PRINCIPAL_UNKNOWN,
        }
      } catch {
        return { answered: false } // unreachable, breakers open, closed: the state says why
      }
    },
    allBreakersOpen: () => verifier.allKdcsDown(realm),
    offlineCanServe: () =>
      config.pipeline.offlineMaxStalenessMs > 0 && pipeline.stats().cache.positive > 0,
    keytabReadable: () => keytabReadable(settings.keytab),
    verifyPrincipal,
    onReachability: (e) => {
      if (e.reachable) logger.info({ realm: e.realm }, 'a KDC of the default realm answers: ready')
      else
        logger.warn(
          { realm: e.realm, kdcs: settings.kdcs[e.realm] },
          'no KDC of the default realm answers: not ready (a right password would be refused)',
        )
    },
  })
  // The first probe before anyone asks: a process that logs "ready" has heard from a KDC (or
  // knows it has not). Bounded by pipeline.deadlineMs.
  kdcReadiness = tracker
  await tracker.probe()
  const atStart = tracker.readiness()
  if (atStart.reason?.startsWith('the KDC does not know') === true)
    logger.error(
      { verifyPrincipal },
      `configuration error: the KDC does not know the verify principal ${verifyPrincipal} (C_PRINCIPAL_UNKNOWN to the readiness probe); not ready: create it (kadmin addprinc -randkey) and put its keys in the keytab, or set kerberos.verifyPrincipal`,
    )
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
    readiness: () => tracker.readiness(),
    async close() {
      await tracker.close()
      await pipeline.close()
      await verifier.close()
      await guardStore?.close()
    },
  }
}
