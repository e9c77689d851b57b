/**
 * Principal mapping (pure): a saslauthd login and realm field -> `user@REALM`.
 *
 * Cyrus sends either `user@domain` in the login (realm field empty) or the domain in the
 * realm field (libsasl2 splits at the last `@`). The domain maps to a realm through
 * `domainRealms`, else to the uppercased domain when that realm is allowed; no domain
 * means `defaultRealm`. Anything odd is refused: empty, NUL, control, format or whitespace
 * characters, a leftover `@`, a backslash (libkrb5's escape character), `/` unless
 * instances are allowed, logins over `maxLoginBytes`, a domain that is not plain ASCII
 * (`[A-Za-z0-9._-]`), a login domain and realm field that disagree, realms not allowed.
 */
import { SaslgateError } from '../errors.js'

export interface PrincipalMapperOptions {
  /** The realm of logins without a domain. Required. */
  defaultRealm: string
  /** Allowed realms (uppercased); empty: `[defaultRealm]`. Must include `defaultRealm`. */
  realms: string[]
  /** Mail domain (any case) -> realm, e.g. `example.edu` -> `EXAMPLE.EDU`. */
  domainRealms: Record<string, string>
  /** Accept `user/instance` logins. */
  allowInstances: boolean
  /** Ignore any domain in the login or realm field and use `defaultRealm`. */
  stripDomain: boolean
  /** Longest login, and longest realm field, in UTF-8 bytes. */
  maxLoginBytes: number
}

export const DEFAULT_PRINCIPAL_MAPPER_OPTIONS: PrincipalMapperOptions = Object.freeze({
  defaultRealm: '',
  realms: [],
  domainRealms: {},
  allowInstances: false,
  stripDomain: false,
  maxLoginBytes: 256,
})

export type PrincipalMapping =
  | { ok: true; principal: string; realm: string; name: string }
  | { ok: false; reason: 'unmappable_login' }

export interface PrincipalMapper {
  map(login: string, realmField: string): PrincipalMapping
}

const REFUSED: PrincipalMapping = Object.freeze({ ok: false, reason: 'unmappable_login' })

/**
 * Characters never accepted in a login, domain or realm: control (incl. NUL), format
 * (zero-width, bidi), whitespace, separators, private use, unassigned, lone surrogates,
 * U+FFFD (a decoding error upstream), and libkrb5's escape character.
 */
const BAD_CHAR = /[\p{Cc}\p{Cf}\p{Z}\p{White_Space}\p{Co}\p{Cn}\p{Cs}\uFFFD\\]/u

/** Realm names: also no `@` or `/` (component separators). */
const BAD_REALM_CHAR = /[@/]/

/** A mail domain or realm in a login or realm field: ASCII letters, digits, `.`, `-`, `_`. */
const DOMAIN = /^[A-Za-z0-9._-]+$/

export function createPrincipalMapper(options: Partial<PrincipalMapperOptions>): PrincipalMapper {
  const o: PrincipalMapperOptions = { ...DEFAULT_PRINCIPAL_MAPPER_OPTIONS, ...options }
  const defaultRealm = configRealm(o.defaultRealm, 'defaultRealm')
  const realms = new Set(
    (o.realms.length > 0 ? o.realms : [defaultRealm]).map((r, i) => configRealm(r, `realms[${i}]`)),
  )
  if (!realms.has(defaultRealm)) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', 'realms must include defaultRealm')
  }
  const domainRealms = new Map<string, string>()
  for (const [domain, realm] of Object.entries(o.domainRealms)) {
    const d = domain.toLowerCase()
    if (d === '' || BAD_CHAR.test(d) || BAD_REALM_CHAR.test(d)) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'domainRealms has an invalid domain')
    }
    const r = configRealm(realm, `domainRealms[${domain}]`)
    if (!realms.has(r)) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', `domainRealms maps to ${r}, not in realms`)
    }
    if (domainRealms.has(d)) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', `domainRealms lists ${d} twice`)
    }
    domainRealms.set(d, r)
  }
  if (!Number.isSafeInteger(o.maxLoginBytes) || o.maxLoginBytes < 1) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', 'maxLoginBytes must be a positive integer')
  }
  const { allowInstances, stripDomain, maxLoginBytes } = o

  function realmOf(domain: string | undefined): string | undefined {
    if (domain === undefined || stripDomain) return defaultRealm
    const d = domain.toLowerCase()
    const mapped = domainRealms.get(d)
    if (mapped !== undefined) return mapped
    const upper = domain.toUpperCase()
    return realms.has(upper) ? upper : undefined
  }

  return {
    map(login: string, realmField: string): PrincipalMapping {
      if (typeof login !== 'string' || typeof realmField !== 'string') return REFUSED
      if (login === '' || !fits(login, maxLoginBytes) || !fits(realmField, maxLoginBytes)) {
        return REFUSED
      }
      if (BAD_CHAR.test(login) || BAD_CHAR.test(realmField)) return REFUSED
      const at = login.lastIndexOf('@')
      const name = at < 0 ? login : login.slice(0, at)
      const loginDomain = at < 0 ? undefined : login.slice(at + 1)
      if (name === '' || name.includes('@')) return REFUSED
      if (loginDomain !== undefined && !DOMAIN.test(loginDomain)) return REFUSED
      if (realmField !== '' && !DOMAIN.test(realmField)) return REFUSED
      let domain = loginDomain
      if (realmField !== '') {
        // Both given: they must agree.
        if (domain !== undefined && domain.toLowerCase() !== realmField.toLowerCase()) {
          return REFUSED
        }
        domain = realmField
      }
      if (name.includes('/')) {
        if (!allowInstances) return REFUSED
        if (name.split('/').some((c) => c === '')) return REFUSED
      }
      const realm = realmOf(domain)
      if (realm === undefined) return REFUSED
      return { ok: true, principal: `${name}@${realm}`, realm, name }
    },
  }
}

function fits(s: string, maxBytes: number): boolean {
  // A UTF-16 code unit is at most 3 UTF-8 bytes; skip the count for short strings.
  return s.length * 3 <= maxBytes || Buffer.byteLength(s, 'utf8') <= maxBytes
}

function configRealm(value: unknown, option: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', `${option} must be a non-empty realm name`)
  }
  const realm = value.toUpperCase()
  if (BAD_CHAR.test(realm) || BAD_REALM_CHAR.test(realm) || Buffer.byteLength(realm) > 256) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', `${option} is not a valid realm name`)
  }
  return realm
}
