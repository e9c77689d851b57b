import { performance } from 'node:perf_hooks'

/**
 * No user enumeration by timing, by construction: every KDC check's refusal is released at a
 * time fixed when the check *starts*, before anything about the principal is known.
 *
 * The KDC refuses an unknown name after one round trip and no string-to-key, a wrong
 * password after two round trips and string-to-key: answered when they are known, an unknown
 * user's `NO` comes ~4 ms sooner (much more with a distant KDC). The former defence held
 * an unknown user's answer until a sampled wrong-password duration had passed, which gives
 * max(own work, sample) plus timer overshoot: systematically later, and a two-sample test
 * over 1,000 tries told them apart now and then (p = 2e-4 to 7e-3 on a 2-core machine).
 *
 * Here, when a check starts (a KDC slot is taken: the same moment and the same code for
 * every principal, known or not), `arm()` sets one timer for `holdMs()` from now. Any
 * refusal of that check (wrong password, unknown name, disabled, expired, a rogue KDC's
 * ticket) is written when that timer fires; an `OK` (a different reply anyway) cancels it
 * and goes at once. So both kinds of refusal leave through the same timer, armed at the
 * same point with the same delay: neither distribution depends on its own work.
 *
 * The delay follows the load: `factor` x the longest of the last `window` wrong-password
 * check durations (the slow kind, start to verdict and bookkeeping), at least `minHoldMs`,
 * `initialHoldMs` before any was seen. Only wrong-password durations count, so an attacker
 * who floods unknown names cannot shrink the hold below what a real user's wrong password
 * takes. A check that outlasts its hold (an overrun: a sudden slow spell) answers when it is
 * done; `overruns` counts them (a rare tail, measured by bench/enumeration-false-failure.ts).
 * Nothing is ever held past the check's deadline.
 */

export interface RefusalHoldOptions {
  /** Wrong-password check durations remembered (a ring). */
  window: number
  /** The hold is this many times the longest remembered duration. */
  factor: number
  /** Shortest hold (ms). */
  minHoldMs: number
  /** Hold before any wrong-password duration was seen (ms). */
  initialHoldMs: number
  /** Monotonic clock (ms), the same one as the deadlines handed to `arm`. */
  now: () => number
  /** Timer (tests pass a manual one); must call `fn` once, no sooner than `ms` from now. */
  setTimer: (fn: () => void, ms: number) => { cancel(): void }
}

export const DEFAULT_REFUSAL_HOLD_OPTIONS: Readonly<RefusalHoldOptions> = Object.freeze({
  window: 64,
  factor: 1.25,
  minHoldMs: 1,
  initialHoldMs: 100,
  now: () => performance.now(),
  // Not unref()ed: a held answer is work in flight (bounded by the check's deadline), and an
  // in-process caller with nothing else pending would otherwise see its promise never settle.
  setTimer: (fn: () => void, ms: number) => {
    const t = setTimeout(fn, ms)
    return { cancel: () => clearTimeout(t) }
  },
})

/** One check's hold: armed at its start; `released` settles when its refusal may be written. */
export interface Hold {
  /** When the refusal goes out (on the `now` clock). */
  readonly releaseAt: number
  /** Resolves at `releaseAt` (never rejects); the same promise for every caller. */
  readonly released: Promise<void>
  /** The timer has fired (or the hold was cancelled): a refusal ready now is an overrun. */
  readonly isReleased: boolean
  /** The check succeeded (or needs no hold): drops the timer. Idempotent. */
  cancel(): void
}

export class RefusalHold {
  readonly #o: RefusalHoldOptions
  readonly #ring: Float64Array
  #count = 0
  #next = 0
  #overruns = 0

  constructor(options: Partial<RefusalHoldOptions> = {}) {
    const o = { ...DEFAULT_REFUSAL_HOLD_OPTIONS, ...options }
    if (!(Number.isInteger(o.window) && o.window >= 1)) {
      throw new RangeError('refusal hold: window must be an integer >= 1')
    }
    if (!(o.factor >= 1) || !(o.minHoldMs >= 0) || !(o.initialHoldMs >= 0)) {
      throw new RangeError('refusal hold: need factor >= 1, minHoldMs >= 0, initialHoldMs >= 0')
    }
    this.#o = o
    this.#ring = new Float64Array(o.window)
  }

  /** The delay a check starting now gets. */
  holdMs(): number {
    if (this.#count === 0) return Math.max(this.#o.minHoldMs, this.#o.initialHoldMs)
    let longest = 0
    for (let i = 0; i < this.#count; i++) longest = Math.max(longest, this.#ring[i] as number)
    return Math.max(this.#o.minHoldMs, this.#o.factor * longest)
  }

  /**
   * A check starts now: its refusal, if any, goes out `holdMs()` from now, never after
   * `deadline`. Call at the same point for every principal, before any KDC reply.
   */
  arm(deadline: number): Hold {
    const now = this.#o.now()
    // The delay itself is what every check gets (not releaseAt - now, which rounds by now).
    const delayMs = Math.max(0, Math.min(this.holdMs(), deadline - now))
    const releaseAt = now + delayMs
    let timer: { cancel(): void } | undefined
    let isReleased = false
    let resolve!: () => void
    const released = new Promise<void>((r) => {
      resolve = r
    })
    timer = this.#o.setTimer(() => {
      timer = undefined
      isReleased = true
      resolve()
    }, delayMs)
    return {
      releaseAt,
      released,
      get isReleased() {
        return isReleased
      },
      cancel: () => {
        timer?.cancel()
        timer = undefined
        isReleased = true
        resolve()
      },
    }
  }

  /** A wrong-password check took `ms` from its start to its verdict (and bookkeeping). */
  noteWrongPassword(ms: number): void {
    if (!(ms >= 0)) return
    this.#ring[this.#next] = ms
    this.#next = (this.#next + 1) % this.#ring.length
    if (this.#count < this.#ring.length) this.#count++
  }

  /** A refusal was ready only after its hold had ended (counted for the operator and benches). */
  noteOverrun(): void {
    this.#overruns++
  }

  get overruns(): number {
    return this.#overruns
  }
}
