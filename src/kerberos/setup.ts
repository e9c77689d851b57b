/**
 * Builds the Kerberos side from the configuration, the way saslauthd -a kerberos5 finds its
 * settings: KDCs and default realm from krb5.conf (`KRB5_CONFIG`), keytab from
 * `KRB5_KTNAME`, verify principal `host/<hostname>`; saslgate's config overrides each.
 */
import { hostname } from 'node:os'
import type { Config } from '../config.js'
import { SaslgateError } from '../errors.js'
import { checkKeytab } from './keytab-file.js'
import { krb5ConfPath, readKrb5Conf } from './krb5-conf.js'
import { krb5 } from './native.js'
import { KdcClient, type KdcTransportOptions } from './transport.js'
import { KerberosVerifier, type VerifierOptions } from './verifier.js'

export interface KerberosSettings {
  krb5ConfigPath: string
  defaultRealm: string
  /** Realm -> KDC addresses. */
  kdcs: Record<string, readonly string[]>
  /** Realm -> primary KDC addresses (`kerberos.primaryKdcs`, else krb5.conf `primary_kdc`). */
  primaryKdcs: Record<string, readonly string[]>
  keytab: string
  verifyPrincipal: (realm: string) => string
}

/** The krb5.conf in force: the config's, else as MIT picks it (`KRB5_CONFIG`, /etc/krb5.conf). */
async function krb5ConfigPath(config: Config, env: NodeJS.ProcessEnv): Promise<string> {
  if (config.kerberos.config !== '') return config.kerberos.config
  return (await krb5ConfPath(env)) ?? ''
}

export async function resolveKerberosSettings(
  config: Config,
  env: NodeJS.ProcessEnv,
): Promise<KerberosSettings> {
  const path = await krb5ConfigPath(config, env)
  const conf = await readKrb5Conf(path === '' ? undefined : path, env)
  const defaultRealm = (config.realm.default || conf.defaultRealm || '').toUpperCase()
  if (defaultRealm === '') {
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option realm.default: not set, and ${path === '' ? 'there is no krb5.conf (KRB5_CONFIG, /etc/krb5.conf)' : `${path} has no default_realm in [libdefaults]`}: set realm.default (SASLGATE_REALM_DEFAULT) or default_realm`,
    )
  }
  // Before the KDC look-up: "no KDC for realm BAD REALM" would hide that the name itself is wrong.
  if (/[\s\p{Cc}\\@/]/u.test(defaultRealm)) {
    const option =
      config.realm.default !== ''
        ? 'realm.default'
        : `realm.default (unset; default_realm in ${path})`
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option ${option}: ${JSON.stringify(defaultRealm)} is not a realm name (no spaces, control characters, backslash, @ or /)`,
    )
  }
  const kdcs: Record<string, readonly string[]> = {}
  for (const [realm, r] of Object.entries(conf.realms)) if (r.kdc.length > 0) kdcs[realm] = r.kdc
  for (const [realm, list] of Object.entries(config.kerberos.kdcs)) kdcs[realm.toUpperCase()] = list
  if (kdcs[defaultRealm] === undefined) {
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option kerberos.kdcs: no KDC for realm ${defaultRealm} (neither in the config nor in ${path}); saslgate never uses DNS SRV look-ups`,
    )
  }
  const primaryKdcs: Record<string, readonly string[]> = {}
  for (const [realm, r] of Object.entries(conf.realms)) {
    if (r.primaryKdc.length > 0) primaryKdcs[realm] = r.primaryKdc
  }
  for (const [realm, list] of Object.entries(config.kerberos.primaryKdcs)) {
    primaryKdcs[realm.toUpperCase()] = list
  }
  if (config.kerberos.retryOnPrimary && (primaryKdcs[defaultRealm]?.length ?? 0) === 0) {
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option kerberos.retryOnPrimary: no primary KDC for realm ${defaultRealm} (neither kerberos.primaryKdcs nor primary_kdc/master_kdc in ${path || 'krb5.conf'}); set one or turn the retry off`,
    )
  }
  const keytab = config.kerberos.keytab || env.KRB5_KTNAME || '/etc/krb5.keytab'
  const base = config.kerberos.verifyPrincipal || defaultVerifyPrincipal(path)
  checkVerifyPrincipalRealm(config, base, defaultRealm)
  const verifyPrincipal = (realm: string) => (base.includes('@') ? base : `${base}@${realm}`)
  return { krb5ConfigPath: path, defaultRealm, kdcs, primaryKdcs, keytab, verifyPrincipal }
}

const hostPrincipals = new Map<string, string>()

/**
 * saslauthd's verify principal: `host/<canonical name of this host>` the way libkrb5 makes it
 * (krb5_sname_to_principal with KRB5_NT_SRV_HST, honouring krb5.conf's
 * dns_canonicalize_hostname, rdns and qualify_shortname). Worked out once per process and
 * krb5.conf (the host name look-ups block); a failure is a configuration error.
 */
function defaultVerifyPrincipal(krb5ConfigPath: string): string {
  const known = hostPrincipals.get(krb5ConfigPath)
  if (known !== undefined) return known
  const addon = krb5()
  addon.configure(krb5ConfigPath)
  let name: string
  try {
    name = addon.hostServicePrincipal('host')
  } catch (err) {
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option kerberos.verifyPrincipal: not set, and libkrb5 could not make host/<hostname> for ${hostname()} (${(err as Error).message}); set kerberos.verifyPrincipal`,
      { cause: err },
    )
  }
  hostPrincipals.set(krb5ConfigPath, name)
  return name
}

/** Every realm a login may map to (as the principal mapper is built from the config). */
function loginRealms(config: Config, defaultRealm: string): string[] {
  const realms = new Set([defaultRealm, ...config.realm.allowed.map((r) => r.toUpperCase())])
  for (const realm of Object.values(config.realm.domainRealms)) realms.add(realm.toUpperCase())
  return [...realms]
}

/**
 * In AS mode the user's own KDC issues the service ticket in the AS exchange: it can only
 * do that for a service of its own realm, so a verify principal of another realm fails every
 * check. Refused at start; the TGS mode gets a cross-realm service ticket.
 */
function checkVerifyPrincipalRealm(config: Config, base: string, defaultRealm: string): void {
  const at = base.lastIndexOf('@')
  if (at < 0 || config.kerberos.serviceTicketVia !== 'as') return
  const realm = base.slice(at + 1)
  const others = loginRealms(config, defaultRealm).filter((r) => r !== realm)
  if (others.length === 0) return
  throw new SaslgateError(
    'SASLGATE_ERR_CONFIG',
    `config option kerberos.verifyPrincipal: ${base} is in realm ${realm || '(none)'} but logins map to ${others.join(', ')}; with kerberos.serviceTicketVia=as the service ticket comes from the user's own KDC and every check would fail: set kerberos.serviceTicketVia=tgs (cross-realm) or give the principal without @REALM`,
  )
}

export interface KerberosHooks {
  onAttempt?: KdcTransportOptions['onAttempt']
  onBreakerChange?: KdcTransportOptions['onBreakerChange']
  onRefusedReply?: VerifierOptions['onRefusedReply']
  onVerifyPrincipal?: VerifierOptions['onVerifyPrincipal']
  onPrimaryRetry?: VerifierOptions['onPrimaryRetry']
}

export function createVerifier(
  config: Config,
  settings: KerberosSettings,
  hooks: KerberosHooks = {},
): KerberosVerifier {
  return createKerberos(config, settings, hooks).verifier
}

/** The verifier and its KDC transport (for breaker-state gauges). */
export function createKerberos(
  config: Config,
  settings: KerberosSettings,
  hooks: KerberosHooks = {},
): { verifier: KerberosVerifier; transport: KdcClient } {
  krb5().configure(settings.krb5ConfigPath)
  const { onVerifyPrincipal, onRefusedReply: _refused, onPrimaryRetry, ...transportHooks } = hooks
  const transport = new KdcClient({
    realms: settings.kdcs,
    // Primaries serve only the retry: without it they get no breaker (and no gauge).
    primaries: config.kerberos.retryOnPrimary ? settings.primaryKdcs : {},
    udpAttemptTimeoutMs: config.kerberos.udpAttemptTimeoutMs,
    tcpAttemptTimeoutMs: config.kerberos.tcpAttemptTimeoutMs,
    breaker: {
      resetTimeoutMs: config.kerberos.breakerResetTimeoutMs,
      volumeThreshold: config.kerberos.breakerVolumeThreshold,
      errorThresholdPercentage: config.kerberos.breakerErrorThresholdPercentage,
    },
    ...transportHooks,
  })
  const verifier = new KerberosVerifier({
    ...(onVerifyPrincipal ? { onVerifyPrincipal } : {}),
    ...(onPrimaryRetry ? { onPrimaryRetry } : {}),
    transport,
    verifyPrincipal: settings.verifyPrincipal,
    keytab: settings.keytab,
    serviceTicketVia: config.kerberos.serviceTicketVia,
    maxS2kIterations: config.kerberos.maxS2kIterations,
    enctypes: config.kerberos.enctypes,
    requireDefaultSalt: config.kerberos.requireDefaultSalt,
    deriveKeys: config.kerberos.deriveKeys,
    retryOnPrimary: config.kerberos.retryOnPrimary,
    ...(hooks.onRefusedReply !== undefined ? { onRefusedReply: hooks.onRefusedReply } : {}),
  })
  return { verifier, transport }
}

/** Every realm a login can map to: the default, `realm.allowed` and the `domainRealms` targets. */
export function mappedRealms(config: Config, defaultRealm: string): string[] {
  const realms = new Set([defaultRealm, ...config.realm.allowed.map((r) => r.toUpperCase())])
  for (const realm of Object.values(config.realm.domainRealms)) realms.add(realm.toUpperCase())
  return [...realms]
}

/**
 * Checked once at start (serve, verify): the keytab can be read by this process and holds the
 * verify principal of every realm a login can map to. Throws `SASLGATE_ERR_KEYTAB` (exit 78).
 */
export async function checkKeytabAtStart(
  config: Config,
  settings: KerberosSettings,
): Promise<{ checked: boolean }> {
  const principals = [
    ...new Set(mappedRealms(config, settings.defaultRealm).map(settings.verifyPrincipal)),
  ]
  const option = config.kerberos.keytab !== '' ? 'kerberos.keytab' : 'KRB5_KTNAME'
  return checkKeytab({ keytab: settings.keytab, principals, option })
}
