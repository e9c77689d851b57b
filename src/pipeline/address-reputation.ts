import { createHmac, randomBytes } from 'node:crypto'
import { SaslgateError } from '../errors.js'
import { evictOverflow, sweepExpired, touch } from './lru.js'

/**
 * Client-address reputation: how many failed logins came from an end user's address.
 *
 * Only requests that carry the address count (five-field saslauthd frames, `ip;port`; the
 * port is dropped). An address with `suspectFailures` or more failed logins within the
 * window (sliding from its last failure) is suspect: its requests never use the KDC budget
 * reserved for first-time users (see guard.ts). Reputation never refuses anything by
 * itself, so a shared address (a campus NAT with a bot behind it) costs its users at most
 * that privilege.
 *
 * Addresses are keyed with HMAC-SHA256(random process key, address): none is stored in
 * clear. LRU-bounded by `maxEntries`; each failure sweeps a few expired entries (lru.ts).
 * Local to the process.
 */

export interface AddressReputationOptions {
  /** Failed logins from one address within the window that make it suspect. */
  suspectFailures: number
  /** How long failures count (sliding from the address's last failure). */
  windowMs: number
  /** LRU bound on tracked addresses. */
  maxEntries: number
  /** Clock (ms); injectable for tests. */
  now: () => number
}

export const DEFAULT_ADDRESS_REPUTATION_OPTIONS: Readonly<AddressReputationOptions> = Object.freeze(
  {
    suspectFailures: 3,
    windowMs: 10 * 60 * 1000,
    maxEntries: 100_000,
    now: Date.now,
  },
)

interface Entry {
  failures: number
  lastAt: number
}

/** The host part of a saslauthd client address (`ip;port`), or undefined when empty. */
export function addressHost(clientAddress: string | undefined): string | undefined {
  if (clientAddress === undefined) return undefined
  const semi = clientAddress.lastIndexOf(';')
  const host = (semi >= 0 ? clientAddress.slice(0, semi) : clientAddress).trim()
  return host === '' ? undefined : host
}

export class AddressReputation {
  readonly #options: AddressReputationOptions
  #key: Buffer | undefined = randomBytes(32)
  /** HMAC(key, host) -> entry; Map order is LRU order (oldest first). */
  readonly #entries = new Map<string, Entry>()

  constructor(options: Partial<AddressReputationOptions> = {}) {
    const o = { ...DEFAULT_ADDRESS_REPUTATION_OPTIONS, ...options }
    if (!Number.isInteger(o.suspectFailures) || o.suspectFailures < 1) {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        'address reputation: suspectFailures must be >= 1',
      )
    }
    if (!(o.windowMs > 0) || !Number.isInteger(o.maxEntries) || o.maxEntries < 1) {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        'address reputation: windowMs must be > 0 and maxEntries >= 1',
      )
    }
    this.#options = o
  }

  /** Addresses tracked (for metrics). */
  get size(): number {
    return this.#entries.size
  }

  /** Counts one failed login from `clientAddress` (ignored when absent). */
  recordFailure(clientAddress: string | undefined): void {
    const digest = this.#digest(clientAddress)
    if (digest === undefined) return
    const now = this.#options.now()
    const windowMs = this.#options.windowMs
    sweepExpired(this.#entries, (e) => now - e.lastAt > windowMs)
    const seen = this.#entries.get(digest)
    const live = seen !== undefined && now - seen.lastAt <= windowMs
    touch(this.#entries, digest, { failures: live ? seen.failures + 1 : 1, lastAt: now })
    evictOverflow(this.#entries, this.#options.maxEntries)
  }

  /** True when `clientAddress` failed `suspectFailures` times within the window. */
  isSuspect(clientAddress: string | undefined): boolean {
    const digest = this.#digest(clientAddress)
    const seen = digest === undefined ? undefined : this.#entries.get(digest)
    if (seen === undefined || this.#options.now() - seen.lastAt > this.#options.windowMs) {
      return false
    }
    return seen.failures >= this.#options.suspectFailures
  }

  /** Drops every entry and wipes the key. Idempotent. */
  close(): void {
    this.#entries.clear()
    this.#key?.fill(0)
    this.#key = undefined
  }

  #digest(clientAddress: string | undefined): string | undefined {
    const host = addressHost(clientAddress)
    if (host === undefined || this.#key === undefined) return undefined
    return createHmac('sha256', this.#key).update(host, 'utf8').digest('base64')
  }
}
