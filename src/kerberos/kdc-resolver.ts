/**
 * Resolves KDC host names without the libuv thread pool.
 *
 * `dns.lookup` is getaddrinfo on the pool that every libkrb5 step and PBKDF2 job shares: a
 * slow resolver would hold pool threads and stall password checks. Here names come from the
 * hosts file (read asynchronously, like nsswitch `files`) and then from c-ares
 * (`dns.promises.Resolver`, its own sockets on the event loop) with a timeout and a tries
 * limit. Answers are fresh for `ttlMs`; after that a stale answer is served at once while one
 * refresh runs in the background (up to `staleMs`); a failure is remembered for
 * `negativeTtlMs` so a dead resolver is not asked on every request. IP literals never come
 * here.
 */
import { Resolver } from 'node:dns/promises'
import { readFile } from 'node:fs/promises'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { SaslgateError } from '../errors.js'

export interface ResolvedAddress {
  address: string
  family: 4 | 6
}

export interface KdcResolverOptions {
  /** An answer is used without asking again this long. */
  ttlMs: number
  /** After `ttlMs`, the old answer is still served (refreshed in the background) this long. */
  staleMs: number
  /** A failed look-up is answered from memory this long. */
  negativeTtlMs: number
  /** c-ares: wait per try, and tries per server. */
  timeoutMs: number
  tries: number
  /** DNS servers (`ip` or `ip:port`); empty: the system's (/etc/resolv.conf). */
  servers: readonly string[]
  /** Hosts file read before DNS; empty: none. */
  hostsFile: string
}

export const DEFAULT_RESOLVER_OPTIONS: Readonly<KdcResolverOptions> = Object.freeze({
  ttlMs: 30_000,
  staleMs: 3_600_000,
  negativeTtlMs: 5_000,
  timeoutMs: 500,
  tries: 2,
  servers: [],
  hostsFile: '/etc/hosts',
})

interface Entry {
  value?: ResolvedAddress
  /** Fresh until then; a failure entry is only this. */
  freshUntil: number
  /** A value is served stale until then. */
  staleUntil: number
}

function dnsError(host: string, cause?: unknown): SaslgateError {
  return new SaslgateError('SASLGATE_ERR_KDC_DNS', `cannot resolve KDC host ${host}`, { cause })
}

/** The first address for `host` in a hosts file's text (IPv4 first, like our DNS order). */
export function hostsFileLookup(text: string, host: string): ResolvedAddress | undefined {
  let v6: ResolvedAddress | undefined
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim()
    if (line === '') continue
    const [address, ...names] = line.split(/\s+/)
    if (address === undefined || !names.some((n) => n.toLowerCase() === host)) continue
    const family = net.isIP(address)
    if (family === 4) return { address, family: 4 }
    if (family === 6) v6 ??= { address, family: 6 }
  }
  return v6
}

export class KdcResolver {
  readonly #o: KdcResolverOptions
  readonly #resolver: Resolver
  readonly #cache = new Map<string, Entry>()
  readonly #pending = new Map<string, Promise<ResolvedAddress>>()
  #lookups = 0
  #closed = false

  constructor(options: Partial<KdcResolverOptions> = {}) {
    this.#o = { ...DEFAULT_RESOLVER_OPTIONS, ...options }
    this.#resolver = new Resolver({ timeout: this.#o.timeoutMs, tries: this.#o.tries })
    if (this.#o.servers.length > 0) this.#resolver.setServers([...this.#o.servers])
  }

  /** Resolves `host` (lowercase, not an IP literal); rejects with SASLGATE_ERR_KDC_DNS. */
  resolve(host: string): Promise<ResolvedAddress> {
    if (this.#closed) return Promise.reject(new SaslgateError('SASLGATE_ERR_CLOSED', 'closed'))
    const now = performance.now()
    const entry = this.#cache.get(host)
    if (entry !== undefined) {
      if (now < entry.freshUntil) {
        return entry.value ? Promise.resolve(entry.value) : Promise.reject(dnsError(host))
      }
      if (entry.value && now < entry.staleUntil) {
        this.#refresh(host).catch(() => {}) // in the background; the old answer now
        return Promise.resolve(entry.value)
      }
    }
    return this.#refresh(host)
  }

  /** Look-ups made (hosts file, then DNS), cache hits excluded. */
  get lookups(): number {
    return this.#lookups
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#resolver.cancel()
    this.#cache.clear()
  }

  /** One look-up of `host` at a time; its outcome updates the cache. */
  #refresh(host: string): Promise<ResolvedAddress> {
    let pending = this.#pending.get(host)
    if (pending) return pending
    pending = this.#lookup(host).then(
      (value) => {
        this.#pending.delete(host)
        const now = performance.now()
        if (!this.#closed) {
          this.#cache.set(host, {
            value,
            freshUntil: now + this.#o.ttlMs,
            staleUntil: now + this.#o.ttlMs + this.#o.staleMs,
          })
        }
        return value
      },
      (err: unknown) => {
        this.#pending.delete(host)
        const now = performance.now()
        const old = this.#cache.get(host)
        if (!this.#closed) {
          // Remembered for negativeTtlMs: a stale answer (within staleMs) keeps being served
          // meanwhile, else the failure is.
          const keep = old?.value !== undefined && now < old.staleUntil
          this.#cache.set(host, {
            ...(keep ? { value: old.value } : {}),
            freshUntil: now + this.#o.negativeTtlMs,
            staleUntil: keep ? old.staleUntil : 0,
          })
        }
        throw err instanceof SaslgateError ? err : dnsError(host, err)
      },
    )
    this.#pending.set(host, pending)
    return pending
  }

  async #lookup(host: string): Promise<ResolvedAddress> {
    this.#lookups++
    if (this.#o.hostsFile !== '') {
      const text = await readFile(this.#o.hostsFile, 'utf8').catch(() => '')
      const found = hostsFileLookup(text, host)
      if (found) return found
    }
    try {
      const [address] = await this.#resolver.resolve4(host)
      if (address !== undefined) return { address, family: 4 }
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (code !== 'ENODATA') throw dnsError(host, err) // no A record: try AAAA
    }
    const [address6] = await this.#resolver.resolve6(host).catch((err: unknown) => {
      throw dnsError(host, err)
    })
    if (address6 === undefined) throw dnsError(host)
    return { address: address6, family: 6 }
  }
}
