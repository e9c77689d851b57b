import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { inspect } from 'node:util'
import { isSaslgateError } from '../../src/errors.js'
import { VerdictCache } from '../../src/pipeline/verdict-cache.js'
import { clock } from '../support/clock.js'

const PASSWORD = 'correct horse battery staple'

describe('VerdictCache', () => {
  test('answers positive and negative verdicts within their TTLs', () => {
    const c = clock(1_000_000)
    const cache = new VerdictCache({ positiveTtlMs: 1000, negativeTtlMs: 100, now: c.now })
    const good = cache.keyFor('alice@EX', Buffer.from(PASSWORD))
    const bad = cache.keyFor('alice@EX', Buffer.from('wrong'))
    assert.equal(cache.get(good), undefined)
    cache.set(good, 'ok', 'ok')
    cache.set(bad, 'invalid', 'bad_password')
    assert.equal(cache.get(good)?.verdict, 'ok')
    assert.equal(cache.get(bad)?.verdict, 'invalid')
    assert.equal(cache.get(bad)?.reason, 'bad_password')
    c.advance(101)
    assert.equal(cache.get(bad), undefined, 'negative TTL passed')
    assert.equal(cache.get(good)?.verdict, 'ok')
    c.advance(900)
    assert.equal(cache.get(good), undefined, 'positive TTL passed')
  })

  test('keys depend on principal and password, and on the process key', () => {
    const a = new VerdictCache()
    const b = new VerdictCache()
    const k1 = a.keyFor('alice@EX', Buffer.from('pw'))
    assert.ok(k1.equals(a.keyFor('alice@EX', Buffer.from('pw'))))
    assert.ok(!k1.equals(a.keyFor('alice@EX', Buffer.from('pw2'))))
    assert.ok(!k1.equals(a.keyFor('bob@EX', Buffer.from('pw'))))
    // principal || 0x00 || password: no ambiguity between the two parts.
    assert.ok(!a.keyFor('ab@EX', Buffer.from('c')).equals(a.keyFor('a', Buffer.from('b@EXc'))))
    assert.ok(!k1.equals(b.keyFor('alice@EX', Buffer.from('pw'))), 'each cache has its own key')
    assert.throws(() => a.keyFor('x\0y', Buffer.from('pw')))
  })

  test('stale positive entries serve staleOk up to the bound, never get', () => {
    const c = clock(1_000_000)
    const cache = new VerdictCache({
      positiveTtlMs: 1000,
      staleRetainMs: 10_000,
      now: c.now,
    })
    const key = cache.keyFor('alice@EX', Buffer.from(PASSWORD))
    cache.set(key, 'ok', 'ok')
    c.advance(5000)
    assert.equal(cache.get(key), undefined)
    assert.equal(cache.staleOk(key, 6000), true)
    assert.equal(cache.staleOk(key, 4000), false, 'older than the asked staleness')
    assert.equal(cache.knowsPrincipal('alice@EX'), true)
    c.advance(5001)
    assert.equal(cache.staleOk(key, 1e9), false, 'past the retention')
    assert.equal(cache.get(key), undefined)
    assert.equal(cache.knowsPrincipal('alice@EX'), false, 'dropped on access past retention')
    const neg = cache.keyFor('alice@EX', Buffer.from('wrong'))
    cache.set(neg, 'invalid', 'bad_password')
    assert.equal(cache.staleOk(neg, 1e9), false, 'negative verdicts never count as known good')
  })

  test('a success with a new password drops the old positive entry', () => {
    const cache = new VerdictCache()
    const old = cache.keyFor('alice@EX', Buffer.from('old'))
    const next = cache.keyFor('alice@EX', Buffer.from('new'))
    const bob = cache.keyFor('bob@EX', Buffer.from('old'))
    cache.set(old, 'ok', 'ok')
    cache.set(bob, 'ok', 'ok')
    cache.set(next, 'ok', 'ok')
    assert.equal(cache.get(old), undefined)
    assert.equal(cache.get(next)?.verdict, 'ok')
    assert.equal(cache.get(bob)?.verdict, 'ok', 'other principals untouched')
    cache.set(next, 'invalid', 'bad_password')
    assert.equal(cache.get(next)?.verdict, 'invalid', 'a later refusal replaces the positive')
    assert.equal(cache.knowsPrincipal('alice@EX'), false)
  })

  test('LRU bounds; negative floods never evict positive entries', () => {
    const cache = new VerdictCache({ maxPositiveEntries: 3, maxNegativeEntries: 5 })
    const pos = [0, 1, 2, 3].map((i) => cache.keyFor(`u${i}@EX`, Buffer.from('pw')))
    for (const k of pos.slice(0, 3)) cache.set(k, 'ok', 'ok')
    assert.ok(cache.get(pos[0]!), 'touch u0: u1 becomes the oldest')
    cache.set(pos[3]!, 'ok', 'ok')
    assert.equal(cache.get(pos[1]!), undefined, 'least recently used evicted')
    assert.ok(cache.get(pos[0]!))
    assert.equal(cache.knowsPrincipal('u1@EX'), false, 'index follows eviction')
    for (let i = 0; i < 1000; i++) {
      cache.set(cache.keyFor(`bot${i}@EX`, Buffer.from('x')), 'invalid', 'unknown_principal')
    }
    assert.deepEqual(cache.stats(), { positive: 3, negative: 5 })
    for (const k of [pos[0]!, pos[2]!, pos[3]!]) assert.equal(cache.get(k)?.verdict, 'ok')
  })

  test('expired entries are swept as new ones arrive: a long storm holds what is live', () => {
    const c = clock(1_000_000)
    const cache = new VerdictCache({
      negativeTtlMs: 1000,
      positiveTtlMs: 1000,
      staleRetainMs: 5000,
      now: c.now,
    })
    cache.set(cache.keyFor('alice@EX', Buffer.from(PASSWORD)), 'ok', 'ok')
    // A storm: 1,000 guesses per second for 20 s, each a new (principal, password).
    let peak = 0
    for (let sec = 0; sec < 20; sec++) {
      for (let i = 0; i < 1000; i++)
        cache.set(
          cache.keyFor(`bot${sec}-${i}@EX`, Buffer.from('guess')),
          'invalid',
          'bad_password',
        )
      peak = Math.max(peak, cache.stats().negative)
      c.advance(1000)
    }
    assert.ok(peak <= 2000, `negative entries peaked at ${peak}, not ~the 1 s TTL's worth`)
    assert.equal(cache.stats().positive, 0, 'the positive entry went once past staleRetainMs')
    // The sweep stops at the first live entry: live verdicts are never dropped.
    const live = cache.keyFor('carol@EX', Buffer.from('guess'))
    cache.set(live, 'invalid', 'bad_password')
    c.advance(500)
    for (let i = 0; i < 100; i++)
      cache.set(cache.keyFor(`late${i}@EX`, Buffer.from('guess')), 'invalid', 'bad_password')
    assert.equal(cache.get(live)?.verdict, 'invalid')
  })

  test('neither the cache nor a key shows the password, the key or the digest', () => {
    const cache = new VerdictCache()
    const key = cache.keyFor('alice@EX', Buffer.from(PASSWORD))
    cache.set(key, 'ok', 'ok')
    const dumps = [
      JSON.stringify(key),
      String(key),
      `${key}`,
      inspect(key, { showHidden: true, depth: 10 }),
      inspect(cache, { showHidden: true, depth: 10 }),
      JSON.stringify(cache),
      JSON.stringify({ key }),
      Object.keys(key).join(','),
      Object.getOwnPropertyNames(cache).join(','),
    ]
    for (const d of dumps) {
      assert.ok(!d.includes(PASSWORD), d)
      assert.ok(!d.includes(Buffer.from(PASSWORD).toString('base64')), d)
      assert.ok(!/[A-Za-z0-9+/]{43}=/.test(d), `no base64 digest in ${d}`)
      assert.ok(!/[0-9a-f]{64}/.test(d), `no hex digest in ${d}`)
    }
    assert.equal(JSON.stringify(key), '"[CacheKey]"')
  })

  test('close wipes entries and refuses new keys', () => {
    const cache = new VerdictCache()
    const key = cache.keyFor('alice@EX', Buffer.from('pw'))
    cache.set(key, 'ok', 'ok')
    cache.close()
    cache.close()
    assert.equal(cache.get(key), undefined)
    assert.throws(
      () => cache.keyFor('alice@EX', Buffer.from('pw')),
      (e) => isSaslgateError(e, 'SASLGATE_ERR_CLOSED'),
    )
  })
})
