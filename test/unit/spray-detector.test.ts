import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { inspect } from 'node:util'
import { isSaslgateError } from '../../src/errors.js'
import { SprayDetector } from '../../src/pipeline/spray-detector.js'
import { clock } from '../support/clock.js'

const pw = (s: string) => Buffer.from(s)

describe('SprayDetector', () => {
  test('a password tried on a second principal is sprayed; repeats on one are not', () => {
    const d = new SprayDetector({ now: clock(1_000_000).now })
    for (let i = 0; i < 20; i++) assert.equal(d.sighting('alice@EX', pw('Alice-own-pw')), false)
    assert.equal(d.isSprayed(pw('Alice-own-pw')), false)
    assert.equal(d.sighting('bob@EX', pw('123456')), false, 'the first principal only')
    assert.equal(d.sighting('nosuch1@EX', pw('123456')), true)
    assert.equal(d.isSprayed(pw('123456')), true)
    assert.equal(d.sighting('bob@EX', pw('123456')), true, 'stays sprayed for anyone')
  })

  test('the threshold counts distinct principals', () => {
    const d = new SprayDetector({ sprayPrincipals: 3, now: clock(1_000_000).now })
    d.sighting('a@EX', pw('Welcome1'))
    d.sighting('a@EX', pw('Welcome1'))
    assert.equal(d.sighting('b@EX', pw('Welcome1')), false, 'two principals share it')
    assert.equal(d.sighting('c@EX', pw('Welcome1')), true)
  })

  test('sightings expire after the window (sliding) and are LRU-bounded', () => {
    const c = clock(1_000_000)
    const d = new SprayDetector({ windowMs: 1000, maxEntries: 10, now: c.now })
    d.sighting('a@EX', pw('qwerty'))
    c.advance(900)
    d.sighting('b@EX', pw('qwerty'))
    c.advance(900)
    assert.equal(d.isSprayed(pw('qwerty')), true, 'the window slides from the last sighting')
    c.advance(101)
    assert.equal(d.isSprayed(pw('qwerty')), false, 'forgotten after the window')
    assert.equal(d.sighting('c@EX', pw('qwerty')), false, 'counting starts again')
    d.sighting('d@EX', pw('qwerty'))
    for (let i = 0; i < 50; i++) d.sighting('e@EX', pw(`other${i}`))
    assert.equal(d.size, 10)
    assert.equal(d.isSprayed(pw('qwerty')), false, 'evicted')
  })

  test('expired sightings are swept as new ones come: a storm of random passwords holds one window', () => {
    const c = clock(1_000_000)
    const d = new SprayDetector({ windowMs: 1000, now: c.now })
    let peak = 0
    for (let sec = 0; sec < 20; sec++) {
      for (let i = 0; i < 500; i++) d.sighting(`u${i}@EX`, Buffer.from(`random-${sec}-${i}`))
      peak = Math.max(peak, d.size)
      c.advance(1000)
    }
    assert.ok(peak <= 1000, `tracked passwords peaked at ${peak}, not ~one window's worth`)
  })

  test('stores neither passwords nor unkeyed hashes; close wipes', () => {
    const d = new SprayDetector()
    d.sighting('a@EX', pw('correct horse battery staple'))
    const dump = inspect(d, { showHidden: true, depth: 10 }) + JSON.stringify(d)
    assert.ok(!dump.includes('correct horse'))
    d.close()
    assert.equal(d.size, 0)
    assert.equal(d.sighting('b@EX', pw('correct horse battery staple')), false)
  })

  test('refuses nonsense options', () => {
    for (const bad of [{ sprayPrincipals: 1 }, { windowMs: 0 }, { maxEntries: 0 }]) {
      assert.throws(
        () => new SprayDetector(bad),
        (e) => isSaslgateError(e, 'SASLGATE_ERR_CONFIG'),
      )
    }
  })
})
