import { SaslgateError } from '../errors.js'

/**
 * Single flight (pipeline stage 5): concurrent identical checks share one call.
 *
 * Keys are compared with `equals` inside a group (the pipeline uses the principal as the
 * group and the verdict cache's opaque key as the key), so the secret-derived digest never
 * leaves the cache module; a group holds few concurrent flights (the guard caps the
 * distinct passwords of a principal), so the scan is short.
 *
 * The shared call gets its own AbortSignal, aborted only when every waiter has gone. A
 * waiter whose own signal aborts is rejected at once with `SASLGATE_ERR_ABORTED`; the
 * others keep waiting. A flight is removed when it settles or loses its last waiter, so a
 * later request never joins a finished or abandoned call.
 */

export interface FlightKey<K> {
  equals(other: K): boolean
}

interface Flight<K, T> {
  key: K
  controller: AbortController
  waiters: number
  promise: Promise<T>
}

export class SingleFlight<K extends FlightKey<K>, T> {
  readonly #groups = new Map<string, Flight<K, T>[]>()
  #joined = 0
  #closed = false

  /** Flights in progress. */
  get size(): number {
    let n = 0
    for (const flights of this.#groups.values()) n += flights.length
    return n
  }

  /** Requests that joined an existing flight instead of starting one (for metrics). */
  get joined(): number {
    return this.#joined
  }

  /**
   * Runs `fn` for `key` unless an identical call is in flight, and waits for it (or for
   * `signal`, whichever comes first).
   */
  run(
    group: string,
    key: K,
    fn: (signal: AbortSignal) => Promise<T>,
    signal: AbortSignal,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new SaslgateError('SASLGATE_ERR_CLOSED', 'closed'))
    if (signal.aborted) return Promise.reject(aborted())
    let flight = this.#groups.get(group)?.find((f) => f.key.equals(key))
    if (flight === undefined) flight = this.#start(group, key, fn)
    else this.#joined += 1
    const f = flight
    f.waiters += 1
    return new Promise<T>((resolve, reject) => {
      let done = false
      const onAbort = () => {
        if (done) return
        done = true
        f.waiters -= 1
        if (f.waiters === 0) {
          this.#remove(group, f)
          f.controller.abort()
        }
        reject(aborted())
      }
      signal.addEventListener('abort', onAbort, { once: true })
      f.promise.then(
        (value) => {
          if (done) return
          done = true
          signal.removeEventListener('abort', onAbort)
          resolve(value)
        },
        (err: unknown) => {
          if (done) return
          done = true
          signal.removeEventListener('abort', onAbort)
          reject(err)
        },
      )
    })
  }

  /** Aborts every flight's shared signal (waiters still get their flight's outcome). */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const flights of this.#groups.values()) for (const f of flights) f.controller.abort()
    this.#groups.clear()
  }

  #start(group: string, key: K, fn: (signal: AbortSignal) => Promise<T>): Flight<K, T> {
    const controller = new AbortController()
    const flight: Flight<K, T> = {
      key,
      controller,
      waiters: 0,
      // `then` turns a synchronous throw of fn into a rejection.
      promise: Promise.resolve().then(() => fn(controller.signal)),
    }
    flight.promise.then(
      () => this.#remove(group, flight),
      () => this.#remove(group, flight),
    )
    let flights = this.#groups.get(group)
    if (flights === undefined) {
      flights = []
      this.#groups.set(group, flights)
    }
    flights.push(flight)
    return flight
  }

  #remove(group: string, flight: Flight<K, T>): void {
    const flights = this.#groups.get(group)
    if (flights === undefined) return
    const i = flights.indexOf(flight)
    if (i >= 0) flights.splice(i, 1)
    if (flights.length === 0) this.#groups.delete(group)
  }
}

function aborted(): SaslgateError {
  return new SaslgateError('SASLGATE_ERR_ABORTED', 'the waiter gave up')
}
