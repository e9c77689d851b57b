/**
 * What a test realm writes before anything runs: `kdc.conf` and `krb5.conf` text, the
 * `kadmin.local` commands that fill the database, and the dump-cache key of those options.
 * Pure functions of the resolved options.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { PROBE_PRINCIPAL, type ResolvedOptions } from './realm-options.js'

export const HOST = '127.0.0.1'
const CACHE_FORMAT = 'v1'
/** Name of the lockout policy (attached after the keys are set: MIT refuses, under any policy,
 * a password equal to a name component, and test users often have such passwords). */
export const LOCKOUT_POLICY = 'saslgate-lockout'

/** Quotes an argument for kadmin's command-line parser (double quotes, `""` for a quote). */
export function kq(value: string): string {
  return `"${value.replaceAll('"', '""')}"`
}

// ---------------------------------------------------------------------------------------------
// Configuration files

export function renderKdcConf(
  o: ResolvedOptions,
  dir: string,
  port: number,
  logPath: string,
): string {
  const listen = `${HOST}:${port}`
  return `[kdcdefaults]
  kdc_listen = ${listen}
  kdc_tcp_listen = ${listen}

[realms]
  ${o.realm} = {
    database_name = ${join(dir, 'db', 'principal')}
    key_stash_file = ${join(dir, 'stash')}
    acl_file = ${join(dir, 'kadm5.acl')}
    kdc_listen = ${listen}
    kdc_tcp_listen = ${listen}
    master_key_type = aes256-cts-hmac-sha1-96
    supported_enctypes = ${o.enctypes}
    max_life = ${o.maxTicketLife}
    max_renewable_life = 0
  }

[logging]
  kdc = FILE:${logPath}
  admin_server = FILE:${join(dir, 'kadmin.log')}
  default = FILE:${join(dir, 'default.log')}
`
}

export function renderKrb5Conf(realm: string, ports: readonly number[]): string {
  const kdcs = ports.map((p) => `    kdc = ${HOST}:${p}\n`).join('')
  return `[libdefaults]
  default_realm = ${realm}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  noaddresses = true
  forwardable = false
  proxiable = false
  udp_preference_limit = 1465

[realms]
  ${realm} = {
${kdcs}  }

[domain_realm]
`
}

// ---------------------------------------------------------------------------------------------
// Database

export function principalCount(o: ResolvedOptions): { password: number; total: number } {
  const password = o.users.length + o.expiredUsers.length + o.disabledUsers.length
  return { password, total: password + o.randomKeyUsers + 2 }
}

export function buildCommands(o: ResolvedOptions): string[] {
  const cmds: string[] = []
  for (const u of o.users) {
    const keys = u.enctypes !== undefined ? `-e ${kq(u.enctypes)} ` : ''
    cmds.push(`addprinc +requires_preauth ${keys}-pw ${kq(u.password)} ${u.name}`)
  }
  for (const u of o.expiredUsers) {
    cmds.push(`addprinc +requires_preauth -pw ${kq(u.password)} ${u.name}`)
  }
  for (const u of o.disabledUsers) {
    cmds.push(`addprinc +requires_preauth -allow_tix -pw ${kq(u.password)} ${u.name}`)
  }
  for (let i = 1; i <= o.randomKeyUsers; i++) {
    cmds.push(`addprinc +requires_preauth -randkey ${bulkName(i)}`)
  }
  cmds.push(`addprinc -randkey ${o.servicePrincipal}`)
  cmds.push(`addprinc -randkey ${PROBE_PRINCIPAL}`)
  if (o.lockout !== undefined) {
    const l = o.lockout
    cmds.push(
      `add_policy -maxfailure ${l.maxFailure} -failurecountinterval ${l.failureCountIntervalS}s ` +
        `-lockoutduration ${l.lockoutDurationS}s ${LOCKOUT_POLICY}`,
    )
    for (const u of [...o.users, ...o.expiredUsers, ...o.disabledUsers]) {
      cmds.push(`modprinc -policy ${LOCKOUT_POLICY} ${u.name}`)
    }
    for (let i = 1; i <= o.randomKeyUsers; i++) {
      cmds.push(`modprinc -policy ${LOCKOUT_POLICY} ${bulkName(i)}`)
    }
  }
  // Last: attaching a policy recomputes (here: clears) the password expiration.
  for (const u of o.expiredUsers) {
    cmds.push(`modprinc -pwexpire ${kq('2000-01-01 00:00:00 UTC')} ${u.name}`)
  }
  return cmds
}

function bulkName(i: number): string {
  return `bulk${String(i).padStart(4, '0')}`
}

export function cacheKey(o: ResolvedOptions): string {
  const material = JSON.stringify([
    CACHE_FORMAT,
    o.realm,
    o.users,
    o.expiredUsers,
    o.disabledUsers,
    o.randomKeyUsers,
    o.servicePrincipal,
    o.lockout ?? null,
    o.enctypes,
    o.masterPassword,
    o.maxTicketLife,
  ])
  return createHash('sha256').update(material).digest('hex').slice(0, 32)
}
