import { performance } from 'node:perf_hooks'
import { SaslgateError } from '../errors.js'

/**
 * Admission (pipeline stage 6): a global cap on KDC checks in flight, a bounded
 * priority queue, and deadlines.
 *
 * A small priority semaphore of our own rather than p-limit: p-limit has one FIFO queue
 * (no priority), cannot remove one queued call when its caller's signal aborts or its
 * deadline comes (an abandoned call would hold a queue place and run later for nobody),
 * and exposes no hook to shed at enqueue time. All three are the point of this stage.
 *
 * Rules:
 * - a request with less than `minCheckMs` left before its deadline is shed at once;
 * - with a free slot a request starts at once (the queue is then empty);
 * - otherwise it queues by priority: `high` (principals with a recent success), then
 *   `normal` (principals with no failure in the guard window: first-time users), then
 *   `low` (principals already failing: where a storm's guesses land). When the queue is
 *   full a request takes the place of the newest request of a lower priority (which is
 *   shed), or is shed itself;
 * - the expected check time is the running mean of check durations (at least
 *   `minCheckMs`); a queued request must start by its deadline minus that time: it is
 *   shed at once when its estimated start (requests ahead / `maxInFlight` x the mean) is
 *   later, and shed when it is still waiting then. One whose signal aborts leaves.
 *
 * The mean only applies to queued requests, so a slow spell cannot shed everything for
 * good: a free slot always takes a request, and its duration updates the mean.
 *
 * Starts are paced: two checks start at least `mean / maxInFlight` apart (at most
 * `maxStartSpacingMs`; 0 turns pacing off), the rate the cap allows anyway. Without it,
 * checks that start together finish together (a KDC at a fixed distance sends their replies
 * in one burst), the next ones start together again, and every burst of replies (string-to-
 * key, libkrb5 steps) holds up the cache hits on the same event loop and cores. Paced, the
 * same work arrives evenly.
 *
 * Never nest `run` calls on the same instance (a check that itself waits for a slot of
 * the same semaphore can deadlock when every slot is held by such checks).
 */

export type Priority = 'high' | 'normal' | 'low'

const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low']

export interface AdmissionOptions {
  /** KDC checks in flight at once (over every realm). */
  maxInFlight: number
  /** Requests waiting for a slot. */
  maxQueue: number
  /** Shortest useful time for a check: less than this left before the deadline = shed. */
  minCheckMs: number
  /** Initial value of the running mean check time (used for the start estimate). */
  initialCheckEstimateMs: number
  /** Longest gap enforced between two check starts (pacing); 0 = no pacing. */
  maxStartSpacingMs: number
  /** Monotonic clock (ms); same clock as the deadlines handed to `run`. */
  now: () => number
}

export const DEFAULT_ADMISSION_OPTIONS: Readonly<AdmissionOptions> = Object.freeze({
  maxInFlight: 32,
  maxQueue: 256,
  minCheckMs: 50,
  initialCheckEstimateMs: 100,
  maxStartSpacingMs: 20,
  now: () => performance.now(),
})

export interface AdmissionRequest {
  priority: Priority
  /** Absolute deadline on the `now` clock. */
  deadlineMs: number
  signal: AbortSignal
}

export type AdmissionOutcome<T> =
  | { outcome: 'ran'; value: T; queueWaitMs: number }
  | { outcome: 'shed'; queueWaitMs: number }
  | { outcome: 'aborted'; queueWaitMs: number }

interface Waiter {
  start: () => void
  leave: (outcome: 'shed' | 'aborted') => void
}

const EWMA_ALPHA = 0.2

export class Admission {
  readonly #options: AdmissionOptions
  readonly #queues: Record<Priority, Waiter[]> = { high: [], normal: [], low: [] }
  #inFlight = 0
  #meanCheckMs: number
  #shed = 0
  #closed = false
  /** Earliest start of the next check (pacing). */
  #nextStartAt = 0
  #pumpTimer: NodeJS.Timeout | undefined

  constructor(options: Partial<AdmissionOptions> = {}) {
    const o = { ...DEFAULT_ADMISSION_OPTIONS, ...options }
    if (!Number.isInteger(o.maxInFlight) || o.maxInFlight < 1) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'admission: maxInFlight must be >= 1')
    }
    if (!Number.isInteger(o.maxQueue) || o.maxQueue < 0) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'admission: maxQueue must be >= 0')
    }
    if (!(o.minCheckMs >= 0) || !(o.initialCheckEstimateMs >= 0) || !(o.maxStartSpacingMs >= 0)) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'admission: times must be >= 0')
    }
    this.#options = o
    this.#meanCheckMs = o.initialCheckEstimateMs
  }

  get inFlight(): number {
    return this.#inFlight
  }

  get queued(): number {
    return this.#queues.high.length + this.#queues.normal.length + this.#queues.low.length
  }

  /** Requests shed so far (for metrics). */
  get shedCount(): number {
    return this.#shed
  }

  /** The running mean of check durations (ms). */
  get meanCheckMs(): number {
    return this.#meanCheckMs
  }

  /** Runs `fn` when a slot is free and the deadline allows; rejects only if `fn` does. */
  run<T>(fn: () => Promise<T>, req: AdmissionRequest): Promise<AdmissionOutcome<T>> {
    const o = this.#options
    const arrived = o.now()
    if (req.signal.aborted) return Promise.resolve({ outcome: 'aborted', queueWaitMs: 0 })
    const latestStart = req.deadlineMs - o.minCheckMs
    if (this.#closed || arrived > latestStart) return Promise.resolve(this.#shedNow())
    // A free slot: start now, unless pacing holds it back and the queue has room to wait in
    // (pacing spreads work; it never sheds).
    if (
      this.#inFlight < o.maxInFlight &&
      this.queued === 0 &&
      (arrived >= this.#nextStartAt || o.maxQueue === 0)
    ) {
      this.#paced(arrived)
      return this.#execute(fn, 0)
    }

    const rank = PRIORITIES.indexOf(req.priority)
    const expectedCheckMs = Math.max(o.minCheckMs, this.#meanCheckMs)
    const latestQueuedStart = req.deadlineMs - expectedCheckMs
    let ahead = 0
    for (const p of PRIORITIES.slice(0, rank + 1)) ahead += this.#queues[p].length
    // Waiting for a slot (none free for it: a running check must end first) and for pacing.
    const free = o.maxInFlight - this.#inFlight
    const slotWait =
      ahead < free ? 0 : (Math.floor((ahead - free) / o.maxInFlight) + 1) * this.#meanCheckMs
    const paceStart = Math.max(arrived, this.#nextStartAt) + ahead * this.#spacing()
    const estimatedStart = Math.max(arrived + slotWait, paceStart)
    if (estimatedStart > latestQueuedStart) return Promise.resolve(this.#shedNow())
    if (this.queued >= o.maxQueue) {
      // Take the place of the newest request of the lowest priority below this one.
      const victim = PRIORITIES.slice(rank + 1)
        .reverse()
        .map((p) => this.#queues[p])
        .find((q) => q.length > 0)
        ?.pop()
      if (victim === undefined) return Promise.resolve(this.#shedNow())
      victim.leave('shed')
    }

    return new Promise<AdmissionOutcome<T>>((resolve, reject) => {
      const queue = this.#queues[req.priority]
      let settled = false
      const cleanup = () => {
        settled = true
        clearTimeout(timer)
        req.signal.removeEventListener('abort', onAbort)
        const i = queue.indexOf(waiter)
        if (i >= 0) queue.splice(i, 1)
      }
      const waiter: Waiter = {
        start: () => {
          if (settled) return
          cleanup()
          this.#execute(fn, o.now() - arrived).then(resolve, reject)
        },
        leave: (outcome) => {
          if (settled) return
          cleanup()
          if (outcome === 'shed') this.#shed += 1
          resolve({ outcome, queueWaitMs: o.now() - arrived })
        },
      }
      const onAbort = () => waiter.leave('aborted')
      const timer = setTimeout(() => waiter.leave('shed'), Math.max(0, latestQueuedStart - arrived))
      timer.unref()
      req.signal.addEventListener('abort', onAbort, { once: true })
      queue.push(waiter)
      this.#pump() // a free slot held back by pacing
    })
  }

  /** Sheds every queued request and every later one. Running checks finish. Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#pumpTimer)
    this.#pumpTimer = undefined
    for (const p of PRIORITIES) for (const w of [...this.#queues[p]]) w.leave('shed')
  }

  #shedNow(): AdmissionOutcome<never> {
    this.#shed += 1
    return { outcome: 'shed', queueWaitMs: 0 }
  }

  async #execute<T>(fn: () => Promise<T>, queueWaitMs: number): Promise<AdmissionOutcome<T>> {
    this.#inFlight += 1
    const started = this.#options.now()
    try {
      const value = await fn()
      return { outcome: 'ran', value, queueWaitMs }
    } finally {
      this.#inFlight -= 1
      const took = this.#options.now() - started
      this.#meanCheckMs += EWMA_ALPHA * (took - this.#meanCheckMs)
      this.#pump()
    }
  }

  #pump(): void {
    while (this.#inFlight < this.#options.maxInFlight && !this.#closed) {
      const next = this.#queues.high[0] ?? this.#queues.normal[0] ?? this.#queues.low[0]
      if (next === undefined) return
      const now = this.#options.now()
      if (now < this.#nextStartAt) {
        this.#pumpTimer ??= setTimeout(() => {
          this.#pumpTimer = undefined
          this.#pump()
        }, this.#nextStartAt - now)
        this.#pumpTimer.unref()
        return
      }
      this.#paced(now)
      next.start()
    }
  }

  /** The gap kept between two check starts. */
  #spacing(): number {
    const o = this.#options
    return Math.min(o.maxStartSpacingMs, this.#meanCheckMs / o.maxInFlight)
  }

  /** A check starts now: the next one may start one spacing later. */
  #paced(now: number): void {
    if (this.#options.maxStartSpacingMs === 0) return
    this.#nextStartAt = Math.max(now, this.#nextStartAt) + this.#spacing()
  }
}
