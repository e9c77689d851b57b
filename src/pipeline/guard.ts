import { SaslgateError } from '../errors.js'
import type { GuardCounts, GuardStore } from '../state/guard-store.js'

/**
 * The per-principal guard (pipeline stage 4).
 *
 * Two independent limits, both per principal (known or not: a dictionary on a nonexistent
 * user costs no KDC traffic either, and both look the same from outside):
 * - backoff: past `threshold` failures in the window the principal is blocked for
 *   `backoffBaseMs * backoffFactor^(failures - threshold)` (capped at `backoffMaxMs`) after
 *   its last failure; while blocked only known-good credentials pass.
 * - KDC budget: at most `maxKdcFailuresPerWindow` unknown passwords per principal are
 *   forwarded to the KDC per window (reserved before the check, so concurrent guesses
 *   cannot overshoot). Keep it below the KDC policy's `maxfailure` and keep `windowMs` at
 *   least the policy's `failurecountinterval` (the window slides from the last write, as
 *   the KDC's interval slides from the last failure): then the botnet can never lock the
 *   user out in the KDC. Every forward counts, not only distinct passwords: the negative
 *   cache already absorbs repeats, and counting repeats is the safe side.
 * - reserve for clean credentials: the last `cleanReserve` forwards of that budget (at most
 *   `maxKdcFailuresPerWindow - 1`: one forward always stays open to any password) are kept
 *   for requests the pipeline calls clean (a password not tried on any other principal,
 *   from a client address that has not been guessing; see spray-detector.ts and
 *   address-reputation.ts). A clean request also passes the backoff while any of the
 *   budget is left. So a botnet replaying a dictionary can use up only
 *   `maxKdcFailuresPerWindow - cleanReserve` forwards of a principal, and the real user's
 *   first right password still reaches the KDC during the storm; the total of wrong
 *   passwords forwarded per window stays at most `maxKdcFailuresPerWindow`.
 *
 * A success resets the principal. The guard only counts in the store; it never throws
 * because of the store (the Redis store falls back to memory by itself).
 */

export interface GuardOptions {
  /** Failure counting window; slides from the principal's last failure or forward. */
  windowMs: number
  /** Failures in the window before backoff starts. */
  threshold: number
  /** First backoff. */
  backoffBaseMs: number
  /** Backoff growth per further failure. */
  backoffFactor: number
  /** Backoff cap. */
  backoffMaxMs: number
  /** Unknown passwords forwarded to the KDC per principal per window. */
  maxKdcFailuresPerWindow: number
  /**
   * Of that budget, forwards only clean credentials may use (0 = no reserve); capped at
   * `maxKdcFailuresPerWindow - 1`.
   */
  cleanReserve: number
  /** Wall clock (ms); injectable for tests. */
  now: () => number
}

export const DEFAULT_GUARD_OPTIONS: Readonly<GuardOptions> = Object.freeze({
  windowMs: 10 * 60 * 1000,
  threshold: 5,
  backoffBaseMs: 1000,
  backoffFactor: 2,
  backoffMaxMs: 5 * 60 * 1000,
  maxKdcFailuresPerWindow: 3,
  cleanReserve: 2,
  now: Date.now,
})

export type GuardDecision =
  /**
   * `failures`: failures in the window (0 for known-good credentials, not looked up);
   * `reserve`: passed only because the credentials are clean (blocked or ordinary budget
   * used up), so the forward must come from the reserve.
   */
  | { action: 'pass'; failures: number; reserve: boolean }
  | { action: 'blocked'; retryAfterMs: number }
  | { action: 'budget'; retryAfterMs: number }

export class Guard {
  readonly #store: GuardStore
  readonly #options: GuardOptions
  /** Forwards per window any request may take (the budget minus the clean reserve, >= 1). */
  readonly #ordinaryBudget: number
  /** False when there is no reserve (cleanReserve 0 or a budget of 1): the rule is off. */
  readonly #hasReserve: boolean

  constructor(store: GuardStore, options: Partial<GuardOptions> = {}) {
    const o = { ...DEFAULT_GUARD_OPTIONS, ...options }
    const positive = ['windowMs', 'threshold', 'backoffBaseMs', 'maxKdcFailuresPerWindow'] as const
    for (const name of positive) {
      if (!Number.isFinite(o[name]) || o[name] < 1) {
        throw new SaslgateError('SASLGATE_ERR_CONFIG', `guard: ${name} must be >= 1`)
      }
    }
    if (!Number.isInteger(o.cleanReserve) || o.cleanReserve < 0) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'guard: cleanReserve must be an integer >= 0')
    }
    if (!(o.backoffFactor >= 1) || !(o.backoffMaxMs >= o.backoffBaseMs)) {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        'guard: backoffFactor must be >= 1 and backoffMaxMs >= backoffBaseMs',
      )
    }
    this.#store = store
    this.#options = o
    this.#ordinaryBudget =
      o.maxKdcFailuresPerWindow - Math.min(o.cleanReserve, o.maxKdcFailuresPerWindow - 1)
    this.#hasReserve = this.#ordinaryBudget < o.maxKdcFailuresPerWindow
  }

  get options(): Readonly<GuardOptions> {
    return this.#options
  }

  /**
   * May a request with these credentials go on? `knownGood` (a retained positive verdict
   * for exactly this password) always passes; `clean` credentials may use the reserve.
   */
  async check(principal: string, knownGood: boolean, clean = false): Promise<GuardDecision> {
    if (knownGood) return { action: 'pass', failures: 0, reserve: false }
    const o = this.#options
    const counts = await this.#store.get(principal)
    const now = o.now()
    const reserveLeft = clean && this.#hasReserve && counts.kdcForwarded < o.maxKdcFailuresPerWindow
    const blockedUntil = this.blockedUntil(counts)
    if (blockedUntil > now) {
      if (reserveLeft) return { action: 'pass', failures: counts.failures, reserve: true }
      return { action: 'blocked', retryAfterMs: blockedUntil - now }
    }
    if (counts.kdcForwarded >= this.#ordinaryBudget) {
      if (reserveLeft) return { action: 'pass', failures: counts.failures, reserve: true }
      return { action: 'budget', retryAfterMs: o.windowMs }
    }
    return { action: 'pass', failures: counts.failures, reserve: false }
  }

  /**
   * Takes one KDC forward from the principal's budget; false when it is used up. Clean
   * credentials may take the reserve too.
   */
  reserveKdc(principal: string, clean = false): Promise<boolean> {
    const o = this.#options
    const max = clean && this.#hasReserve ? o.maxKdcFailuresPerWindow : this.#ordinaryBudget
    return this.#store.reserveKdc(principal, max, o.windowMs)
  }

  /** Gives a reservation back (the check never reached a KDC). */
  refundKdc(principal: string): Promise<void> {
    return this.#store.refundKdc(principal)
  }

  async recordFailure(principal: string): Promise<GuardCounts> {
    return this.#store.recordFailure(principal, this.#options.now(), this.#options.windowMs)
  }

  recordSuccess(principal: string): Promise<void> {
    return this.#store.reset(principal)
  }

  /** When the backoff for these counters ends (wall clock ms); 0 when not blocked. */
  blockedUntil(counts: GuardCounts): number {
    const o = this.#options
    if (counts.failures < o.threshold) return 0
    const exponent = counts.failures - o.threshold
    const backoff = Math.min(o.backoffBaseMs * o.backoffFactor ** exponent, o.backoffMaxMs)
    return counts.lastFailureMs + backoff
  }

  /** The guard holds nothing of its own; the store belongs to whoever made it. Idempotent. */
  async close(): Promise<void> {}
}
