/**
 * Readiness that means "can serve": `/readyz` answers ready only when this process can
 * give a right password an OK now.
 *
 *   ready  =  not draining
 *         and the keytab is readable
 *         and the KDC knows the verify principal (else every check fails)
 *         and ( a KDC of the default realm answered within `service.readyKdcWindowMs`
 *               and not every KDC breaker of the default realm is open
 *             or offline mode is on and the verdict cache holds a positive verdict )
 *
 * "Answered" is any Kerberos reply (an error reply too: the KDC is up and speaks Kerberos),
 * to a user's check or to the probe below. A process with no traffic learns it by a probe:
 * an AS-REQ for the verify principal (probe-request.ts), sent at start and whenever
 * readiness is asked while the last reply is older than half the window, one at a time.
 * So a fresh process whose KDCs are all down is not ready (it would refuse everyone), and
 * under traffic the probe is never sent.
 *
 * KDC replies are unauthenticated, so whoever can answer on a KDC address can make a probe
 * say "answered" or "principal unknown": readiness is an operational signal, never a security
 * decision (a spoofer able to answer could refuse every check anyway).
 *
 * Offline mode (`pipeline.offlineMaxStalenessMs` > 0) keeps a replica ready through a KDC
 * outage only while it has someone to let in: with an empty cache it cannot serve anyone
 * either (and Kubernetes should send the logins to a replica that can).
 */

export interface ReadinessState {
  ready: boolean
  reason?: string
}

export interface KdcReadinessOptions {
  realm: string
  /** A KDC reply this recent makes the realm reachable. */
  windowMs: number
  /**
   * Sends one probe to the realm's KDCs. `answered`: a Kerberos reply came; `verifyPrincipalKnown`
   * false: that reply said the KDC does not know the verify principal (the probe's client).
   * Never throws.
   */
  probe: () => Promise<{ answered: boolean; verifyPrincipalKnown?: boolean }>
  /** Every KDC breaker of the realm is open. */
  allBreakersOpen: () => boolean
  /** Offline mode can let someone in: it is on and a positive verdict is cached. */
  offlineCanServe: () => boolean
  keytabReadable: () => boolean
  /** Named in the reason when the KDC does not know it. */
  verifyPrincipal?: string
  now?: () => number
  /** Told once per change between reachable and unreachable (a log line). */
  onReachability?: (e: { realm: string; reachable: boolean }) => void
}

export class KdcReadiness {
  readonly #o: KdcReadinessOptions
  readonly #now: () => number
  #lastReplyAt = Number.NEGATIVE_INFINITY
  #probing: Promise<void> | undefined
  #reachable: boolean | undefined
  /** The verify principal the KDC said it does not know (every check would fail), or undefined. */
  #unknownVerifyPrincipal: string | undefined
  #probes = 0
  #lastProbeAt = Number.NEGATIVE_INFINITY
  #closed = false

  constructor(options: KdcReadinessOptions) {
    if (!(options.windowMs > 0)) throw new RangeError('windowMs must be > 0')
    this.#o = options
    this.#now = options.now ?? (() => performance.now())
  }

  /** A KDC of the realm answered (a user's check or a probe). */
  noteReply(realm: string): void {
    if (realm !== this.#o.realm) return
    this.#lastReplyAt = this.#now()
    this.#setReachable(true)
  }

  /**
   * The KDC does (or does not) know the verify principal: from a probe or from a user's check
   * (the verifier's report). While unknown, not ready: every check would answer unavailable.
   */
  noteVerifyPrincipal(principal: string, known: boolean): void {
    if (known) {
      if (this.#unknownVerifyPrincipal === principal) this.#unknownVerifyPrincipal = undefined
    } else this.#unknownVerifyPrincipal = principal
  }

  /** Probes sent so far (tests assert which path ran). */
  get probes(): number {
    return this.#probes
  }

  /** Starts a probe unless one runs; resolves when it ended. */
  probe(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#probing ??= (async () => {
      this.#probes++
      this.#lastProbeAt = this.#now()
      try {
        const r = await this.#o.probe()
        if (r.answered) {
          this.noteReply(this.#o.realm)
          if (r.verifyPrincipalKnown === false)
            this.#unknownVerifyPrincipal ??= this.#o.verifyPrincipal ?? 'the verify principal'
          else if (r.verifyPrincipalKnown === true) this.#unknownVerifyPrincipal = undefined
        } else if (!this.#fresh()) this.#setReachable(false)
      } finally {
        this.#probing = undefined
      }
    })()
    return this.#probing
  }

  readiness(): ReadinessState {
    if (!this.#o.keytabReadable()) return { ready: false, reason: 'keytab unreadable' }
    if (this.#unknownVerifyPrincipal !== undefined) {
      // User traffic keeps replies fresh but never says the principal is back: ask, now and then.
      if (this.#now() - this.#lastProbeAt >= this.#o.windowMs / 4) void this.probe()
      return {
        ready: false,
        reason: `the KDC does not know ${this.#unknownVerifyPrincipal} (every check would fail)`,
      }
    }
    const age = this.#now() - this.#lastReplyAt
    // Refresh before the window runs out, so a steady prober never sees a gap.
    if (age > this.#o.windowMs / 2) void this.probe()
    const kdcOk = this.#fresh() && !this.#o.allBreakersOpen()
    if (kdcOk) return { ready: true }
    if (this.#o.offlineCanServe()) return { ready: true, reason: 'offline: known-good users only' }
    if (this.#o.allBreakersOpen())
      return { ready: false, reason: `every KDC breaker of ${this.#o.realm} is open` }
    return {
      ready: false,
      reason:
        this.#lastReplyAt === Number.NEGATIVE_INFINITY
          ? `no KDC of ${this.#o.realm} has answered yet`
          : `no KDC of ${this.#o.realm} answered in the last ${this.#o.windowMs} ms`,
    }
  }

  /** Waits for a running probe; no new one starts. */
  async close(): Promise<void> {
    this.#closed = true
    await this.#probing
  }

  #fresh(): boolean {
    return this.#now() - this.#lastReplyAt <= this.#o.windowMs
  }

  #setReachable(reachable: boolean): void {
    if (this.#reachable === reachable) return
    this.#reachable = reachable
    this.#o.onReachability?.({ realm: this.#o.realm, reachable })
  }
}
