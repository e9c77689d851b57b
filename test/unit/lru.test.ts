import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { evictOverflow, sweepExpired, touch } from '../../src/pipeline/lru.js'

describe('Map as LRU', () => {
  test('touch makes a key the most recent; evictOverflow drops the least recent', () => {
    const m = new Map([
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ])
    touch(m, 'a', 10)
    evictOverflow(m, 2)
    assert.deepStrictEqual(
      [...m],
      [
        ['c', 3],
        ['a', 10],
      ],
    )
    const dropped: string[] = []
    evictOverflow(m, 0, (k) => {
      dropped.push(k)
      m.delete(k)
    })
    assert.deepStrictEqual(dropped, ['c', 'a'])
  })

  test('sweepExpired stops at the first live entry and at its limit', () => {
    const m = new Map<string, number>()
    for (let i = 0; i < 20; i++) m.set(`k${i}`, i) // value = time stored
    sweepExpired(m, (t) => t < 15) // default limit 8
    assert.equal(m.size, 12)
    assert.equal([...m.keys()][0], 'k8')
    sweepExpired(m, (t) => t < 10, undefined, 100)
    assert.equal([...m.keys()][0], 'k10', 'stops at the first live entry')
    m.set('k3', 3) // a dead entry behind a live one stays until it reaches the front
    sweepExpired(m, (t) => t < 10, undefined, 100)
    assert.ok(m.has('k3'))
  })
})
