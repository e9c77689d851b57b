import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Admission, type AdmissionRequest, type Priority } from '../../src/pipeline/admission.js'

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((res) => {
    open = res
  })
  return { promise, open }
}

function req(
  priority: Priority = 'normal',
  budgetMs = 5000,
  signal?: AbortSignal,
): AdmissionRequest {
  return {
    priority,
    deadlineMs: performance.now() + budgetMs,
    signal: signal ?? new AbortController().signal,
  }
}

describe('Admission', () => {
  // The module's timers are unref()ed (a real server's sockets keep the loop alive); this
  // stands in for them.
  let keepAlive: NodeJS.Timeout | undefined
  before(() => {
    keepAlive = setInterval(() => {}, 1000)
  })
  after(() => clearInterval(keepAlive))

  test('never more checks in flight than the cap', async () => {
    const adm = new Admission({ maxInFlight: 4, maxQueue: 100, maxStartSpacingMs: 0 })
    let running = 0
    let peak = 0
    const task = async () => {
      running++
      peak = Math.max(peak, running)
      await sleep(5)
      running--
      return 'done'
    }
    const outcomes = await Promise.all(Array.from({ length: 40 }, () => adm.run(task, req())))
    assert.equal(peak, 4)
    assert.ok(outcomes.every((o) => o.outcome === 'ran' && o.value === 'done'))
    assert.ok(
      outcomes.some((o) => o.queueWaitMs > 0),
      'some waited in the queue',
    )
    assert.equal(adm.inFlight, 0)
    adm.close()
  })

  test('starts are paced at the rate the cap allows, at most maxStartSpacingMs apart', async () => {
    const starts = async (maxStartSpacingMs: number, initialCheckEstimateMs = 40) => {
      const adm = new Admission({
        maxInFlight: 4,
        maxQueue: 100,
        initialCheckEstimateMs,
        maxStartSpacingMs,
      })
      const at: number[] = []
      const task = async () => {
        at.push(performance.now())
        await sleep(40)
        return 'done'
      }
      const outcomes = await Promise.all(Array.from({ length: 8 }, () => adm.run(task, req())))
      assert.ok(outcomes.every((o) => o.outcome === 'ran'))
      adm.close()
      return at.slice(1).map((t, i) => t - (at[i] as number))
    }
    // 40 ms checks over 4 slots: one start every 10 ms (not 4 at once, then 4 more).
    const paced = await starts(20)
    assert.ok(
      paced.every((gap) => gap >= 8),
      `gaps ${paced.map((g) => g.toFixed(1)).join(' ')}`,
    )
    const sum3 = (gaps: number[]) => gaps.slice(0, 3).reduce((a, b) => a + b, 0)
    // A 400 ms estimate would space starts 100 ms apart; the cap keeps it at 2 ms.
    const capped = await starts(2, 400)
    assert.ok(sum3(capped) >= 5.5 && sum3(capped) < 150, `capped at 2 ms: ${capped.join(' ')}`)
    const unpaced = await starts(0)
    assert.ok(sum3(unpaced) < 3, `no pacing: ${unpaced.join(' ')}`)
  })

  test('pacing never sheds: without a queue a free slot starts at once', async () => {
    const adm = new Admission({ maxInFlight: 1, maxQueue: 0, maxStartSpacingMs: 1000 })
    for (let i = 0; i < 5; i++) {
      const o = await adm.run(async () => 'done', req())
      assert.equal(o.outcome, 'ran')
    }
    adm.close()
  })

  test('a full queue sheds at once', async () => {
    const adm = new Admission({ maxInFlight: 1, maxQueue: 2 })
    const g = gate()
    const holder = adm.run(() => g.promise, req())
    const queued = [adm.run(async () => 1, req()), adm.run(async () => 2, req())]
    const t0 = performance.now()
    const extra = await adm.run(async () => 3, req())
    assert.equal(extra.outcome, 'shed')
    assert.ok(performance.now() - t0 < 50, 'shed without waiting')
    assert.equal(adm.queued, 2)
    g.open()
    await holder
    assert.deepEqual(
      (await Promise.all(queued)).map((o) => o.outcome),
      ['ran', 'ran'],
    )
    assert.equal(adm.shedCount, 1)
    adm.close()
  })

  test('a deadline too close is shed at once, a queued one at its latest start', async () => {
    const adm = new Admission({
      maxInFlight: 1,
      maxQueue: 10,
      minCheckMs: 50,
      initialCheckEstimateMs: 1,
    })
    const t0 = performance.now()
    const close = await adm.run(async () => 'x', req('normal', 20))
    assert.equal(close.outcome, 'shed')
    assert.ok(performance.now() - t0 < 50, 'no waiting for a hopeless request')

    const g = gate()
    const holder = adm.run(() => g.promise, req())
    const t1 = performance.now()
    const waiting = await adm.run(async () => 'late', req('normal', 150))
    const waited = performance.now() - t1
    assert.equal(waiting.outcome, 'shed')
    assert.ok(waited >= 90 && waited < 1000, `shed near deadline - minCheckMs, took ${waited}`)
    assert.equal(adm.queued, 0)
    g.open()
    await holder
    adm.close()
  })

  test('the start estimate sheds at once when the queue cannot drain in time', async () => {
    const adm = new Admission({ maxInFlight: 1, maxQueue: 10, minCheckMs: 10 })
    const slow = gate()
    // Teach the running mean that checks take long (~150 ms).
    await adm.run(() => sleep(150), req())
    assert.ok(adm.meanCheckMs > 100)
    const holder = adm.run(() => slow.promise, req())
    const t0 = performance.now()
    const o = await adm.run(async () => 'x', req('normal', 100))
    assert.equal(o.outcome, 'shed')
    assert.ok(performance.now() - t0 < 50)
    slow.open()
    await holder
    adm.close()
  })

  test('high priority goes first and may take a full queue from normal', async () => {
    const adm = new Admission({ maxInFlight: 1, maxQueue: 3 })
    const g = gate()
    const order: string[] = []
    const job = (name: string) => async () => {
      order.push(name)
    }
    const holder = adm.run(() => g.promise, req())
    const a = adm.run(job('a'), req('normal'))
    const b = adm.run(job('b'), req('normal'))
    const c = adm.run(job('c'), req('normal'))
    const h = adm.run(job('h'), req('high'))
    assert.equal((await c).outcome, 'shed', 'the newest normal request made room')
    const n = await adm.run(job('n'), req('normal'))
    assert.equal(n.outcome, 'shed', 'a normal request cannot take a place')
    g.open()
    await Promise.all([holder, a, b, h])
    assert.deepEqual(order, ['h', 'a', 'b'])
    adm.close()
  })

  test('three levels: high, normal, low; a full queue sheds the lowest', async () => {
    const adm = new Admission({ maxInFlight: 1, maxQueue: 3 })
    const g = gate()
    const order: string[] = []
    const job = (name: string) => async () => {
      order.push(name)
    }
    const holder = adm.run(() => g.promise, req())
    const l1 = adm.run(job('l1'), req('low'))
    const l2 = adm.run(job('l2'), req('low'))
    const n1 = adm.run(job('n1'), req('normal'))
    const h1 = adm.run(job('h1'), req('high'))
    assert.equal((await l2).outcome, 'shed', 'normal and high took the places of low')
    assert.equal((await adm.run(job('l3'), req('low'))).outcome, 'shed')
    g.open()
    await Promise.all([holder, l1, n1, h1])
    assert.deepEqual(order, ['h1', 'n1', 'l1'])
    adm.close()
  })

  test('an aborted waiter leaves the queue; a failing check frees its slot', async () => {
    const adm = new Admission({ maxInFlight: 1, maxQueue: 5 })
    const g = gate()
    const holder = adm.run(() => g.promise, req())
    const ctl = new AbortController()
    const gone = adm.run(async () => 'never', req('normal', 5000, ctl.signal))
    assert.equal(adm.queued, 1)
    ctl.abort()
    assert.equal((await gone).outcome, 'aborted')
    assert.equal(adm.queued, 0)
    g.open()
    await holder
    await assert.rejects(
      adm.run(async () => {
        throw new Error('verifier bug')
      }, req()),
      /verifier bug/,
    )
    assert.equal(adm.inFlight, 0)
    assert.equal((await adm.run(async () => 'ok', req())).outcome, 'ran')
    adm.close()
  })

  test('close sheds queued and later requests', async () => {
    const adm = new Admission({ maxInFlight: 1, maxQueue: 5 })
    const g = gate()
    const holder = adm.run(() => g.promise, req())
    const queued = adm.run(async () => 'x', req())
    adm.close()
    adm.close()
    assert.equal((await queued).outcome, 'shed')
    assert.equal((await adm.run(async () => 'y', req())).outcome, 'shed')
    g.open()
    assert.equal((await holder).outcome, 'ran')
  })
})
