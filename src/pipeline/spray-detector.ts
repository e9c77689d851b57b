import { createHmac, randomBytes } from 'node:crypto'
import { SaslgateError } from '../errors.js'
import { evictOverflow, sweepExpired, touch } from './lru.js'

/**
 * Password-spray detection: which passwords are being tried on more than one principal.
 *
 * A botnet replays a dictionary over many principals (existing and unknown alike); a real
 * user's password is tried on one principal only. Every attempt the verdict cache does not
 * answer OK is recorded here (`sighting`), whatever stage answers it later (negative cache,
 * guard, KDC), so a dictionary word stands out after its second principal, before the KDC
 * has refused it anywhere.
 *
 * Passwords are keyed with HMAC-SHA256(random 32-byte process key, password): no password
 * and no unkeyed hash is stored. Each entry keeps the first `sprayPrincipals` distinct
 * principals it was tried on (plain names, like the verdict cache) and expires `windowMs`
 * after its last sighting; each sighting sweeps a few expired ones (lru.ts). Entries are
 * LRU-bounded (`maxEntries`), so a storm of random passwords cannot grow memory; an evicted entry only makes a password look unsprayed again.
 *
 * This only classifies; the guard decides (a password that is not sprayed may use the KDC
 * budget reserved for first-time users, see guard.ts). Local to the process.
 */

export interface SprayDetectorOptions {
  /** A password tried on this many distinct principals within the window is sprayed. */
  sprayPrincipals: number
  /** How long a sighting counts (sliding from the password's last sighting). */
  windowMs: number
  /** LRU bound on tracked passwords. */
  maxEntries: number
  /** Clock (ms); injectable for tests. */
  now: () => number
}

export const DEFAULT_SPRAY_DETECTOR_OPTIONS: Readonly<SprayDetectorOptions> = Object.freeze({
  sprayPrincipals: 2,
  windowMs: 10 * 60 * 1000,
  maxEntries: 100_000,
  now: Date.now,
})

interface Entry {
  /** Distinct principals seen with this password (at most `sprayPrincipals`). */
  principals: string[]
  lastAt: number
}

export class SprayDetector {
  readonly #options: SprayDetectorOptions
  #key: Buffer | undefined = randomBytes(32)
  /** HMAC(key, password) -> entry; Map order is LRU order (oldest first). */
  readonly #entries = new Map<string, Entry>()

  constructor(options: Partial<SprayDetectorOptions> = {}) {
    const o = { ...DEFAULT_SPRAY_DETECTOR_OPTIONS, ...options }
    if (!Number.isInteger(o.sprayPrincipals) || o.sprayPrincipals < 2) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'spray detector: sprayPrincipals must be >= 2')
    }
    if (!(o.windowMs > 0) || !Number.isInteger(o.maxEntries) || o.maxEntries < 1) {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        'spray detector: windowMs must be > 0 and maxEntries >= 1',
      )
    }
    this.#options = o
  }

  /** Passwords tracked (for metrics). */
  get size(): number {
    return this.#entries.size
  }

  /**
   * Records that `password` is being tried on `principal` and answers whether it is
   * sprayed: tried on at least `sprayPrincipals` distinct principals within the window
   * (this attempt included).
   */
  sighting(principal: string, password: Buffer): boolean {
    const digest = this.#digest(password)
    if (digest === undefined) return false
    const now = this.#options.now()
    sweepExpired(this.#entries, (e) => now - e.lastAt > this.#options.windowMs)
    const seen = this.#entries.get(digest)
    const live = seen !== undefined && now - seen.lastAt <= this.#options.windowMs
    const entry: Entry = live ? seen : { principals: [], lastAt: now }
    if (
      entry.principals.length < this.#options.sprayPrincipals &&
      !entry.principals.includes(principal)
    ) {
      entry.principals.push(principal)
    }
    entry.lastAt = now
    touch(this.#entries, digest, entry)
    evictOverflow(this.#entries, this.#options.maxEntries)
    return entry.principals.length >= this.#options.sprayPrincipals
  }

  /** True when `password` is sprayed, without recording anything. */
  isSprayed(password: Buffer): boolean {
    const digest = this.#digest(password)
    const seen = digest === undefined ? undefined : this.#entries.get(digest)
    if (seen === undefined || this.#options.now() - seen.lastAt > this.#options.windowMs) {
      return false
    }
    return seen.principals.length >= this.#options.sprayPrincipals
  }

  /** Drops every entry and wipes the key. Idempotent. */
  close(): void {
    this.#entries.clear()
    this.#key?.fill(0)
    this.#key = undefined
  }

  #digest(password: Buffer): string | undefined {
    if (this.#key === undefined) return undefined
    return createHmac('sha256', this.#key).update(password).digest('base64')
  }
}
