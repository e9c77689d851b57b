/**
 * A token-bucket rate limiter for log lines, so a storm cannot flood the disk.
 *
 * Each key (a stable message kind such as `breaker_open:kdc1:88` or `shed`, never a login
 * or anything a caller chooses) has its own bucket of `burst` lines refilled at `perSecond`;
 * an optional `total` bucket caps every key together, so many distinct keys cannot add up
 * to a flood either. Lines refused are counted per key, so the next allowed line can say
 * "N similar lines suppressed" (`check`), and `flush()` reports counts a storm left behind
 * when no later line came.
 *
 * Memory is bounded: at most `maxKeys` buckets; the least recently used one is dropped
 * when a new key arrives (its unreported count moves to the `(evicted)` key of `flush()`).
 */
import { SaslgateError } from '../errors.js'

export interface LogLimiterOptions {
  /** Lines per second refilled per key. */
  perSecond: number
  /** Lines a key may log at once after being quiet. */
  burst: number
  /** Most keys tracked at once (default 1000). */
  maxKeys?: number
  /** A cap over all keys together (default: none). */
  total?: { perSecond: number; burst: number }
  /** Monotonic clock in milliseconds (tests); default `performance.now`. */
  now?: () => number
}

export interface LogCheck {
  allowed: boolean
  /**
   * When allowed: lines of this key refused since its last allowed line (then reset to 0).
   * When refused: 0.
   */
  suppressed: number
}

/** The key under which `flush()` reports counts of buckets dropped to stay under `maxKeys`. */
export const EVICTED_KEY = '(evicted)'

export const DEFAULT_MAX_KEYS = 1000

interface Bucket {
  tokens: number
  at: number
  suppressed: number
}

export class LogLimiter {
  readonly #perMs: number
  readonly #burst: number
  readonly #maxKeys: number
  readonly #now: () => number
  readonly #total: { perMs: number; burst: number; bucket: Bucket } | undefined
  /** Insertion order is recency order: a touched key is moved to the end. */
  readonly #buckets = new Map<string, Bucket>()
  #evictedSuppressed = 0

  constructor(options: LogLimiterOptions) {
    const { perSecond, burst } = options
    const maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS
    checkRate('perSecond', perSecond, 'burst', burst)
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'log limiter: maxKeys must be an integer >= 1')
    }
    this.#perMs = perSecond / 1000
    this.#burst = burst
    this.#maxKeys = maxKeys
    this.#now = options.now ?? (() => performance.now())
    if (options.total !== undefined) {
      checkRate('total.perSecond', options.total.perSecond, 'total.burst', options.total.burst)
      this.#total = {
        perMs: options.total.perSecond / 1000,
        burst: options.total.burst,
        bucket: { tokens: options.total.burst, at: this.#now(), suppressed: 0 },
      }
    }
  }

  /** Keys tracked now (at most `maxKeys`). */
  get size(): number {
    return this.#buckets.size
  }

  /** True when a line of this kind may be logged now (the refused count is dropped). */
  allow(key: string): boolean {
    return this.check(key).allowed
  }

  /** Like `allow`, and tells how many lines of this kind were refused since the last one. */
  check(key: string): LogCheck {
    const now = this.#now()
    const bucket = this.#touch(key, now)
    refill(bucket, now, this.#perMs, this.#burst)
    const total = this.#total
    if (total !== undefined) refill(total.bucket, now, total.perMs, total.burst)
    if (bucket.tokens < 1 || (total !== undefined && total.bucket.tokens < 1)) {
      bucket.suppressed++
      return { allowed: false, suppressed: 0 }
    }
    bucket.tokens -= 1
    if (total !== undefined) total.bucket.tokens -= 1
    const suppressed = bucket.suppressed
    bucket.suppressed = 0
    return { allowed: true, suppressed }
  }

  /** Refused lines not reported yet, per key (not reset). */
  pending(): Map<string, number> {
    const out = new Map<string, number>()
    for (const [key, bucket] of this.#buckets) {
      if (bucket.suppressed > 0) out.set(key, bucket.suppressed)
    }
    if (this.#evictedSuppressed > 0) out.set(EVICTED_KEY, this.#evictedSuppressed)
    return out
  }

  /**
   * Returns the refused lines not reported yet, per key, and resets them: call it on a
   * timer (or at close) to log one summary per key after a storm.
   */
  flush(): Map<string, number> {
    const out = this.pending()
    for (const bucket of this.#buckets.values()) bucket.suppressed = 0
    this.#evictedSuppressed = 0
    return out
  }

  #touch(key: string, now: number): Bucket {
    const found = this.#buckets.get(key)
    if (found !== undefined) {
      this.#buckets.delete(key)
      this.#buckets.set(key, found)
      return found
    }
    while (this.#buckets.size >= this.#maxKeys) {
      const oldest = this.#buckets.keys().next()
      if (oldest.done === true) break
      this.#evictedSuppressed += this.#buckets.get(oldest.value)?.suppressed ?? 0
      this.#buckets.delete(oldest.value)
    }
    const bucket: Bucket = { tokens: this.#burst, at: now, suppressed: 0 }
    this.#buckets.set(key, bucket)
    return bucket
  }
}

function refill(bucket: Bucket, now: number, perMs: number, burst: number): void {
  const elapsed = now - bucket.at
  if (elapsed > 0) {
    bucket.tokens = Math.min(burst, bucket.tokens + elapsed * perMs)
    bucket.at = now
  }
}

function checkRate(rateName: string, rate: number, burstName: string, burst: number): void {
  if (!(Number.isFinite(rate) && rate > 0)) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', `log limiter: ${rateName} must be > 0`)
  }
  if (!(Number.isFinite(burst) && burst >= 1)) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', `log limiter: ${burstName} must be >= 1`)
  }
}
