/**
 * A `Map` used as an LRU: iteration order is insertion order, so re-inserting a key makes it
 * the most recent and the first key is the least recently used. The bounded, expiring maps of
 * the pipeline (verdict cache, spray detector, address reputation, in-memory guard store)
 * share these three moves.
 */

/** Makes `key` the most recently used entry, with `value`. */
export function touch<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key)
  map.set(key, value)
}

/** Drops least recently used entries until at most `max` are left. */
export function evictOverflow<K, V>(
  map: Map<K, V>,
  max: number,
  drop: (key: K) => void = (key) => map.delete(key),
): void {
  while (map.size > max) {
    const oldest = map.keys().next()
    if (oldest.done === true) return
    drop(oldest.value)
  }
}

/** Expired entries dropped per write: more than the one a write adds, so dead ones never pile up. */
export const SWEEP_PER_WRITE = 8

/**
 * Drops up to `limit` expired entries from the least recently used end, stopping at the first
 * live one. Where a write refreshes an entry's time as it re-inserts it, LRU order is expiry
 * order and this drops every dead entry over time; elsewhere it drops the idle dead ones (and
 * a read drops the rest).
 */
export function sweepExpired<K, V>(
  map: Map<K, V>,
  expired: (value: V) => boolean,
  drop: (key: K) => void = (key) => map.delete(key),
  limit = SWEEP_PER_WRITE,
): void {
  for (let i = 0; i < limit; i++) {
    const oldest = map.entries().next()
    if (oldest.done === true || !expired(oldest.value[1])) return
    drop(oldest.value[0])
  }
}
