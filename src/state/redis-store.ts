import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { Redis } from 'ioredis'
import { SaslgateError } from '../errors.js'
import { EMPTY_GUARD_COUNTS, type GuardCounts, type GuardStore } from './guard-store.js'
import { MemoryGuardStore } from './memory-store.js'

/**
 * Guard counters in Valkey/Redis, shared by every replica.
 *
 * One hash per principal, `<keyPrefix><sha256(principal)>` (no plain name in the store),
 * fields `f` (failures), `l` (last failure ms), `k` (KDC forwards), with a PEXPIRE refreshed
 * on each write, so counters expire by themselves. Every update is one Lua script (atomic
 * across replicas: two replicas cannot both take the last KDC forward).
 *
 * Availability before accuracy: each call has its own timeout (`callTimeoutMs`); when
 * Redis is down, slow or not yet connected, the call is answered from a local
 * `MemoryGuardStore` and a `fallback` event is emitted. The local store mirrors every
 * answer Redis gave, so a fallback starts from the last shared state this process saw.
 * The client reconnects by itself; each call tries Redis first. During an outage each
 * replica counts on its own (up to replicas x budget KDC forwards per principal).
 *
 * Events: `fallback` ({ operation }) — never carries a principal, a key or a URL.
 */

export interface RedisGuardStoreOptions {
  /** `redis://host:port/db` (credentials in the URL are never logged by this module). */
  url: string
  /** Prefix of every key; change it to share one Redis between deployments. */
  keyPrefix: string
  /** Longest wait for one Redis call before answering from local memory. */
  callTimeoutMs: number
  /** Longest wait for a TCP connection to Redis. */
  connectTimeoutMs: number
  /** Cap of the reconnect backoff. */
  reconnectMaxDelayMs: number
  /** LRU bound of the local fallback store. */
  maxLocalPrincipals: number
}

export const DEFAULT_REDIS_GUARD_STORE_OPTIONS: Readonly<Omit<RedisGuardStoreOptions, 'url'>> =
  Object.freeze({
    keyPrefix: 'saslgate:guard:',
    callTimeoutMs: 25,
    connectTimeoutMs: 1000,
    reconnectMaxDelayMs: 1000,
    maxLocalPrincipals: 100_000,
  })

const LUA_GET = `
local v = redis.call('HMGET', KEYS[1], 'f', 'l', 'k')
return {tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0'), redis.call('PTTL', KEYS[1])}
`
const LUA_FAIL = `
local f = redis.call('HINCRBY', KEYS[1], 'f', 1)
redis.call('HSET', KEYS[1], 'l', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {f, tonumber(ARGV[1]), tonumber(redis.call('HGET', KEYS[1], 'k') or '0')}
`
const LUA_RESERVE = `
local v = redis.call('HMGET', KEYS[1], 'f', 'l', 'k')
local k = tonumber(v[3] or '0')
if k >= tonumber(ARGV[1]) then
  return {0, tonumber(v[1] or '0'), tonumber(v[2] or '0'), k}
end
k = redis.call('HINCRBY', KEYS[1], 'k', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, tonumber(v[1] or '0'), tonumber(v[2] or '0'), k}
`
const LUA_REFUND = `
local k = tonumber(redis.call('HGET', KEYS[1], 'k') or '0')
if k > 0 then redis.call('HINCRBY', KEYS[1], 'k', -1) end
return 1
`

type Reply = number[]
interface GuardCommands {
  guardGet(key: string): Promise<Reply>
  guardFail(key: string, nowMs: number, windowMs: number): Promise<Reply>
  guardReserve(key: string, max: number, windowMs: number): Promise<Reply>
  guardRefund(key: string): Promise<number>
}

export class RedisGuardStore extends EventEmitter implements GuardStore {
  readonly #options: RedisGuardStoreOptions
  readonly #redis: Redis
  readonly #commands: GuardCommands
  readonly #local: MemoryGuardStore
  #fallbacks = 0
  #closed = false

  constructor(options: Partial<RedisGuardStoreOptions> & { url: string }) {
    super()
    const o = { ...DEFAULT_REDIS_GUARD_STORE_OPTIONS, ...options }
    if (!(o.callTimeoutMs > 0) || !(o.connectTimeoutMs > 0) || !(o.reconnectMaxDelayMs > 0)) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'redis guard store: timeouts must be > 0')
    }
    this.#options = o
    this.#local = new MemoryGuardStore({ maxPrincipals: o.maxLocalPrincipals })
    this.#redis = new Redis(o.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      commandTimeout: o.callTimeoutMs,
      connectTimeout: o.connectTimeoutMs,
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => Math.min(50 * times, o.reconnectMaxDelayMs),
    })
    // Connection errors surface as fallbacks; without a listener ioredis prints them.
    this.#redis.on('error', () => {})
    this.#redis.defineCommand('guardGet', { numberOfKeys: 1, lua: LUA_GET, readOnly: true })
    this.#redis.defineCommand('guardFail', { numberOfKeys: 1, lua: LUA_FAIL })
    this.#redis.defineCommand('guardReserve', { numberOfKeys: 1, lua: LUA_RESERVE })
    this.#redis.defineCommand('guardRefund', { numberOfKeys: 1, lua: LUA_REFUND })
    this.#commands = this.#redis as unknown as GuardCommands
    this.#redis.connect().catch(() => {})
  }

  /** Calls answered from local memory because Redis failed or was too slow. */
  get fallbacks(): number {
    return this.#fallbacks
  }

  /** The client's connection state (`ready` when Redis is in use). */
  get status(): string {
    return this.#redis.status
  }

  async get(principal: string): Promise<GuardCounts> {
    const reply = await this.#call('get', () => this.#commands.guardGet(this.#key(principal)))
    if (reply === undefined) return this.#local.getSync(principal)
    const counts = toCounts(reply[0], reply[1], reply[2])
    this.#local.mirror(principal, counts, reply[3] ?? 0)
    return counts
  }

  async recordFailure(principal: string, nowMs: number, windowMs: number): Promise<GuardCounts> {
    const reply = await this.#call('recordFailure', () =>
      this.#commands.guardFail(this.#key(principal), Math.round(nowMs), Math.ceil(windowMs)),
    )
    if (reply === undefined) return this.#local.recordFailureSync(principal, nowMs, windowMs)
    const counts = toCounts(reply[0], reply[1], reply[2])
    this.#local.mirror(principal, counts, windowMs)
    return counts
  }

  async reserveKdc(principal: string, max: number, windowMs: number): Promise<boolean> {
    const reply = await this.#call('reserveKdc', () =>
      this.#commands.guardReserve(this.#key(principal), max, Math.ceil(windowMs)),
    )
    if (reply === undefined) return this.#local.reserveKdcSync(principal, max, windowMs)
    this.#local.mirror(principal, toCounts(reply[1], reply[2], reply[3]), windowMs)
    return reply[0] === 1
  }

  async refundKdc(principal: string): Promise<void> {
    this.#local.refundKdcSync(principal)
    await this.#call('refundKdc', () => this.#commands.guardRefund(this.#key(principal)))
  }

  async reset(principal: string): Promise<void> {
    this.#local.reset(principal)
    await this.#call('reset', () => this.#redis.del(this.#key(principal)))
  }

  /** Disconnects at once (no QUIT round trip). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#redis.disconnect()
    await this.#local.close()
  }

  #key(principal: string): string {
    const digest = createHash('sha256').update(principal, 'utf8').digest('base64url')
    return `${this.#options.keyPrefix}${digest}`
  }

  /** Runs one Redis call within `callTimeoutMs`; undefined (and a fallback) on any failure. */
  async #call<T>(operation: string, fn: () => Promise<T>): Promise<T | undefined> {
    if (this.#closed) throw new SaslgateError('SASLGATE_ERR_CLOSED', 'guard store closed')
    let timer: NodeJS.Timeout | undefined
    try {
      if (this.#redis.status !== 'ready') throw new Error('not connected')
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), this.#options.callTimeoutMs)
        timer.unref()
      })
      return await Promise.race([fn(), timeout])
    } catch {
      this.#fallbacks += 1
      try {
        this.emit('fallback', { operation })
      } catch {
        // A listener's failure must not turn a fallback into an error.
      }
      return undefined
    } finally {
      clearTimeout(timer)
    }
  }
}

function toCounts(failures = 0, lastFailureMs = 0, kdcForwarded = 0): GuardCounts {
  return { ...EMPTY_GUARD_COUNTS, failures, lastFailureMs, kdcForwarded }
}
