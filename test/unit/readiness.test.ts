/** KdcReadiness alone, on a manual clock: which state gives which answer, and when it probes. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { KdcReadiness, type KdcReadinessOptions } from '../../src/service/readiness.js'

function make(over: Partial<KdcReadinessOptions> = {}) {
  const clock = { t: 0 }
  const state = { answers: true, open: false, offline: false, keytab: true }
  const events: boolean[] = []
  const r = new KdcReadiness({
    realm: 'R.TEST',
    windowMs: 10_000,
    probe: async () => ({ answered: state.answers }),
    allBreakersOpen: () => state.open,
    offlineCanServe: () => state.offline,
    keytabReadable: () => state.keytab,
    now: () => clock.t,
    onReachability: (e) => events.push(e.reachable),
    ...over,
  })
  return { r, clock, state, events }
}

test('not ready before any KDC answered; ready after a probe heard one', async () => {
  const { r, events } = make()
  assert.equal(r.readiness().ready, false) // starts a probe
  assert.match(r.readiness().reason ?? '', /no KDC of R.TEST has answered yet/)
  await r.probe() // joins the one running
  assert.equal(r.probes, 1)
  assert.deepEqual(r.readiness(), { ready: true })
  assert.deepEqual(events, [true])
})

test('a user check reply counts like a probe; no probe while replies are fresh', async () => {
  const { r, clock } = make()
  r.noteReply('R.TEST')
  clock.t = 4_000
  assert.deepEqual(r.readiness(), { ready: true })
  assert.equal(r.probes, 0)
  r.noteReply('OTHER.TEST') // another realm says nothing about the default realm
  clock.t = 6_000 // past half the window: a probe refreshes
  assert.deepEqual(r.readiness(), { ready: true })
  assert.equal(r.probes, 1)
})

test('the window runs out with the KDC silent: not ready, and the change is told once', async () => {
  const { r, clock, state, events } = make()
  await r.probe()
  state.answers = false
  clock.t = 10_001
  assert.equal(r.readiness().ready, false)
  await r.probe()
  assert.match(r.readiness().reason ?? '', /answered in the last 10000 ms/)
  await r.probe()
  assert.deepEqual(events, [true, false])
})

test('every breaker open: not ready even with a fresh reply; offline with a cached OK: ready', async () => {
  const { r, state } = make()
  await r.probe()
  state.open = true
  assert.match(r.readiness().reason ?? '', /every KDC breaker of R.TEST is open/)
  state.offline = true
  assert.equal(r.readiness().ready, true)
})

test('an unreadable keytab wins over everything', async () => {
  const { r, state } = make()
  await r.probe()
  state.keytab = false
  assert.deepEqual(r.readiness(), { ready: false, reason: 'keytab unreadable' })
})

test('after close no probe starts', async () => {
  const { r } = make()
  await r.close()
  r.readiness()
  await r.probe()
  assert.equal(r.probes, 0)
})

test('a KDC that does not know the verify principal: not ready, named, until it knows it again', async () => {
  let known = false
  const { r } = make({
    verifyPrincipal: 'host/x@R.TEST',
    probe: async () => ({ answered: true, verifyPrincipalKnown: known }),
  })
  await r.probe()
  assert.deepEqual(r.readiness(), {
    ready: false,
    reason: 'the KDC does not know host/x@R.TEST (every check would fail)',
  })
  r.noteReply('R.TEST') // a user's check reached the KDC: still unknown
  assert.equal(r.readiness().ready, false)
  known = true
  await r.probe()
  assert.deepEqual(r.readiness(), { ready: true })
  r.noteVerifyPrincipal('host/x@R.TEST', false) // the verifier's report counts too
  assert.equal(r.readiness().ready, false)
  r.noteVerifyPrincipal('host/x@R.TEST', true)
  assert.equal(r.readiness().ready, true)
})

test('principal unknown under traffic: fresh replies do not hide it, a probe now and then asks again', async () => {
  let known = false
  const { r, clock } = make({
    probe: async () => ({ answered: true, verifyPrincipalKnown: known }),
  })
  await r.probe()
  assert.equal(r.probes, 1)
  known = true
  clock.t = 1_000
  r.noteReply('R.TEST') // traffic: the last reply is always fresh
  r.readiness()
  assert.equal(r.probes, 1, 'not before a quarter of the window')
  clock.t = 2_600
  r.noteReply('R.TEST')
  assert.equal(r.readiness().ready, false) // starts the probe
  assert.equal(r.probes, 2)
  await r.probe() // joins it
  assert.deepEqual(r.readiness(), { ready: true })
})
