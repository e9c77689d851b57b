/**
 * `saslgate principal-hash LOGIN...`: the `h:...` label saslgate's logs and traces carry for a
 * user (`telemetry.principals: hash`), so an operator can grep for one user without the logs
 * holding names. Same mapping as a login (`alice` -> `alice@DEFAULT.REALM`, mail domains by
 * `realm.domainRealms`) and the same HMAC and key (`telemetry.principalKeyFile`) as the logs.
 *
 * Without a key file each process hashes with a random key of its own: no later command can
 * recompute those labels, which is said (exit 78) rather than printing a useless hash.
 */
import { mapperFromConfig } from '../authenticate-local.js'
import type { Config } from '../config.js'
import { SaslgateError } from '../errors.js'
import { krb5ConfPath, readKrb5Conf } from '../kerberos/krb5-conf.js'
import { principalLabel } from '../telemetry/names.js'
import { principalKeyFromConfig } from '../telemetry/setup.js'

/** The default realm as a login sees it: `realm.default`, else krb5.conf's `default_realm`. */
async function defaultRealm(config: Config, env: NodeJS.ProcessEnv): Promise<string> {
  if (config.realm.default !== '') return config.realm.default.toUpperCase()
  const path = config.kerberos.config !== '' ? config.kerberos.config : await krb5ConfPath(env)
  const conf = await readKrb5Conf(path ?? undefined, env)
  const realm = (conf.defaultRealm ?? '').toUpperCase()
  if (realm === '')
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option realm.default: not set and ${path || 'no krb5.conf'} has no default_realm (needed to map a login without @REALM)`,
    )
  return realm
}

export interface PrincipalHashLine {
  login: string
  /** The mapped principal, or undefined when the login does not map (refused before mapping). */
  principal?: string
  label?: string
  refused?: string
}

export async function principalHashes(
  config: Config,
  logins: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<PrincipalHashLine[]> {
  const key = principalKeyFromConfig(config)
  if (key === undefined)
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      'config option telemetry.principalKeyFile: not set, so every saslgate process hashes principals with a random key of its own and no label can be recomputed; set the same key file on every replica (>= 16 random bytes) and restart',
    )
  const label = principalLabel('hash', key)
  key.fill(0)
  const mapper = mapperFromConfig(config, await defaultRealm(config, env))
  return logins.map((login) => {
    const at = login.lastIndexOf('@')
    const mapped =
      at > 0 ? mapper.map(login.slice(0, at), login.slice(at + 1)) : mapper.map(login, '')
    if (!mapped.ok) return { login, refused: mapped.reason }
    return { login, principal: mapped.principal, label: label(mapped.principal) }
  })
}
