import { SaslgateError } from '../errors.js'
import { evictOverflow, sweepExpired, touch } from '../pipeline/lru.js'
import { EMPTY_GUARD_COUNTS, type GuardCounts, type GuardStore } from './guard-store.js'

export interface MemoryGuardStoreOptions {
  /** LRU bound on tracked principals (a storm on random names cannot grow memory). */
  maxPrincipals: number
  /** Clock (ms) for expiry; injectable for tests. */
  now: () => number
}

export const DEFAULT_MEMORY_GUARD_STORE_OPTIONS: Readonly<MemoryGuardStoreOptions> = Object.freeze({
  maxPrincipals: 100_000,
  now: Date.now,
})

interface Slot extends GuardCounts {
  expiresAt: number
}

/**
 * Guard counters in a bounded in-process map (LRU by principal). Expired records go when
 * touched, and each write drops a few expired ones from the least recently written end, so a
 * storm on random names holds what is live, not `maxPrincipals` dead records.
 *
 * Limitation: evicting a principal forgets its KDC budget. An attacker would have to touch
 * more than `maxPrincipals` other names between two attempts on a victim (each new name
 * costing KDC checks that admission throttles); raise `maxPrincipals` (about 100 bytes
 * each) or use the Redis store, whose records only expire, if that matters.
 */
export class MemoryGuardStore implements GuardStore {
  readonly #options: MemoryGuardStoreOptions
  readonly #records = new Map<string, Slot>()
  #closed = false

  constructor(options: Partial<MemoryGuardStoreOptions> = {}) {
    const o = { ...DEFAULT_MEMORY_GUARD_STORE_OPTIONS, ...options }
    if (!Number.isInteger(o.maxPrincipals) || o.maxPrincipals < 1) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'guard store: maxPrincipals must be >= 1')
    }
    this.#options = o
  }

  /** Number of principals tracked (expired ones included until touched or swept). */
  get size(): number {
    return this.#records.size
  }

  async get(principal: string): Promise<GuardCounts> {
    return this.getSync(principal)
  }

  async recordFailure(principal: string, nowMs: number, windowMs: number): Promise<GuardCounts> {
    return this.recordFailureSync(principal, nowMs, windowMs)
  }

  async reserveKdc(principal: string, max: number, windowMs: number): Promise<boolean> {
    return this.reserveKdcSync(principal, max, windowMs)
  }

  async refundKdc(principal: string): Promise<void> {
    this.refundKdcSync(principal)
  }

  async reset(principal: string): Promise<void> {
    this.#records.delete(principal)
  }

  getSync(principal: string): GuardCounts {
    const r = this.#live(principal)
    return r === undefined ? { ...EMPTY_GUARD_COUNTS } : copy(r)
  }

  recordFailureSync(principal: string, nowMs: number, windowMs: number): GuardCounts {
    const r = this.#upsert(principal, windowMs)
    r.failures += 1
    r.lastFailureMs = nowMs
    return copy(r)
  }

  reserveKdcSync(principal: string, max: number, windowMs: number): boolean {
    const current = this.#live(principal)
    if (current !== undefined && current.kdcForwarded >= max) return false
    const r = this.#upsert(principal, windowMs)
    r.kdcForwarded += 1
    return true
  }

  refundKdcSync(principal: string): void {
    const r = this.#live(principal)
    if (r !== undefined && r.kdcForwarded > 0) r.kdcForwarded -= 1
  }

  /**
   * Overwrites the principal's counters with `counts` (expiring `ttlMs` from now): the
   * Redis store mirrors the shared state here so that a fallback starts from it.
   */
  mirror(principal: string, counts: GuardCounts, ttlMs: number): void {
    if (ttlMs <= 0 || (counts.failures === 0 && counts.kdcForwarded === 0)) {
      this.#records.delete(principal)
      return
    }
    const r = this.#upsert(principal, ttlMs)
    r.failures = counts.failures
    r.lastFailureMs = counts.lastFailureMs
    r.kdcForwarded = counts.kdcForwarded
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#records.clear()
  }

  #live(principal: string): Slot | undefined {
    const r = this.#records.get(principal)
    if (r === undefined) return undefined
    if (r.expiresAt <= this.#options.now()) {
      this.#records.delete(principal)
      return undefined
    }
    return r
  }

  #upsert(principal: string, windowMs: number): Slot {
    if (this.#closed) throw new SaslgateError('SASLGATE_ERR_CLOSED', 'guard store closed')
    const now = this.#options.now()
    sweepExpired(this.#records, (r) => r.expiresAt <= now)
    const r = this.#live(principal) ?? { ...EMPTY_GUARD_COUNTS, expiresAt: 0 }
    r.expiresAt = now + windowMs
    touch(this.#records, principal, r)
    evictOverflow(this.#records, this.#options.maxPrincipals)
    return r
  }
}

function copy(r: GuardCounts): GuardCounts {
  return { failures: r.failures, lastFailureMs: r.lastFailureMs, kdcForwarded: r.kdcForwarded }
}
