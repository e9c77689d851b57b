import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Authenticator, AuthRequest, AuthResult } from '../authenticator.js'
import {
  type Decision,
  decisionOf,
  isSaslgateError,
  type Reason,
  SaslgateError,
} from '../errors.js'
import type { PasswordVerifier, VerifyResult } from '../kerberos/types.js'
import type { GuardStore } from '../state/guard-store.js'
import { MemoryGuardStore } from '../state/memory-store.js'
import { AddressReputation, DEFAULT_ADDRESS_REPUTATION_OPTIONS } from './address-reputation.js'
import { Admission, DEFAULT_ADMISSION_OPTIONS, type Priority } from './admission.js'
import { DEFAULT_GUARD_OPTIONS, Guard } from './guard.js'
import { type Hold, RefusalHold, type RefusalHoldOptions } from './refusal-hold.js'
import { SingleFlight } from './single-flight.js'
import { DEFAULT_SPRAY_DETECTOR_OPTIONS, SprayDetector } from './spray-detector.js'
import { type CacheKey, DEFAULT_VERDICT_CACHE_OPTIONS, VerdictCache } from './verdict-cache.js'

/**
 * The decision pipeline (DESIGN.md section 3, stages 1-6 and offline mode):
 * validate -> map -> verdict cache -> guard -> offline mode -> single flight -> admission
 * -> verifier -> record (cache, guard). Each stage may answer early; only the verifier
 * talks to a KDC.
 *
 * Fail closed: any exception anywhere answers `unavailable` (`internal_error`), never
 * `ok`. Unknown principals and wrong passwords take the same paths (cache, guard, budget)
 * and give the same `invalid` decision; the reason stays internal. A KDC check's refusal is
 * written when a timer armed at the check's start fires (`refusal-hold.ts`), so the time
 * to a `NO` does not depend on whether the principal exists.
 *
 * Known-good credentials (a positive verdict for exactly this password, up to
 * `offlineMaxStalenessMs` old) pass the guard even while the principal is under attack,
 * and answer `offline_ok` when no KDC can answer in time (every breaker open, queue full,
 * KDC timeout).
 *
 * Clean credentials (a password tried on no other principal lately, from a client address
 * that has not been failing) may use the part of the principal's KDC budget the guard
 * keeps for them (`cleanPasswordKdcReserve`), also while the principal is blocked: a
 * botnet replays dictionary words over many principals, a real user's password is tried
 * on one. So the first right password of a user whose account is under attack still
 * reaches the KDC, and no more wrong passwords than `maxKdcFailuresPerWindow` ever do.
 *
 * KDC checks queue by priority: known-good credentials first, then clean ones (first-time
 * users), then the rest (sprayed passwords, guessing addresses: where a storm lands).
 *
 * The pipeline closes what it made (cache, guard, admission, its own memory store); the
 * verifier, the mapper and an injected guard store belong to the caller.
 */

/** Maps a login and the realm field to a principal; the real one is src/pipeline/principal.ts. */
export interface PrincipalMapper {
  map(
    login: string,
    realmField: string,
  ): { ok: true; principal: string; realm: string } | { ok: false; reason: 'unmappable_login' }
}

/** What the `onDecision` hook sees: never a password, never a cache key. */
export interface DecisionEvent {
  decision: Decision
  reason: Reason
  stage: string
  /** The mapped principal; undefined when the request was refused before mapping. */
  principal: string | undefined
  latencyMs: number
  cacheHit: boolean
  queueWaitMs: number
  /** The password was being tried on other principals too (a spray); false when not looked at. */
  passwordSprayed: boolean
  /** The request went past the guard on the budget reserved for clean credentials. */
  usedCleanReserve: boolean
}

export interface PipelineDeps {
  verifier: PasswordVerifier
  mapper: PrincipalMapper
  /** Shared guard state (e.g. `RedisGuardStore`); default: a private `MemoryGuardStore`. */
  guardStore?: GuardStore
  /** Called once per decision (logs, metrics); its exceptions are swallowed. */
  onDecision?: (event: DecisionEvent) => void
  /** Wall clock for cache ages and guard windows (tests); default `Date.now`. */
  wallClock?: () => number
  /** Clock and timer of the refusal hold (tests); default `performance.now` and `setTimeout`. */
  refusalHoldTiming?: Pick<RefusalHoldOptions, 'now' | 'setTimer'>
}

export interface PipelineOptions {
  deadlineMs: number
  answerReserveMs: number
  positiveTtlMs: number
  negativeTtlMs: number
  maxPositiveEntries: number
  maxNegativeEntries: number
  offlineMaxStalenessMs: number
  staleOkOnUnavailable: boolean
  guardWindowMs: number
  guardThreshold: number
  guardBackoffBaseMs: number
  guardBackoffFactor: number
  guardBackoffMaxMs: number
  maxKdcFailuresPerWindow: number
  guardMaxPrincipals: number
  maxKdcInFlight: number
  maxQueue: number
  minCheckMs: number
  initialCheckEstimateMs: number
  kdcStartSpacingMaxMs: number
  cleanPasswordKdcReserve: number
  cleanReserveHoldMs: number
  sprayPrincipals: number
  suspectAddressFailures: number
}

export const DEFAULT_PIPELINE_OPTIONS: Readonly<PipelineOptions> = Object.freeze({
  /** Bound on one decision; keep it below the front door's answer deadline (2,000 ms). */
  deadlineMs: 1900,
  /** Time kept after giving up on the KDC to answer (raise on a loaded event loop). */
  answerReserveMs: 25,
  /** Known-good passwords answer OK this long without a KDC; lower to honour password changes sooner. */
  positiveTtlMs: DEFAULT_VERDICT_CACHE_OPTIONS.positiveTtlMs,
  /** Known-bad passwords answer NO this long without a KDC; raise against slow dictionaries. */
  negativeTtlMs: DEFAULT_VERDICT_CACHE_OPTIONS.negativeTtlMs,
  /** Positive cache bound (entries, ~200 bytes each); raise above your active user count. */
  maxPositiveEntries: DEFAULT_VERDICT_CACHE_OPTIONS.maxPositiveEntries,
  /** Negative cache bound (entries); raise when storms replay larger dictionaries. */
  maxNegativeEntries: DEFAULT_VERDICT_CACHE_OPTIONS.maxNegativeEntries,
  /** Oldest positive verdict that still lets a user in when no KDC answers; 0 disables. */
  offlineMaxStalenessMs: 24 * 60 * 60 * 1000,
  /** Also answer known-good credentials when the KDC check fails (timeout, shed); off = strict. */
  staleOkOnUnavailable: true,
  /** Guard window; keep >= the KDC policy's failurecountinterval. */
  guardWindowMs: DEFAULT_GUARD_OPTIONS.windowMs,
  /** Failures in the window before backoff; lower for stricter blocking. */
  guardThreshold: DEFAULT_GUARD_OPTIONS.threshold,
  /** First backoff of a blocked principal. */
  guardBackoffBaseMs: DEFAULT_GUARD_OPTIONS.backoffBaseMs,
  /** Backoff growth per further failure. */
  guardBackoffFactor: DEFAULT_GUARD_OPTIONS.backoffFactor,
  /** Longest backoff. */
  guardBackoffMaxMs: DEFAULT_GUARD_OPTIONS.backoffMaxMs,
  /** Unknown passwords sent to the KDC per principal per window; keep below the KDC's maxfailure. */
  maxKdcFailuresPerWindow: DEFAULT_GUARD_OPTIONS.maxKdcFailuresPerWindow,
  /** Principals tracked by the default memory guard store; raise for very large sites. */
  guardMaxPrincipals: 100_000,
  /** KDC checks in flight at once; raise with KDC capacity (about 1,000 checks/s per krb5kdc). */
  maxKdcInFlight: DEFAULT_ADMISSION_OPTIONS.maxInFlight,
  /** Requests waiting for a KDC slot; beyond this they are shed. */
  maxQueue: DEFAULT_ADMISSION_OPTIONS.maxQueue,
  /** Shortest useful KDC check; less time left = shed at once. Raise for distant KDCs. */
  minCheckMs: DEFAULT_ADMISSION_OPTIONS.minCheckMs,
  /** First guess of a check's duration before any was measured. */
  initialCheckEstimateMs: DEFAULT_ADMISSION_OPTIONS.initialCheckEstimateMs,
  /**
   * Longest gap kept between two KDC check starts (they are spread at the rate the cap allows,
   * so KDC replies do not arrive in bursts that hold up cache hits); 0 turns pacing off.
   */
  kdcStartSpacingMaxMs: DEFAULT_ADMISSION_OPTIONS.maxStartSpacingMs,
  /**
   * Of `maxKdcFailuresPerWindow`, KDC checks per principal per window kept for clean
   * passwords (tried on no other principal, from no guessing address): what lets a user
   * whose account is under attack log in for the first time. 0 turns the reserve off.
   */
  cleanPasswordKdcReserve: DEFAULT_GUARD_OPTIONS.cleanReserve,
  /**
   * A clean password waits this long before it takes the reserve, and loses it when the
   * password shows up on another principal meanwhile (a spray's first sighting looks clean).
   */
  cleanReserveHoldMs: 250,
  /** A password tried on this many principals within the guard window is a spray (not clean). */
  sprayPrincipals: DEFAULT_SPRAY_DETECTOR_OPTIONS.sprayPrincipals,
  /** Failed logins from one client address (5-field frames) within the guard window that make it suspect (not clean). */
  suspectAddressFailures: DEFAULT_ADDRESS_REPUTATION_OPTIONS.suspectFailures,
})

interface FlightOutcome {
  result: AuthResult
  queueWaitMs: number
  /** A KDC check ran: its refusal is written when this releases (src/pipeline/refusal-hold.ts). */
  hold?: Hold
}

interface Context {
  principal: string | undefined
  cacheHit: boolean
  queueWaitMs: number
  passwordSprayed: boolean
  usedCleanReserve: boolean
  hold: Hold | undefined
}

/**
 * The KDC's genuine verdicts on the user (src/kerberos/krb5-verdicts.ts): the only ones
 * cached and counted as guard failures. Never `unavailable` ones.
 */
const CACHEABLE_INVALID: ReadonlySet<Reason> = new Set<Reason>([
  'bad_password',
  'unknown_principal',
  'password_expired',
  'principal_disabled',
  'principal_locked',
  // Not `verify_failed`: a ticket that does not verify means the KDC is rogue or broken,
  // not that the password is wrong; caching it would refuse the real password afterwards.
])

export class Pipeline implements Authenticator {
  readonly #options: PipelineOptions
  readonly #verifier: PasswordVerifier
  readonly #mapper: PrincipalMapper
  readonly #onDecision: ((event: DecisionEvent) => void) | undefined
  readonly #cache: VerdictCache
  readonly #spray: SprayDetector
  readonly #reputation: AddressReputation
  readonly #guard: Guard
  readonly #ownStore: GuardStore | undefined
  readonly #flights = new SingleFlight<CacheKey, FlightOutcome>()
  readonly #admission: Admission
  readonly #refusalHold: RefusalHold
  #closed = false

  constructor(deps: PipelineDeps, options: Partial<PipelineOptions> = {}) {
    const o = { ...DEFAULT_PIPELINE_OPTIONS, ...options }
    if (!(o.deadlineMs > o.answerReserveMs) || !(o.answerReserveMs >= 0)) {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        'pipeline: need deadlineMs > answerReserveMs >= 0',
      )
    }
    if (!(o.cleanReserveHoldMs >= 0)) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'pipeline: cleanReserveHoldMs must be >= 0')
    }
    if (!(o.offlineMaxStalenessMs >= 0)) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'pipeline: offlineMaxStalenessMs must be >= 0')
    }
    this.#options = o
    this.#verifier = deps.verifier
    this.#mapper = deps.mapper
    this.#onDecision = deps.onDecision
    const now = deps.wallClock ?? Date.now
    this.#cache = new VerdictCache({
      positiveTtlMs: o.positiveTtlMs,
      negativeTtlMs: o.negativeTtlMs,
      staleRetainMs: o.offlineMaxStalenessMs,
      maxPositiveEntries: o.maxPositiveEntries,
      maxNegativeEntries: o.maxNegativeEntries,
      now,
    })
    this.#spray = new SprayDetector({
      sprayPrincipals: o.sprayPrincipals,
      windowMs: o.guardWindowMs,
      maxEntries: Math.max(1, o.maxNegativeEntries),
      now,
    })
    this.#reputation = new AddressReputation({
      suspectFailures: o.suspectAddressFailures,
      windowMs: o.guardWindowMs,
      maxEntries: Math.max(1, o.maxNegativeEntries),
      now,
    })
    if (deps.guardStore === undefined) {
      this.#ownStore = new MemoryGuardStore({ maxPrincipals: o.guardMaxPrincipals, now })
    }
    this.#guard = new Guard(deps.guardStore ?? (this.#ownStore as GuardStore), {
      windowMs: o.guardWindowMs,
      threshold: o.guardThreshold,
      backoffBaseMs: o.guardBackoffBaseMs,
      backoffFactor: o.guardBackoffFactor,
      backoffMaxMs: o.guardBackoffMaxMs,
      maxKdcFailuresPerWindow: o.maxKdcFailuresPerWindow,
      cleanReserve: o.cleanPasswordKdcReserve,
      now,
    })
    this.#admission = new Admission({
      maxInFlight: o.maxKdcInFlight,
      maxQueue: o.maxQueue,
      minCheckMs: o.minCheckMs,
      initialCheckEstimateMs: o.initialCheckEstimateMs,
      maxStartSpacingMs: o.kdcStartSpacingMaxMs,
    })
    this.#refusalHold = new RefusalHold({
      initialHoldMs: o.initialCheckEstimateMs,
      ...deps.refusalHoldTiming,
    })
  }

  /** Counters for metrics. */
  stats(): {
    cache: { positive: number; negative: number }
    kdcInFlight: number
    queued: number
    shed: number
    flights: number
    joined: number
    holdOverruns: number
    refusalHold: { holdMs: number; overruns: number }
  } {
    return {
      cache: this.#cache.stats(),
      kdcInFlight: this.#admission.inFlight,
      queued: this.#admission.queued,
      shed: this.#admission.shedCount,
      flights: this.#flights.size,
      joined: this.#flights.joined,
      holdOverruns: this.#refusalHold.overruns,
      refusalHold: { holdMs: this.#refusalHold.holdMs(), overruns: this.#refusalHold.overruns },
    }
  }

  async authenticate(req: AuthRequest): Promise<AuthResult> {
    const started = performance.now()
    const ctx: Context = {
      principal: undefined,
      cacheHit: false,
      queueWaitMs: 0,
      passwordSprayed: false,
      usedCleanReserve: false,
      hold: undefined,
    }
    let result: AuthResult
    try {
      result = await this.#decide(req, started, ctx)
      // Defence in depth: a decision must be the one its reason implies.
      if (result.decision !== decisionOf(result.reason)) {
        result = answer('internal_error', 'internal')
      }
      if (result.decision === 'invalid') this.#reputation.recordFailure(req.clientAddress)
    } catch {
      result = answer('internal_error', 'internal')
    }
    // A KDC check's refusal leaves when its hold releases, whoever the principal is; the
    // bookkeeping above is done by then, so nothing after this point differs by kind.
    const hold = result.decision === 'invalid' ? ctx.hold : undefined
    const answeredAt = Math.max(performance.now(), hold?.releaseAt ?? 0)
    this.#emit(result, ctx, answeredAt - started)
    if (hold !== undefined) await hold.released
    return result
  }

  /** Sheds queued checks and drops the cache. Running checks finish. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#admission.close()
    this.#flights.close()
    this.#cache.close()
    this.#spray.close()
    this.#reputation.close()
    await this.#guard.close()
    await this.#ownStore?.close()
  }

  async #decide(req: AuthRequest, started: number, ctx: Context): Promise<AuthResult> {
    if (this.#closed) return answer('internal_error', 'pipeline')
    if (
      req.login.length === 0 ||
      req.password.length === 0 ||
      req.login.includes('\0') ||
      req.realm.includes('\0')
    ) {
      return answer('malformed_request', 'decode')
    }
    if (req.signal.aborted) return answer('deadline', 'decode')

    const mapped = this.#mapper.map(req.login, req.realm)
    if (!mapped.ok) return answer('unmappable_login', 'mapping')
    const { principal, realm } = mapped
    ctx.principal = principal

    const key = this.#cache.keyFor(principal, req.password)
    const hit = this.#cache.get(key)
    if (hit?.verdict === 'ok') {
      ctx.cacheHit = true
      return answer('cached_ok', 'cache')
    }
    if (hit !== undefined) {
      ctx.cacheHit = true
      await this.#guard.recordFailure(principal)
      return answer('cached_invalid', 'cache')
    }
    // Every other attempt counts towards spotting a spray (a negative hit is a pair already
    // counted when it was first tried), whatever answers it below.
    const sprayed = this.#spray.sighting(principal, req.password)
    ctx.passwordSprayed = sprayed

    const knownGood = this.#cache.staleOk(key, this.#options.offlineMaxStalenessMs)
    const clean = !knownGood && !sprayed && !this.#reputation.isSuspect(req.clientAddress)
    const guard = await this.#guard.check(principal, knownGood, clean)
    if (guard.action === 'blocked') {
      return { ...answer('guard_blocked', 'guard'), retryAfterMs: Math.ceil(guard.retryAfterMs) }
    }
    if (guard.action === 'budget') return answer('guard_budget', 'guard')

    if (this.#verifier.allKdcsDown(realm)) {
      return knownGood ? answer('offline_ok', 'offline') : answer('offline_refused', 'offline')
    }

    ctx.usedCleanReserve = guard.reserve
    // Known-good credentials first, then clean ones (first-time users), then the rest
    // (sprayed passwords, guessing addresses: a storm).
    const priority: Priority = knownGood ? 'high' : clean ? 'normal' : 'low'
    const deadline = started + this.#options.deadlineMs - this.#options.answerReserveMs
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), Math.max(0, deadline - performance.now()))
    timer.unref()
    const waiterSignal = AbortSignal.any([req.signal, timeout.signal])
    try {
      const outcome = await this.#flights.run(
        principal,
        key,
        (signal) =>
          this.#leader(principal, req.password, key, priority, knownGood, clean, deadline, signal),
        waiterSignal,
      )
      ctx.queueWaitMs = outcome.queueWaitMs
      ctx.hold = outcome.hold
      return outcome.result
    } catch (err) {
      // This waiter's deadline came (or its caller left); the flight may go on for others.
      if (isSaslgateError(err, 'SASLGATE_ERR_ABORTED')) {
        return this.#fallback(key, 'deadline', 'kerberos')
      }
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  /** The one check a flight runs: budget, admission, verifier, then record the verdict. */
  async #leader(
    principal: string,
    callerPassword: Buffer,
    key: CacheKey,
    priority: Priority,
    knownGood: boolean,
    clean: boolean,
    deadline: number,
    signal: AbortSignal,
  ): Promise<FlightOutcome> {
    // Our own copy, taken before any await: the first caller may give up (and reuse its
    // buffer) while others still wait on this flight.
    const password = Buffer.from(callerPassword)
    try {
      return await this.#forward(
        principal,
        password,
        key,
        priority,
        knownGood,
        clean,
        deadline,
        signal,
      )
    } finally {
      password.fill(0)
    }
  }

  async #forward(
    principal: string,
    password: Buffer,
    key: CacheKey,
    priority: Priority,
    knownGood: boolean,
    clean: boolean,
    deadline: number,
    signal: AbortSignal,
  ): Promise<FlightOutcome> {
    // Known-good credentials skip the budget: at most one such forward per principal.
    let reserved = knownGood ? false : await this.#guard.reserveKdc(principal)
    if (!knownGood && !reserved && clean)
      reserved = await this.#reserveClean(principal, password, deadline, signal)
    if (!knownGood && !reserved) return { result: answer('guard_budget', 'guard'), queueWaitMs: 0 }

    // A retry on the primary KDC sends a second pre-authenticated request, which the
    // primary's lockout counts too: a second unit of the same budget, or no retry.
    let retryReserved = false
    const reserveRetry = async (): Promise<boolean> => {
      const cleanNow = clean && !this.#spray.isSprayed(password)
      retryReserved = !this.#closed && (await this.#guard.reserveKdc(principal, cleanNow))
      return retryReserved
    }
    let verifyStarted = 0
    let hold: Hold | undefined
    const admitted = await this.#admission.run(
      () => {
        verifyStarted = performance.now()
        // Armed here, before any KDC reply, at the same point for every principal.
        hold = this.#refusalHold.arm(deadline)
        return this.#verifier.verify(principal, password, signal, { reserveRetry })
      },
      { priority, deadlineMs: deadline, signal },
    )
    const queueWaitMs = admitted.queueWaitMs
    if (admitted.outcome !== 'ran') {
      if (reserved) await this.#guard.refundKdc(principal)
      const reason = admitted.outcome === 'shed' ? 'shed' : 'deadline'
      return { result: this.#fallback(key, reason, 'admission'), queueWaitMs }
    }
    const verified: VerifyResult = admitted.value

    const reason = verified.reason
    const decision = decisionOf(reason)
    // The retry's unit follows the first one's rule: kept when its pre-authenticated request
    // went out or the primary's verdict on the user is the answer, else given back.
    const retryVerdict =
      verified.retriedOnPrimary === true && (decision === 'ok' || CACHEABLE_INVALID.has(reason))
    if (retryReserved && !verified.retryPreauthSent && !retryVerdict) {
      await this.#guard.refundKdc(principal)
    }
    if (decision !== 'invalid') hold?.cancel()
    if (decision === 'ok') {
      if (reason !== 'ok') return { result: answer('internal_error', 'kerberos'), queueWaitMs }
      this.#cache.set(key, 'ok', reason)
      await this.#guard.recordSuccess(principal)
      return { result: answer('ok', 'kerberos'), queueWaitMs }
    }
    if (decision === 'invalid') {
      if (CACHEABLE_INVALID.has(reason)) this.#cache.set(key, 'invalid', reason)
      // Anything else says nothing about the user: no failure recorded, and the budget given
      // back unless a pre-authenticated request went out (the KDC may have counted it).
      if (CACHEABLE_INVALID.has(reason)) await this.#guard.recordFailure(principal)
      else if (reserved && !(verified.preauthSent ?? verified.roundTrips > 0)) {
        await this.#guard.refundKdc(principal)
      }
      const done = performance.now()
      if (reason === 'bad_password') this.#refusalHold.noteWrongPassword(done - verifyStarted)
      if (hold?.isReleased) this.#refusalHold.noteOverrun()
      return { result: answer(reason, 'kerberos'), queueWaitMs, hold }
    }
    // Unavailable: give the budget back only when no pre-authenticated request went out.
    if (reserved && !(verified.preauthSent ?? verified.roundTrips > 0)) {
      await this.#guard.refundKdc(principal)
    }
    return { result: this.#fallback(key, reason, 'kerberos'), queueWaitMs }
  }

  /**
   * Takes a forward from the principal's clean reserve, after a hold: a dictionary word is
   * clean at its first sighting, and a botnet tries it on other principals within moments.
   */
  async #reserveClean(
    principal: string,
    password: Buffer,
    deadline: number,
    signal: AbortSignal,
  ): Promise<boolean> {
    const o = this.#options
    const holdMs = Math.min(o.cleanReserveHoldMs, deadline - o.minCheckMs - performance.now())
    if (holdMs > 0) {
      try {
        await sleep(holdMs, undefined, { signal }) // bounded; keeps a lone check alive
      } catch {
        return false // the flight was abandoned
      }
    }
    if (this.#closed || this.#spray.isSprayed(password)) return false
    return this.#guard.reserveKdc(principal, true)
  }

  /** An `unavailable` answer, unless the credentials are known good (then `offline_ok`). */
  #fallback(key: CacheKey, reason: Reason, stage: string): AuthResult {
    const o = this.#options
    if (o.staleOkOnUnavailable && this.#cache.staleOk(key, o.offlineMaxStalenessMs)) {
      return answer('offline_ok', 'offline')
    }
    return answer(reason, stage)
  }

  #emit(result: AuthResult, ctx: Context, latencyMs: number): void {
    if (this.#onDecision === undefined) return
    try {
      this.#onDecision({
        decision: result.decision,
        reason: result.reason,
        stage: result.stage,
        principal: ctx.principal,
        latencyMs,
        cacheHit: ctx.cacheHit,
        queueWaitMs: ctx.queueWaitMs,
        passwordSprayed: ctx.passwordSprayed,
        usedCleanReserve: ctx.usedCleanReserve,
      })
    } catch {
      // A broken hook must not change or delay the decision.
    }
  }
}

function answer(reason: Reason, stage: string): AuthResult {
  return { decision: decisionOf(reason), reason, stage }
}
