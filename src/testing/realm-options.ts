/**
 * Options of a throw-away test realm: the public option types, their defaults, and the
 * validation that turns `RealmOptions` into fully resolved options (or a SASLGATE_ERR_CONFIG).
 */
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SaslgateError } from '../errors.js'

export interface RealmUser {
  name: string
  password: string
  /** Only these keys (`addprinc -e`, e.g. `rc4-hmac:normal`); default: the realm's enctypes. */
  enctypes?: string
}

export interface LockoutPolicy {
  maxFailure: number
  failureCountIntervalS: number
  lockoutDurationS: number
}

export interface RealmOptions {
  /** Realm name (upper case). */
  realm?: string
  /** Password principals, created `+requires_preauth`. */
  users?: readonly RealmUser[]
  /** Extra principals `bulk0001`... with random keys (cheap: no string-to-key). */
  randomKeyUsers?: number
  /** Unqualified service principal exported to `realm.keytab`. */
  servicePrincipal?: string
  /** Password principals whose password expired in 2000 (KDC_ERR_KEY_EXP). */
  expiredUsers?: readonly RealmUser[]
  /** Password principals with `-allow_tix` (KDC_ERR_CLIENT_REVOKED). */
  disabledUsers?: readonly RealmUser[]
  /** A lockout policy attached to every user principal (not the service principal). */
  lockout?: LockoutPolicy
  /** More krb5kdc processes serving the same database on other ports. */
  extraKdcs?: number
  /** `supported_enctypes` of the realm (keys of every new principal). */
  enctypes?: string
  /** Master password of the database (fixed so cached dumps load). */
  masterPassword?: string
  /** Use the dump cache: true, false, or undefined = when there are many password principals. */
  cache?: boolean
  cacheMinPasswordUsers?: number
  cacheDir?: string
  /** Bounded wait for a KDC to answer after spawning it. */
  startTimeoutMs?: number
  /** Bounded wait for a KDC to exit after SIGTERM (then SIGKILL). */
  stopTimeoutMs?: number
  /** Timeout of one kdb5_util / kadmin.local / kinit run (batches add a per-principal share). */
  toolTimeoutMs?: number
  toolTimeoutPerPrincipalMs?: number
  /** New ports tried when a KDC cannot bind its port. */
  portClashRetries?: number
  maxTicketLife?: string
}

export const DEFAULT_REALM_OPTIONS = {
  realm: 'SASLGATE.TEST',
  users: [] as readonly RealmUser[],
  randomKeyUsers: 0,
  servicePrincipal: 'host/saslgate.test',
  expiredUsers: [] as readonly RealmUser[],
  disabledUsers: [] as readonly RealmUser[],
  lockout: undefined as LockoutPolicy | undefined,
  extraKdcs: 0,
  enctypes: 'aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal',
  masterPassword: 'saslgate-test-realm-master',
  cache: undefined as boolean | undefined,
  cacheMinPasswordUsers: 50,
  cacheDir: join(tmpdir(), 'saslgate-realm-cache'),
  startTimeoutMs: 10_000,
  stopTimeoutMs: 5_000,
  toolTimeoutMs: 30_000,
  toolTimeoutPerPrincipalMs: 50,
  portClashRetries: 5,
  maxTicketLife: '10h',
}

/** Principal used to probe a KDC's readiness; excluded from `kdcRequestCount()`. */
export const PROBE_PRINCIPAL = 'saslgate-kdc-probe'

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$/
const REALM_RE = /^[A-Z0-9][A-Z0-9.-]{0,63}$/
const ENCTYPES_RE = /^[a-z0-9-]+:[a-z0-9]+( [a-z0-9-]+:[a-z0-9]+)*$/
const MAX_PASSWORD_LENGTH = 256

export type ResolvedOptions = typeof DEFAULT_REALM_OPTIONS

export function configError(message: string): never {
  throw new SaslgateError('SASLGATE_ERR_CONFIG', message)
}

export function resolveOptions(options: RealmOptions): ResolvedOptions {
  const o: ResolvedOptions = { ...DEFAULT_REALM_OPTIONS }
  for (const [key, value] of Object.entries(options)) {
    if (!(key in DEFAULT_REALM_OPTIONS)) configError(`realm option ${key} is unknown`)
    if (value !== undefined) (o as Record<string, unknown>)[key] = value
  }
  if (!REALM_RE.test(o.realm)) configError('realm option realm must be an upper-case realm name')
  if (!NAME_RE.test(o.servicePrincipal)) configError('realm option servicePrincipal is invalid')
  if (!ENCTYPES_RE.test(o.enctypes)) configError('realm option enctypes is invalid')
  for (const key of ['randomKeyUsers', 'extraKdcs', 'portClashRetries'] as const) {
    if (!Number.isSafeInteger(o[key]) || o[key] < 0) configError(`realm option ${key} must be >= 0`)
  }
  if (o.randomKeyUsers > 9999) configError('realm option randomKeyUsers must be <= 9999')
  const names = new Set([o.servicePrincipal, PROBE_PRINCIPAL])
  for (const list of ['users', 'expiredUsers', 'disabledUsers'] as const) {
    for (const [i, user] of o[list].entries()) {
      checkUser(user, `${list}[${i}]`)
      if (names.has(user.name)) configError(`realm option ${list}[${i}] repeats a principal name`)
      names.add(user.name)
    }
  }
  if (o.lockout !== undefined) {
    for (const [k, v] of Object.entries(o.lockout)) {
      if (!Number.isSafeInteger(v) || v < 0) configError(`realm option lockout.${k} must be >= 0`)
    }
  }
  return o
}

export function checkUser(user: RealmUser, where: string): void {
  if (typeof user?.name !== 'string' || !NAME_RE.test(user.name)) {
    configError(`realm option ${where}.name is not a plain principal name`)
  }
  if (/^bulk\d{4}$/.test(user.name)) configError(`realm option ${where}.name is reserved`)
  checkPassword(user.password, `${where}.password`)
  if (user.enctypes !== undefined && !ENCTYPES_RE.test(user.enctypes)) {
    configError(`realm option ${where}.enctypes is invalid`)
  }
}

function checkPassword(password: string, where: string): void {
  if (
    typeof password !== 'string' ||
    password.length === 0 ||
    password.length > MAX_PASSWORD_LENGTH ||
    /[\0\r\n]/.test(password)
  ) {
    configError(`realm option ${where} must be 1-${MAX_PASSWORD_LENGTH} chars without NUL/CR/LF`)
  }
}
