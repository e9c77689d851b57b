import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import {
  type DecodeResult,
  decodeReply,
  decodeRequest,
  encodeField,
  encodeReply,
  encodeRequest,
  type FieldMode,
  FrameDecoder,
  MAX_FIELD_BYTES,
  MAX_FRAME_BYTES,
  NO_INVALID_TEXT,
  NO_UNAVAILABLE_TEXT,
} from '../../src/saslauthd/codec.js'

const MODES: FieldMode[] = ['4', '5', 'auto']

/** Feeds chunks; the result after all bytes, then end() unless already final. */
function run(mode: FieldMode, chunks: Uint8Array[], maxSeen?: { n: number }): DecodeResult {
  const d = new FrameDecoder(mode)
  let r: DecodeResult = d.result
  for (const c of chunks) {
    r = d.push(c)
    if (maxSeen) maxSeen.n = Math.max(maxSeen.n, d.bufferedBytes)
  }
  return r.status === 'need-more' || r.status === 'maybe-complete' ? d.end() : r
}

/** Splits bytes at the given cut points. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Uint8Array[] = []
  let prev = 0
  for (const p of points) {
    out.push(bytes.subarray(prev, p))
    prev = p
  }
  out.push(bytes.subarray(prev))
  return out
}

// A valid field: no NUL, valid UTF-8 (fast-check strings), at most 256 bytes once encoded.
const text = (min: number) =>
  fc
    .oneof(
      fc.string({ unit: 'grapheme-ascii', minLength: min, maxLength: 256 }),
      fc.string({ unit: 'grapheme', minLength: min, maxLength: 80 }),
    )
    .filter((s) => !s.includes('\0') && Buffer.byteLength(s) <= MAX_FIELD_BYTES)
const password = fc
  .uint8Array({ minLength: 1, maxLength: MAX_FIELD_BYTES })
  .filter((b) => !b.includes(0))
const fieldsArb = fc.record({
  login: text(1),
  password,
  service: text(0),
  realm: text(0),
  clientAddress: fc.option(text(1), { nil: undefined }),
})

// Byte sequences biased towards frame-like inputs: valid frames, mutated frames, raw bytes.
const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 3000 }),
  fieldsArb.map((f) => new Uint8Array(encodeRequest(f))),
  fc.tuple(fieldsArb, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([f, i, v]) => {
    const b = new Uint8Array(encodeRequest(f))
    b[i % b.length] = v
    return b
  }),
  fc
    .tuple(fieldsArb, fc.uint8Array({ minLength: 1, maxLength: 2000 }))
    .map(([f, extra]) => new Uint8Array(Buffer.concat([encodeRequest(f), extra]))),
  fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }).map((parts) => {
    return new Uint8Array(Buffer.concat(parts.map((p) => encodeField(p))))
  }),
)

describe('FrameDecoder properties', () => {
  test('any bytes, any chunking: a frame or a clean error, never a throw, bounded buffer', () => {
    fc.assert(
      fc.property(
        bytesArb,
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom(...MODES),
        (bytes, cuts, mode) => {
          const seen = { n: 0 }
          const r = run(mode, split(bytes, cuts), seen)
          assert.ok(r.status === 'frame' || r.status === 'error', `final status ${r.status}`)
          assert.ok(seen.n <= MAX_FRAME_BYTES, `buffered ${seen.n}`)
        },
      ),
      { numRuns: 2000 },
    )
  })

  test('chunking does not change the result (after every byte and at the end)', () => {
    fc.assert(
      fc.property(
        bytesArb,
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom(...MODES),
        (bytes, cuts, mode) => {
          assert.deepStrictEqual(run(mode, split(bytes, cuts)), run(mode, [bytes]))
          // The intermediate state after all bytes (before end()) is chunk-independent too.
          const a = new FrameDecoder(mode)
          for (const c of split(bytes, cuts)) a.push(c)
          const b = new FrameDecoder(mode)
          b.push(bytes)
          assert.deepStrictEqual(a.result, b.result)
        },
      ),
      { numRuns: 2000 },
    )
  })

  test('encode -> decode round trips (4 fields in modes 4/auto, 5 fields in modes 5/auto)', () => {
    fc.assert(
      fc.property(fieldsArb, fc.array(fc.nat(), { maxLength: 6 }), (f, cuts) => {
        const bytes = encodeRequest(f)
        const modes: FieldMode[] = f.clientAddress === undefined ? ['4', 'auto'] : ['5', 'auto']
        for (const mode of modes) {
          const r = run(mode, split(bytes, cuts))
          assert.equal(r.status, 'frame')
          if (r.status !== 'frame') return
          assert.equal(r.fieldCount, f.clientAddress === undefined ? 4 : 5)
          assert.equal(r.frame.login, f.login)
          assert.deepStrictEqual(new Uint8Array(r.frame.password), f.password)
          assert.equal(r.frame.service, f.service)
          assert.equal(r.frame.realm, f.realm)
          assert.equal(r.frame.clientAddress, f.clientAddress)
        }
      }),
      { numRuns: 1000 },
    )
  })
})

describe('FrameDecoder examples', () => {
  const good = { login: 'alice', password: 'secret', service: 'imap', realm: 'EXAMPLE.ORG' }

  test('4-field frame in auto mode is maybe-complete until end()', () => {
    const d = new FrameDecoder('auto')
    assert.equal(d.push(encodeRequest(good)).status, 'maybe-complete')
    const r = d.end()
    assert.equal(r.status, 'frame')
    if (r.status === 'frame') assert.equal(r.fieldCount, 4)
  })

  test('4-field frame in mode 4 is final at once; mode 5 needs more', () => {
    assert.equal(new FrameDecoder('4').push(encodeRequest(good)).status, 'frame')
    const d5 = new FrameDecoder('5')
    assert.equal(d5.push(encodeRequest(good)).status, 'need-more')
    assert.deepStrictEqual(d5.end(), { status: 'error', reason: 'truncated' })
  })

  test('5-field frame: auto continues after maybe-complete; mode 4 calls it trailing garbage', () => {
    const bytes = encodeRequest({ ...good, clientAddress: '192.0.2.1;993' })
    const four = encodeRequest(good).length
    const d = new FrameDecoder('auto')
    assert.equal(d.push(bytes.subarray(0, four)).status, 'maybe-complete')
    assert.equal(d.push(bytes.subarray(four, four + 1)).status, 'need-more')
    const r = d.push(bytes.subarray(four + 1))
    assert.equal(r.status, 'frame')
    if (r.status === 'frame') assert.equal(r.frame.clientAddress, '192.0.2.1;993')
    assert.deepStrictEqual(decodeRequest(bytes, '4'), {
      status: 'error',
      reason: 'trailing_garbage',
    })
  })

  test('empty fifth field gives no clientAddress', () => {
    const r = decodeRequest(Buffer.concat([encodeRequest(good), encodeField('')]), 'auto')
    assert.equal(r.status, 'frame')
    if (r.status === 'frame') {
      assert.equal(r.fieldCount, 5)
      assert.equal('clientAddress' in r.frame, false)
    }
  })

  const errors: Array<[string, Buffer, FieldMode, string]> = [
    ['empty login', encodeRequest({ ...good, login: '' }), 'auto', 'empty_login'],
    ['empty password', encodeRequest({ ...good, password: '' }), 'auto', 'empty_password'],
    [
      'over-long field',
      encodeRequest({ ...good, realm: 'x'.repeat(257) }),
      'auto',
      'field_too_long',
    ],
    ['NUL in login', encodeRequest({ ...good, login: 'ali\0ce' }), 'auto', 'nul_byte'],
    [
      'NUL in password',
      encodeRequest({ ...good, password: Buffer.from('good\0junk') }),
      'auto',
      'nul_byte',
    ],
    [
      'bad UTF-8 login',
      encodeRequest({ ...good, login: Buffer.from([0xc3, 0x28]) }),
      'auto',
      'bad_utf8',
    ],
    ['truncated', encodeRequest(good).subarray(0, 9), 'auto', 'truncated'],
    ['one byte', Buffer.from([0]), 'auto', 'truncated'],
    ['nothing', Buffer.alloc(0), '4', 'truncated'],
    [
      'garbage after 5 fields',
      Buffer.concat([encodeRequest({ ...good, clientAddress: 'a;1' }), Buffer.from('x')]),
      'auto',
      'trailing_garbage',
    ],
    [
      'garbage after 4 fields',
      Buffer.concat([encodeRequest(good), Buffer.from('x')]),
      '4',
      'trailing_garbage',
    ],
  ]
  for (const [name, bytes, mode, reason] of errors) {
    test(`error: ${name} -> ${reason}`, () => {
      assert.deepStrictEqual(decodeRequest(bytes, mode), { status: 'error', reason })
    })
  }

  test('256-byte fields are accepted, the maximum 5-field frame fits exactly', () => {
    const f = {
      login: 'a'.repeat(256),
      password: 'b'.repeat(256),
      service: 'c'.repeat(256),
      realm: 'd'.repeat(256),
      clientAddress: 'e'.repeat(256),
    }
    const bytes = encodeRequest(f)
    assert.equal(bytes.length, MAX_FRAME_BYTES)
    assert.equal(decodeRequest(bytes, 'auto').status, 'frame')
  })

  test('a huge chunk is not buffered beyond the maximum', () => {
    const d = new FrameDecoder('auto')
    const r = d.push(Buffer.concat([encodeRequest(good), Buffer.alloc(1 << 20, 0x41)]))
    assert.equal(r.status, 'error')
    assert.ok(d.bufferedBytes <= MAX_FRAME_BYTES)
  })

  test('a frame then more bytes becomes trailing_garbage; errors are absorbing', () => {
    const d = new FrameDecoder('4')
    assert.equal(d.push(encodeRequest(good)).status, 'frame')
    assert.deepStrictEqual(d.push(Buffer.from('x')), {
      status: 'error',
      reason: 'trailing_garbage',
    })
    assert.deepStrictEqual(d.push(encodeRequest(good)), {
      status: 'error',
      reason: 'trailing_garbage',
    })
  })

  test('the frame password is a copy; the decoder buffer is wiped', () => {
    const d = new FrameDecoder('4')
    const r = d.push(encodeRequest(good))
    assert.equal(d.bufferedBytes, 0)
    assert.equal(r.status === 'frame' && r.frame.password.toString(), 'secret')
  })
})

describe('replies', () => {
  test('OK and the two fixed NO texts', () => {
    assert.deepStrictEqual(encodeReply('ok'), Buffer.from('\x00\x02OK', 'latin1'))
    const inv = encodeReply('invalid')
    assert.equal(inv.readUInt16BE(0), inv.length - 2)
    assert.equal(inv.subarray(2).toString(), NO_INVALID_TEXT)
    assert.equal(encodeReply('unavailable').subarray(2).toString(), NO_UNAVAILABLE_TEXT)
    for (const t of [NO_INVALID_TEXT, NO_UNAVAILABLE_TEXT]) {
      assert.ok(t.startsWith('NO') && !t.startsWith('OK') && !t.includes('\0'))
      assert.ok(Buffer.byteLength(t) + 2 < 1023)
    }
  })

  test('a decision that is not exactly ok is a NO (fail closed)', () => {
    const bogus = 'OK ' as unknown as 'ok'
    assert.deepStrictEqual(encodeReply(bogus), encodeReply('invalid'))
  })

  test('encodeReply returns a fresh buffer each time', () => {
    const a = encodeReply('ok')
    a.fill(0)
    assert.deepStrictEqual(encodeReply('ok'), Buffer.from('\x00\x02OK', 'latin1'))
  })

  test('decodeReply as libsasl2: OK prefix only', () => {
    assert.deepStrictEqual(decodeReply(encodeReply('ok')), {
      status: 'reply',
      ok: true,
      text: 'OK',
      bytes: 4,
    })
    const no = decodeReply(encodeReply('invalid'))
    assert.equal(no.status === 'reply' && no.ok, false)
    assert.deepStrictEqual(decodeReply(Buffer.from([0])), { status: 'need-more' })
    assert.deepStrictEqual(decodeReply(Buffer.from([0]), true), {
      status: 'error',
      reason: 'truncated',
    })
  })

  test('encodeField refuses what cannot be counted in 16 bits', () => {
    assert.throws(() => encodeField(Buffer.alloc(70000)), { code: 'SASLGATE_ERR_FRAME' })
  })
})
