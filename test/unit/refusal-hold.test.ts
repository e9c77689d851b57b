/**
 * The refusal hold (src/pipeline/refusal-hold.ts) on a hand-driven clock and hand-fired
 * timers: a KDC check's refusal leaves when the timer armed at the check's start fires,
 * whether the principal exists or not. The statistical counterpart, through a real KDC, is
 * test/integration/enumeration.test.ts.
 */
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { describe, test } from 'node:test'
import type { AuthResult } from '../../src/authenticator.js'
import type { PasswordVerifier, VerifyResult } from '../../src/kerberos/types.js'
import { Pipeline, type PrincipalMapper } from '../../src/pipeline/pipeline.js'
import { RefusalHold } from '../../src/pipeline/refusal-hold.js'
import { clock } from '../support/clock.js'

interface ManualTimer {
  ms: number
  fn: () => void
  cancelled: boolean
  fired: boolean
}

/** A `setTimer` whose timers fire only when the test says so. */
function manualTimers() {
  const timers: ManualTimer[] = []
  return {
    timers,
    setTimer: (fn: () => void, ms: number) => {
      const t: ManualTimer = { ms, fn, cancelled: false, fired: false }
      timers.push(t)
      return {
        cancel: () => {
          t.cancelled = true
        },
      }
    },
    fire(t: ManualTimer | undefined) {
      assert.ok(t !== undefined && !t.cancelled && !t.fired, 'timer to fire')
      t.fired = true
      t.fn()
    },
  }
}

/** Lets pending promise chains and I/O callbacks run (a few event-loop turns). */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r))
}

/** Settles a promise into an observable state without awaiting it. */
function track<T>(p: Promise<T>): { settled: boolean; value: T | undefined } {
  const s: { settled: boolean; value: T | undefined } = { settled: false, value: undefined }
  p.then((v) => {
    s.settled = true
    s.value = v
  })
  return s
}

describe('RefusalHold', () => {
  test('before any wrong password the hold is initialHoldMs; then factor x the longest of the window', () => {
    const h = new RefusalHold({ initialHoldMs: 100, factor: 1.25, window: 4, minHoldMs: 1 })
    assert.equal(h.holdMs(), 100)
    h.noteWrongPassword(8)
    assert.equal(h.holdMs(), 10)
    h.noteWrongPassword(4)
    assert.equal(h.holdMs(), 10, 'the longest, not the last')
    for (const ms of [2, 2, 2, 2]) h.noteWrongPassword(ms) // the 8 leaves the ring of 4
    assert.equal(h.holdMs(), 2.5)
    h.noteWrongPassword(0.1)
    assert.equal(h.holdMs(), 2.5)
    const tiny = new RefusalHold({ minHoldMs: 3 })
    tiny.noteWrongPassword(0.5)
    assert.equal(tiny.holdMs(), 3, 'never below minHoldMs')
  })

  test('arm: one timer for the hold, released when it fires, never later than the deadline', async () => {
    const c = clock(1000)
    const m = manualTimers()
    const h = new RefusalHold({ now: c.now, setTimer: m.setTimer, initialHoldMs: 50 })
    const a = h.arm(10_000)
    assert.equal(a.releaseAt, 1050)
    assert.equal(m.timers[0]?.ms, 50)
    const state = track(a.released)
    await turns()
    assert.equal(state.settled, false, 'not released before the timer')
    m.fire(m.timers[0])
    await turns(1)
    assert.equal(state.settled, true)

    const b = h.arm(1020) // deadline 20 ms away: capped
    assert.equal(b.releaseAt, 1020)
    assert.equal(m.timers[1]?.ms, 20)
    b.cancel()
    assert.equal(m.timers[1]?.cancelled, true)
    b.cancel() // idempotent
  })

  test('rejects nonsense options', () => {
    assert.throws(() => new RefusalHold({ window: 0 }), RangeError)
    assert.throws(() => new RefusalHold({ factor: 0.5 }), RangeError)
    assert.throws(() => new RefusalHold({ minHoldMs: -1 }), RangeError)
  })
})

/** A KDC stand-in whose wrong-password checks end only when the test says so. */
class SteppedVerifier implements PasswordVerifier {
  readonly pending: Array<() => void> = []
  async verify(principal: string, password: Buffer): Promise<VerifyResult> {
    if (principal.startsWith('nosuch')) return { reason: 'unknown_principal', roundTrips: 1 }
    if (password.toString() === 'right') return { reason: 'ok', roundTrips: 2 }
    await new Promise<void>((r) => this.pending.push(r))
    return { reason: 'bad_password', roundTrips: 2 }
  }
  allKdcsDown(): boolean {
    return false
  }
  async close(): Promise<void> {}
}

const mapper: PrincipalMapper = {
  map: (login) => ({ ok: true, principal: `${login}@EX.TEST`, realm: 'EX.TEST' }),
}

function rig() {
  const verifier = new SteppedVerifier()
  const m = manualTimers()
  const pipeline = new Pipeline(
    {
      verifier,
      mapper,
      refusalHoldTiming: { now: () => performance.now(), setTimer: m.setTimer },
    },
    { initialCheckEstimateMs: 100, cleanReserveHoldMs: 0, kdcStartSpacingMaxMs: 0 },
  )
  const auth = (login: string, password: string): Promise<AuthResult> =>
    pipeline.authenticate({
      login,
      password: Buffer.from(password),
      service: 'imap',
      realm: '',
      signal: new AbortController().signal,
    })
  return { pipeline, verifier, m, auth }
}

describe('Pipeline: KDC refusals leave through the hold armed at the check start', () => {
  test('an unknown user and a wrong password both wait for their timer, armed with the same delay', async () => {
    const { pipeline, verifier, m, auth } = rig()
    try {
      const unknown = track(auth('nosuch1', 'guess-1'))
      const wrong = track(auth('alice', 'guess-1'))
      await turns()
      assert.equal(m.timers.length, 2, 'one timer per check, armed before any verdict')
      assert.equal(m.timers[0]?.ms, m.timers[1]?.ms, 'the same delay whoever the principal is')
      verifier.pending.shift()?.() // the wrong password's verdict is in
      await turns()
      assert.equal(unknown.settled, false, 'unknown user: verdict known, answer still held')
      assert.equal(wrong.settled, false, 'wrong password: verdict known, answer still held')
      m.fire(m.timers[0])
      await turns()
      assert.equal(unknown.settled, true)
      assert.equal(wrong.settled, false)
      m.fire(m.timers[1])
      await turns()
      assert.equal(wrong.settled, true)
      assert.equal(unknown.value?.decision, 'invalid')
      assert.equal(wrong.value?.decision, 'invalid')
      assert.equal(pipeline.stats().holdOverruns, 0)
    } finally {
      await pipeline.close()
    }
  })

  test('a right password is answered at once and its timer dropped', async () => {
    const { pipeline, m, auth } = rig()
    try {
      const ok = await auth('alice', 'right')
      assert.equal(ok.decision, 'ok')
      assert.equal(m.timers.length, 1)
      assert.equal(m.timers[0]?.cancelled, true)
      assert.equal(m.timers[0]?.fired, false)
    } finally {
      await pipeline.close()
    }
  })

  test('a flood of unknown names does not shorten the hold; a check that outlasts it answers when done', async () => {
    const { pipeline, verifier, m, auth } = rig()
    try {
      // One wrong password that is only done after its hold ran out: an overrun.
      const wrong = track(auth('alice', 'guess-2'))
      await turns()
      m.fire(m.timers[0])
      await turns()
      assert.equal(wrong.settled, false, 'no verdict yet: nothing to write')
      verifier.pending.shift()?.()
      await turns()
      assert.equal(wrong.settled, true)
      assert.equal(pipeline.stats().holdOverruns, 1)
      const afterWrong = m.timers.length

      // Unknown names answered at once by the "KDC": their durations do not feed the hold.
      for (let i = 0; i < 20; i++) {
        const p = track(auth(`nosuch-${i}`, `flood-${i}`))
        await turns(2)
        const t = m.timers[m.timers.length - 1]
        m.fire(t)
        await turns(2)
        assert.equal(p.settled, true)
      }
      const delays = m.timers.slice(afterWrong).map((t) => t.ms)
      const first = delays[0] as number
      assert.ok(first > 0)
      for (const d of delays)
        assert.ok(Math.abs(d - first) < 1, `hold moved with the flood: ${d} vs ${first}`)
    } finally {
      await pipeline.close()
    }
  })
})
