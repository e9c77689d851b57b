/**
 * Principal names in telemetry (spans and logs; never metric labels): as they are, as a
 * keyed hash, or left out, by the `telemetry.principals` option.
 *
 * The keyed hash lets an operator follow one principal through a storm (the same name gives
 * the same label within a process, or across processes sharing a configured key) without
 * the telemetry backend learning the name: without the key, a label cannot be checked
 * against a guessed name. The key is random per process unless one is configured.
 */
import { createHmac, randomBytes } from 'node:crypto'
import { SaslgateError } from '../errors.js'

export type PrincipalMode = 'plain' | 'hash' | 'omit'

export const PRINCIPAL_MODES: readonly PrincipalMode[] = ['plain', 'hash', 'omit']

/** Shortest accepted HMAC key (bytes). */
export const MIN_PRINCIPAL_KEY_BYTES = 16

/** Hex characters of the HMAC kept in a label (64 bits: no collisions at any site's size). */
const HASH_HEX_CHARS = 16

/** A fresh random key for `hash` mode (32 bytes). */
export function randomPrincipalKey(): Buffer {
  return randomBytes(32)
}

/**
 * Returns the function that turns a principal into its telemetry label.
 *
 * - `plain`: the principal as it is.
 * - `hash`: `h:` and the first 16 hex characters of HMAC-SHA256(key, principal).
 * - `omit`: always `undefined` (leave the attribute out).
 *
 * The key is copied; `hash` needs at least 16 bytes of it.
 */
export function principalLabel(
  mode: PrincipalMode,
  key: Buffer,
): (principal: string) => string | undefined {
  switch (mode) {
    case 'plain':
      return (principal) => principal
    case 'omit':
      return () => undefined
    case 'hash': {
      if (key.length < MIN_PRINCIPAL_KEY_BYTES) {
        throw new SaslgateError(
          'SASLGATE_ERR_CONFIG',
          `telemetry.principals: the hash key needs at least ${MIN_PRINCIPAL_KEY_BYTES} bytes`,
        )
      }
      const own = Buffer.from(key)
      return (principal) =>
        `h:${createHmac('sha256', own).update(principal, 'utf8').digest('hex').slice(0, HASH_HEX_CHARS)}`
    }
    default:
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        `telemetry.principals: "${String(mode)}" is not one of ${PRINCIPAL_MODES.join(', ')}`,
      )
  }
}
