/**
 * One opossum circuit breaker per KDC address, fed only with transport outcomes.
 *
 * The transport asks `admit(kdc)` before an exchange and settles the returned ticket with
 * the outcome. opossum keeps the state machine (rolling window, open, half-open after
 * `resetTimeoutMs`, one probe, close on a successful probe).
 *
 * - A KDC that answers (a KRB-ERROR such as "wrong password" included) is a success.
 * - Timeout, refusal, reset, garbage: a failure.
 * - An exchange cut short by the caller's own deadline is neutral while the breaker is
 *   closed (it says nothing about the KDC, and must not open a healthy KDC's breaker
 *   during a storm of short deadlines). A half-open probe cut short counts as a failure:
 *   the KDC did not prove itself, so the breaker stays open (fail closed).
 *
 * How: while closed, the outcome is fired into the breaker when it is known (a neutral
 * outcome fires nothing). While half-open, `admit` fires at once with a pending promise:
 * that claims opossum's single probe slot, so concurrent exchanges skip the KDC until
 * the probe settles.
 */
import CircuitBreaker from 'opossum'

export type BreakerState = 'closed' | 'open' | 'halfOpen'

export type BreakerVerdict = 'success' | 'failure' | 'neutral'

export interface KdcBreakerOptions {
  /** Time an open breaker waits before letting one probe through. */
  resetTimeoutMs: number
  /** Exchanges within the rolling window before the breaker may open. */
  volumeThreshold: number
  /** Failure percentage within the window above which the breaker opens. */
  errorThresholdPercentage: number
  /** Length of the rolling statistics window. */
  rollingCountTimeoutMs: number
  /** Buckets the window is divided into. */
  rollingCountBuckets: number
}

export const DEFAULT_BREAKER_OPTIONS: Readonly<KdcBreakerOptions> = Object.freeze({
  resetTimeoutMs: 5000,
  volumeThreshold: 3,
  errorThresholdPercentage: 50,
  rollingCountTimeoutMs: 10000,
  rollingCountBuckets: 10,
})

export interface BreakerTicket {
  /** True when this exchange is the half-open probe. */
  readonly probe: boolean
  /** Records the exchange's outcome; later calls are ignored. */
  settle(verdict: BreakerVerdict): void
}

export type BreakerChangeListener = (event: { kdc: string; state: BreakerState }) => void

/** What the breaker action receives: true for a transport success. */
type Outcome = Promise<boolean>

class TransportFailure extends Error {
  constructor() {
    super('KDC transport failure')
    this.name = 'TransportFailure'
  }
}

function noop(): void {}

export class KdcBreakers {
  readonly #options: KdcBreakerOptions
  readonly #onChange: BreakerChangeListener | undefined
  readonly #breakers = new Map<string, CircuitBreaker<[Outcome], void>>()
  #closed = false

  constructor(options: Partial<KdcBreakerOptions> = {}, onChange?: BreakerChangeListener) {
    this.#options = { ...DEFAULT_BREAKER_OPTIONS, ...options }
    this.#onChange = onChange
  }

  /** Creates the breaker of `kdc` if needed (so its state shows from the start). */
  ensure(kdc: string): void {
    this.#get(kdc)
  }

  /**
   * Asks to send one exchange to `kdc`. Undefined when its breaker is open, or half-open
   * with its probe already under way: skip the KDC.
   */
  admit(kdc: string): BreakerTicket | undefined {
    if (this.#closed) return undefined
    const breaker = this.#get(kdc)
    if (breaker.closed) {
      let settled = false
      return {
        probe: false,
        settle: (verdict) => {
          if (settled) return
          settled = true
          if (verdict === 'neutral' || breaker.isShutdown) return
          breaker.fire(Promise.resolve(verdict === 'success')).catch(noop)
        },
      }
    }
    if (breaker.halfOpen && breaker.pendingClose) {
      let resolve: (ok: boolean) => void = noop
      const outcome = new Promise<boolean>((r) => {
        resolve = r
      })
      breaker.fire(outcome).catch(noop)
      let settled = false
      return {
        probe: true,
        settle: (verdict) => {
          if (settled) return
          settled = true
          resolve(verdict === 'success')
        },
      }
    }
    return undefined
  }

  /** True when `admit` would let an exchange through now. */
  isAvailable(kdc: string): boolean {
    if (this.#closed) return false
    const breaker = this.#get(kdc)
    return breaker.closed || (breaker.halfOpen && breaker.pendingClose)
  }

  state(kdc: string): BreakerState {
    const breaker = this.#breakers.get(kdc)
    if (!breaker) return 'closed'
    if (breaker.opened) return 'open'
    if (breaker.halfOpen) return 'halfOpen'
    return 'closed'
  }

  /** The state of every known KDC breaker, keyed by `host:port`. */
  states(): Record<string, BreakerState> {
    return Object.fromEntries([...this.#breakers.keys()].map((kdc) => [kdc, this.state(kdc)]))
  }

  /** Shuts every breaker down (clears opossum's timers). Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const breaker of this.#breakers.values()) breaker.shutdown()
    this.#breakers.clear()
  }

  #get(kdc: string): CircuitBreaker<[Outcome], void> {
    let breaker = this.#breakers.get(kdc)
    if (breaker) return breaker
    const o = this.#options
    breaker = new CircuitBreaker<[Outcome], void>(
      async (outcome: Outcome) => {
        if (!(await outcome)) throw new TransportFailure()
      },
      {
        name: kdc,
        timeout: false, // the transport owns every timeout
        resetTimeout: o.resetTimeoutMs,
        volumeThreshold: o.volumeThreshold,
        errorThresholdPercentage: o.errorThresholdPercentage,
        rollingCountTimeout: o.rollingCountTimeoutMs,
        rollingCountBuckets: o.rollingCountBuckets,
        rollingPercentilesEnabled: false,
        enableSnapshots: false,
      },
    )
    const emit = (state: BreakerState) => () => {
      try {
        this.#onChange?.({ kdc, state })
      } catch {
        // a telemetry hook must never break the transport
      }
    }
    breaker.on('open', emit('open'))
    breaker.on('halfOpen', emit('halfOpen'))
    breaker.on('close', emit('closed'))
    this.#breakers.set(kdc, breaker)
    return breaker
  }
}
