import { createHmac, randomBytes } from 'node:crypto'
import { type Reason, SaslgateError } from '../errors.js'
import { evictOverflow, sweepExpired, touch } from './lru.js'

/**
 * The verdict cache (pipeline stage 3): remembers definitive KDC verdicts per
 * (principal, password), local to the process.
 *
 * Keys are HMAC-SHA256(random 32-byte process key, principal || 0x00 || password). The
 * process key is made at construction and never leaves this module; no password and no
 * unkeyed hash of one is stored. A `CacheKey` is an opaque object: it has no getter, its
 * digest lives in a private field, and JSON / `util.inspect` show nothing of it.
 *
 * TTL trade-offs (a password change must eventually be honoured):
 * - positive TTL (default 1 h): after a password change the OLD password keeps answering
 *   OK from this cache until its entry expires, unless the user logs in with the NEW
 *   password first (a success with a new password drops the principal's other positive
 *   entries). Longer = fewer KDC checks and more survival of KDC trouble; shorter = a
 *   revoked password dies sooner. saslauthd used 8 h; 1 h is the compromise here.
 * - negative TTL (default 5 min): long enough to absorb a dictionary replayed by a botnet,
 *   short enough that a user whose password was just reset to a value they mistyped
 *   minutes ago is not refused for long.
 * - expired positive entries are kept (up to `staleRetainMs`) for offline mode
 *   (`staleOk`) and as "known good" hints; they never answer OK on their own while a KDC
 *   is reachable.
 *
 * Positive and negative entries live in two separate LRU maps, so a flood of negative
 * verdicts (a storm on many unknown principals) can never evict a known-good entry. Each
 * `set` also drops a few expired entries from the least recently used end, so a long storm
 * holds what is live, not `max*Entries` of dead verdicts (the soak's heap stays flat).
 *
 * Spotting passwords sprayed over many principals is spray-detector.ts's job.
 */

export type Verdict = 'ok' | 'invalid'

export interface VerdictCacheOptions {
  /** How long a positive verdict answers OK by itself. */
  positiveTtlMs: number
  /** How long a negative verdict answers NO by itself. */
  negativeTtlMs: number
  /** How long an expired positive entry is kept for `staleOk` (offline mode). */
  staleRetainMs: number
  /** LRU bound of positive entries. */
  maxPositiveEntries: number
  /** LRU bound of negative entries. */
  maxNegativeEntries: number
  /** Clock (ms); injectable for tests. */
  now: () => number
}

export const DEFAULT_VERDICT_CACHE_OPTIONS: Readonly<VerdictCacheOptions> = Object.freeze({
  positiveTtlMs: 60 * 60 * 1000,
  negativeTtlMs: 5 * 60 * 1000,
  staleRetainMs: 24 * 60 * 60 * 1000,
  maxPositiveEntries: 100_000,
  maxNegativeEntries: 100_000,
  now: Date.now,
})

export interface CachedVerdict {
  verdict: Verdict
  /** The reason of the KDC verdict that was cached. */
  reason: Reason
  ageMs: number
}

interface Entry {
  verdict: Verdict
  reason: Reason
  storedAt: number
  principal: string
}

const MINT = Symbol('CacheKey.mint')
let digestOf: (key: CacheKey) => string
let principalOf: (key: CacheKey) => string

/** An opaque verdict-cache key. Compare with `equals`; nothing else can be read from it. */
export class CacheKey {
  readonly #digest: string
  readonly #principal: string

  static {
    digestOf = (key) => key.#digest
    principalOf = (key) => key.#principal
  }

  /** @internal Made by `VerdictCache.keyFor` only. */
  constructor(mint: typeof MINT, digest: string, principal: string) {
    if (mint !== MINT) throw new SaslgateError('SASLGATE_ERR_CONFIG', 'CacheKey is made by keyFor')
    this.#digest = digest
    this.#principal = principal
  }

  /** True when both keys name the same (principal, password) of the same cache. */
  equals(other: CacheKey): boolean {
    return this.#digest === other.#digest
  }

  toJSON(): string {
    return '[CacheKey]'
  }

  toString(): string {
    return '[CacheKey]'
  }
}

export class VerdictCache {
  readonly #options: VerdictCacheOptions
  /** How long any positive entry is kept at all. */
  readonly #retainMs: number
  #hmacKey: Buffer | undefined = randomBytes(32)
  /** digest -> entry; Map order is LRU order (oldest first). */
  readonly #positive = new Map<string, Entry>()
  readonly #negative = new Map<string, Entry>()
  /** principal -> digests of its positive entries. */
  readonly #positiveByPrincipal = new Map<string, Set<string>>()

  constructor(options: Partial<VerdictCacheOptions> = {}) {
    const o = { ...DEFAULT_VERDICT_CACHE_OPTIONS, ...options }
    for (const name of [
      'positiveTtlMs',
      'negativeTtlMs',
      'staleRetainMs',
      'maxPositiveEntries',
      'maxNegativeEntries',
    ] as const) {
      if (!Number.isFinite(o[name]) || o[name] < 0) {
        throw new SaslgateError('SASLGATE_ERR_CONFIG', `verdict cache: ${name} must be >= 0`)
      }
    }
    this.#options = o
    this.#retainMs = Math.max(o.staleRetainMs, o.positiveTtlMs)
  }

  /** The key for (principal, password). The principal must not contain NUL. */
  keyFor(principal: string, password: Buffer): CacheKey {
    if (this.#hmacKey === undefined) {
      throw new SaslgateError('SASLGATE_ERR_CLOSED', 'verdict cache closed')
    }
    if (principal.includes('\0')) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'verdict cache: NUL in principal')
    }
    const digest = createHmac('sha256', this.#hmacKey)
      .update(principal, 'utf8')
      .update(Buffer.of(0))
      .update(password)
      .digest('base64')
    return new CacheKey(MINT, digest, principal)
  }

  /** A fresh verdict for `key` (within its TTL), or undefined. Refreshes LRU order. */
  get(key: CacheKey): CachedVerdict | undefined {
    const digest = digestOf(key)
    const now = this.#options.now()
    const pos = this.#positive.get(digest)
    if (pos !== undefined) {
      const ageMs = now - pos.storedAt
      if (ageMs > this.#retainMs) {
        this.#deletePositive(digest)
      } else {
        touch(this.#positive, digest, pos)
        if (ageMs <= this.#options.positiveTtlMs) {
          return { verdict: 'ok', reason: pos.reason, ageMs }
        }
      }
    }
    const neg = this.#negative.get(digest)
    if (neg !== undefined) {
      const ageMs = now - neg.storedAt
      if (ageMs > this.#options.negativeTtlMs) {
        this.#negative.delete(digest)
        return undefined
      }
      touch(this.#negative, digest, neg)
      return { verdict: 'invalid', reason: neg.reason, ageMs }
    }
    return undefined
  }

  /**
   * True when `key` has a positive verdict no older than `maxStalenessMs` (even past its
   * TTL, bounded by `staleRetainMs`). For offline mode and "known good" checks.
   */
  staleOk(key: CacheKey, maxStalenessMs: number): boolean {
    const pos = this.#positive.get(digestOf(key))
    if (pos === undefined) return false
    const ageMs = this.#options.now() - pos.storedAt
    return ageMs <= maxStalenessMs && ageMs <= this.#retainMs
  }

  /** True when the principal has any retained positive entry (any password). */
  knowsPrincipal(principal: string): boolean {
    const digests = this.#positiveByPrincipal.get(principal)
    return digests !== undefined && digests.size > 0
  }

  /**
   * Stores a definitive KDC verdict. `ok` drops the principal's other positive entries (a
   * new password supersedes the old one); `invalid` drops a positive entry for this key.
   */
  set(key: CacheKey, verdict: Verdict, reason: Reason): void {
    if (this.#hmacKey === undefined) return
    const digest = digestOf(key)
    const principal = principalOf(key)
    const now = this.#options.now()
    this.#sweep(now)
    const entry: Entry = { verdict, reason, storedAt: now, principal }
    if (verdict === 'ok') {
      this.#negative.delete(digest)
      const others = this.#positiveByPrincipal.get(principal)
      if (others !== undefined) {
        for (const other of [...others]) if (other !== digest) this.#deletePositive(other)
      }
      this.#positive.delete(digest)
      this.#positive.set(digest, entry)
      let set = this.#positiveByPrincipal.get(principal)
      if (set === undefined) {
        set = new Set()
        this.#positiveByPrincipal.set(principal, set)
      }
      set.add(digest)
      evictOverflow(this.#positive, this.#options.maxPositiveEntries, (digest) =>
        this.#deletePositive(digest),
      )
    } else {
      this.#deletePositive(digest)
      touch(this.#negative, digest, entry)
      evictOverflow(this.#negative, this.#options.maxNegativeEntries)
    }
  }

  /** Entry counts (for metrics). */
  stats(): { positive: number; negative: number } {
    return { positive: this.#positive.size, negative: this.#negative.size }
  }

  clear(): void {
    this.#positive.clear()
    this.#negative.clear()
    this.#positiveByPrincipal.clear()
  }

  /** Drops every entry and wipes the process key. Idempotent. */
  close(): void {
    this.clear()
    this.#hmacKey?.fill(0)
    this.#hmacKey = undefined
  }

  /** Drops a few expired entries from the least recently used end of each map. */
  #sweep(now: number): void {
    sweepExpired(this.#negative, (e) => now - e.storedAt > this.#options.negativeTtlMs)
    sweepExpired(
      this.#positive,
      (e) => now - e.storedAt > this.#retainMs,
      (digest) => this.#deletePositive(digest),
    )
  }

  #deletePositive(digest: string): void {
    const entry = this.#positive.get(digest)
    if (entry === undefined) return
    this.#positive.delete(digest)
    const set = this.#positiveByPrincipal.get(entry.principal)
    if (set === undefined) return
    set.delete(digest)
    if (set.size === 0) this.#positiveByPrincipal.delete(entry.principal)
  }
}
