/** test/support/requires.ts: a missing real part skips locally, naming why, and fails in CI. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { inCi, needs } from '../support/requires.js'

describe('needs', () => {
  test('present: run, in CI or not', () => {
    assert.equal(needs(false, {}), false)
    assert.equal(needs(false, { CI: 'true' }), false)
  })

  test('missing outside CI: the reason is the skip', () => {
    for (const env of [{}, { CI: '' }, { CI: '0' }, { CI: 'false' }, { CI: ' False ' }])
      assert.equal(needs('no frobnicator', env), 'no frobnicator', JSON.stringify(env))
  })

  test('missing in CI: a failure naming the part', () => {
    for (const CI of ['true', '1', 'yes', 'github']) {
      assert.equal(inCi({ CI }), true)
      assert.throws(() => needs('no frobnicator', { CI }), /no frobnicator: CI installs every/)
    }
  })
})
