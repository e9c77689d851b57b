/**
 * A flapping KDC for fault tests: a delay proxy (fake-kdc.ts) in front of a real KDC that
 * alternates between alive (relays everything) and dead (swallows everything: a black hole)
 * every `periodMs`. Starts alive. Plain async code, no test-framework imports; binds
 * 127.0.0.1 only.
 */
import { SaslgateError } from '../errors.js'
import { type DelayProxy, startDelayProxy } from './fake-kdc.js'

export const DEFAULT_FLAPPING_PROXY_OPTIONS = {
  /** Time spent in each state before switching. */
  periodMs: 1000,
  /** Delay added to every relayed reply while alive. */
  delayMs: 0,
}

export interface FlappingProxyOptions {
  target: { host: string; port: number }
  periodMs?: number
  delayMs?: number
}

export interface FlappingProxy {
  readonly host: string
  readonly port: number
  /** True while replies are relayed. */
  readonly alive: boolean
  /** Alive/dead switches so far. */
  readonly flips: number
  /** The proxy underneath (request and reply counters). */
  readonly proxy: DelayProxy
  /** Stops flapping and stays alive (the fault ends). Idempotent. */
  settle(): void
  close(): Promise<void>
}

export async function startFlappingProxy(options: FlappingProxyOptions): Promise<FlappingProxy> {
  const periodMs = options.periodMs ?? DEFAULT_FLAPPING_PROXY_OPTIONS.periodMs
  if (!Number.isFinite(periodMs) || periodMs < 10) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', 'flapping proxy option periodMs must be >= 10')
  }
  const proxy = await startDelayProxy({
    target: options.target,
    delayMs: options.delayMs ?? DEFAULT_FLAPPING_PROXY_OPTIONS.delayMs,
  })
  let alive = true
  let flips = 0
  const timer: NodeJS.Timeout = setInterval(() => {
    alive = !alive
    flips++
    proxy.setBlackhole(!alive)
  }, periodMs)
  timer.unref()
  const settle = () => {
    clearInterval(timer)
    alive = true
    proxy.setBlackhole(false)
  }
  return {
    host: proxy.host,
    port: proxy.port,
    get alive() {
      return alive
    },
    get flips() {
      return flips
    },
    proxy,
    settle,
    async close() {
      clearInterval(timer)
      await proxy.close()
    },
  }
}
