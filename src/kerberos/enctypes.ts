/**
 * Kerberos enctypes by name, the allow-list the AS exchange may use, and how much PBKDF2 work
 * a KDC reply may ask for per enctype.
 *
 * libkrb5 1.20's default list includes des3-cbc-sha1 and arcfour-hmac (rc4): a spoofed
 * PREAUTH_REQUIRED offering only rc4 would make it send a PA-ENC-TIMESTAMP under the
 * unsalted MD4 hash of the password, crackable offline at MD4 speed. saslgate asks libkrb5
 * for the allowed enctypes only (`krb5_get_init_creds_opt_set_etype_list`) and refuses,
 * before libkrb5 sees it, a reply whose string-to-key hint offers none of them.
 */
import { SaslgateError } from '../errors.js'

/** Enctype names (MIT's spelling and its aliases) -> numbers (RFC 3961 registry). */
export const ENCTYPE_NUMBERS: ReadonlyMap<string, number> = new Map([
  ['aes256-cts-hmac-sha1-96', 18],
  ['aes256-cts', 18],
  ['aes256-sha1', 18],
  ['aes128-cts-hmac-sha1-96', 17],
  ['aes128-cts', 17],
  ['aes128-sha1', 17],
  ['aes256-cts-hmac-sha384-192', 20],
  ['aes256-sha2', 20],
  ['aes128-cts-hmac-sha256-128', 19],
  ['aes128-sha2', 19],
  ['camellia256-cts-cmac', 26],
  ['camellia256-cts', 26],
  ['camellia128-cts-cmac', 25],
  ['camellia128-cts', 25],
  ['des3-cbc-sha1', 16],
  ['des3-hmac-sha1', 16],
  ['des3-cbc-sha1-kd', 16],
  ['arcfour-hmac', 23],
  ['rc4-hmac', 23],
  ['arcfour-hmac-md5', 23],
])

/** The allow-list when none is configured: AES with SHA-1 and SHA-2, strongest first. */
export const DEFAULT_ENCTYPES = [
  'aes256-cts-hmac-sha1-96',
  'aes128-cts-hmac-sha1-96',
  'aes256-cts-hmac-sha384-192',
  'aes128-cts-hmac-sha256-128',
] as const

/**
 * Names -> enctype numbers, in the given (preference) order, duplicates dropped. Throws
 * SASLGATE_ERR_CONFIG naming `option` for an unknown name or an empty list.
 */
export function parseEnctypes(names: readonly string[], option = 'kerberos.enctypes'): number[] {
  const out: number[] = []
  for (const raw of names) {
    const name = raw.trim().toLowerCase()
    const n = ENCTYPE_NUMBERS.get(name)
    if (n === undefined) {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        `config option ${option}: unknown enctype "${raw}" (known: ${[...new Set(ENCTYPE_NUMBERS.keys())].join(', ')})`,
      )
    }
    if (!out.includes(n)) out.push(n)
  }
  if (out.length === 0) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', `config option ${option}: no enctype allowed`)
  }
  return out
}

/**
 * MIT's default PBKDF2 iteration counts for the enctypes whose s2kparams is a 4-byte
 * big-endian iteration count: AES-SHA1 (RFC 3962), AES-SHA2 (RFC 8009), Camellia
 * (RFC 6803). libkrb5 refuses counts below these (and 0, and >= 2^24).
 */
export const S2K_DEFAULT_ITERATIONS: ReadonlyMap<number, number> = new Map([
  [17, 4096],
  [18, 4096],
  [19, 32768],
  [20, 32768],
  [25, 32768],
  [26, 32768],
])

/**
 * How many times its default count a reply may ask for: 4x covers every site that raised
 * the count on purpose that we know of, and bounds a spoofed reply to ~4 normal checks of
 * CPU (one global 100,000 allowed ~24x for AES-SHA1, ~90 ms of libk5crypto per reply).
 */
export const S2K_CEILING_FACTOR = 4

/**
 * The highest iteration count accepted for `etype`: `override` when it is > 0 (the option
 * `kerberos.maxS2kIterations`, one ceiling for every enctype), else 4x the enctype's
 * default. Undefined for enctypes without an iteration count.
 */
export function s2kCeiling(etype: number, override = 0): number | undefined {
  const def = S2K_DEFAULT_ITERATIONS.get(etype)
  if (def === undefined) return undefined
  return override > 0 ? override : def * S2K_CEILING_FACTOR
}
