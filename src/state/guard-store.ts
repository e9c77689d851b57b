/**
 * Where the per-principal guard keeps its counters: in memory (one process) or in
 * Valkey/Redis (shared by every replica). The store only counts; the guard decides.
 *
 * Every counter of a principal lives in one record that expires `windowMs` after the last
 * write to it (a sliding window, like the MIT KDC's `failurecountinterval`, which is
 * measured from the last failure).
 */

export interface GuardCounts {
  /** Failed attempts in the window (any stage: cache, KDC). */
  failures: number
  /** Wall-clock time (ms) of the last failure, 0 when none. */
  lastFailureMs: number
  /** Checks of unknown passwords forwarded (or being forwarded) to the KDC in the window. */
  kdcForwarded: number
}

export const EMPTY_GUARD_COUNTS: Readonly<GuardCounts> = Object.freeze({
  failures: 0,
  lastFailureMs: 0,
  kdcForwarded: 0,
})

export interface GuardStore {
  /** The principal's counters (all zero when unknown or expired). */
  get(principal: string): Promise<GuardCounts>
  /** Counts one failure at `nowMs` and restarts the window; returns the new counters. */
  recordFailure(principal: string, nowMs: number, windowMs: number): Promise<GuardCounts>
  /**
   * Atomically takes one KDC forward from the budget when fewer than `max` were taken in
   * the window; true when taken.
   */
  reserveKdc(principal: string, max: number, windowMs: number): Promise<boolean>
  /** Gives back one reservation (the check never reached a KDC). */
  refundKdc(principal: string): Promise<void>
  /** Forgets the principal (after a success). */
  reset(principal: string): Promise<void>
  /** Idempotent. */
  close(): Promise<void>
}
