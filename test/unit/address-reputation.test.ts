import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { inspect } from 'node:util'
import { isSaslgateError } from '../../src/errors.js'
import { AddressReputation, addressHost } from '../../src/pipeline/address-reputation.js'
import { clock } from '../support/clock.js'

describe('AddressReputation', () => {
  test('the host part of a saslauthd client address', () => {
    assert.equal(addressHost('192.0.2.7;51234'), '192.0.2.7')
    assert.equal(addressHost('2001:db8::1;993'), '2001:db8::1')
    assert.equal(addressHost('192.0.2.7'), '192.0.2.7')
    assert.equal(addressHost(''), undefined)
    assert.equal(addressHost(';1'), undefined)
    assert.equal(addressHost(undefined), undefined)
  })

  test('suspect after N failures from one host (any port), within a sliding window', () => {
    const c = clock(1_000_000)
    const r = new AddressReputation({ suspectFailures: 3, windowMs: 1000, now: c.now })
    r.recordFailure('192.0.2.7;1000')
    r.recordFailure('192.0.2.7;1001')
    assert.equal(r.isSuspect('192.0.2.7;2000'), false)
    c.advance(900)
    r.recordFailure('192.0.2.7;1002')
    assert.equal(r.isSuspect('192.0.2.7;3000'), true)
    assert.equal(r.isSuspect('192.0.2.8;3000'), false, 'per host')
    c.advance(1001)
    assert.equal(r.isSuspect('192.0.2.7;3000'), false, 'forgotten after the window')
  })

  test('no address, no reputation; bounded; nothing in clear', () => {
    const r = new AddressReputation({ suspectFailures: 1, maxEntries: 5 })
    r.recordFailure(undefined)
    assert.equal(r.isSuspect(undefined), false)
    assert.equal(r.size, 0)
    r.recordFailure('198.51.100.9;1')
    for (let i = 0; i < 20; i++) r.recordFailure(`203.0.113.${i};1`)
    assert.equal(r.size, 5)
    assert.equal(r.isSuspect('198.51.100.9;1'), false, 'evicted')
    assert.ok(!inspect(r, { showHidden: true, depth: 10 }).includes('203.0.113'))
    r.close()
    assert.equal(r.size, 0)
  })

  test('expired addresses are swept as new ones fail: a botnet of fresh addresses holds one window', () => {
    const c = clock(1_000_000)
    const r = new AddressReputation({ windowMs: 1000, now: c.now })
    let peak = 0
    for (let sec = 0; sec < 20; sec++) {
      for (let i = 0; i < 500; i++) r.recordFailure(`10.${sec}.${i >> 8}.${i & 255};4000`)
      peak = Math.max(peak, r.size)
      c.advance(1000)
    }
    assert.ok(peak <= 1000, `tracked addresses peaked at ${peak}, not ~one window's worth`)
  })

  test('refuses nonsense options', () => {
    for (const bad of [{ suspectFailures: 0 }, { windowMs: 0 }, { maxEntries: 0 }]) {
      assert.throws(
        () => new AddressReputation(bad),
        (e) => isSaslgateError(e, 'SASLGATE_ERR_CONFIG'),
      )
    }
  })
})
