import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { isSaslgateError } from '../../src/errors.js'
import {
  children,
  DerError,
  type DerNode,
  explicitInner,
  INT32,
  parseTree,
  readElement,
  readGeneralString,
  readInteger,
  readOctetString,
  sequenceItems,
  TagClass,
} from '../../src/kerberos/der.js'

/** DER length octets (minimal). */
function lengthOctets(n: number): number[] {
  if (n < 0x80) return [n]
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256)
  return [0x80 | bytes.length, ...bytes]
}

function tlv(id: number[] | number, content: Buffer | number[]): Buffer {
  const ids = typeof id === 'number' ? [id] : id
  const body = Buffer.from(content)
  return Buffer.concat([Buffer.from([...ids, ...lengthOctets(body.length)]), body])
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')

function assertDerError(fn: () => unknown, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DerError, `expected DerError, got ${String(err)}`)
    assert.ok(isSaslgateError(err, 'SASLGATE_ERR_DER'))
    if (pattern) assert.match(err.message, pattern)
    return true
  })
}

describe('readElement', () => {
  it('reads a short-form universal primitive', () => {
    const el = readElement(hex('02 01 05'), 0)
    assert.deepEqual(el, {
      cls: TagClass.universal,
      constructed: false,
      tagNumber: 2,
      start: 0,
      contentStart: 2,
      end: 3,
    })
  })

  it('reads long-form lengths (1..4 octets)', () => {
    for (const n of [0x80, 0xff, 0x100, 0x1234, 0x10000]) {
      const buf = tlv(0x04, Buffer.alloc(n))
      const el = readElement(buf, 0)
      assert.equal(el.end - el.contentStart, n)
      assert.equal(el.end, buf.length)
    }
  })

  it('reads classes, the constructed bit and context / application tags', () => {
    assert.deepEqual(
      { ...readElement(hex('7e 00'), 0) },
      { cls: 1, constructed: true, tagNumber: 30, start: 0, contentStart: 2, end: 2 },
    )
    const ctx = readElement(hex('ac 00'), 0)
    assert.equal(ctx.cls, TagClass.context)
    assert.equal(ctx.tagNumber, 12)
    const priv = readElement(hex('c1 00'), 0)
    assert.equal(priv.cls, TagClass.private)
    assert.equal(priv.constructed, false)
  })

  it('reads high-tag-number form', () => {
    assert.equal(readElement(hex('9f 1f 00'), 0).tagNumber, 31)
    assert.equal(readElement(hex('bf 81 00 00'), 0).tagNumber, 128)
    assert.equal(readElement(hex('5f 82 85 03 00'), 0).tagNumber, 2 * 128 * 128 + 5 * 128 + 3)
  })

  it('reads at an offset and within a limit', () => {
    const buf = hex('ff ff 04 02 aa bb 04 01 cc')
    const el = readElement(buf, 2, 6)
    assert.equal(el.contentStart, 4)
    assert.equal(el.end, 6)
    assertDerError(() => readElement(buf, 6, 8), /past the end/)
  })

  const refused: [string, string, RegExp][] = [
    ['empty input', '', /missing identifier/],
    ['no length octet', '04', /missing length/],
    ['indefinite length', '30 80 00 00', /indefinite/],
    ['reserved length octet', '04 ff', /reserved/],
    ['length past the end', '04 05 01 02', /past the end/],
    ['long form for a short length', '04 81 05 0102030405', /non-minimal length/],
    ['leading zero length octet', '04 82 00 80', /non-minimal length/],
    ['five length octets', '04 85 0000000001 00', /too large/],
    ['truncated long length', '04 82 01', /truncated length/],
    ['truncated high tag', '1f 81', /truncated tag/],
    ['high-tag form for a low number', '1f 05 00', /low tag number/],
    ['non-minimal high tag', '1f 80 1f 00', /non-minimal tag/],
    ['huge tag number', '1f ff ff ff 7f 00', /too large/],
  ]
  for (const [name, bytes, pattern] of refused) {
    it(`refuses ${name}`, () => assertDerError(() => readElement(hex(bytes), 0), pattern))
  }

  it('refuses a bad offset', () => {
    assertDerError(() => readElement(hex('04 00'), -1))
    assertDerError(() => readElement(hex('04 00'), 0.5))
  })
})

describe('INTEGER', () => {
  const cases: [string, number][] = [
    ['00', 0],
    ['7f', 127],
    ['0080', 128],
    ['ff', -1],
    ['80', -128],
    ['ff7f', -129],
    ['7fffffff', 0x7fffffff],
    ['80000000', -0x80000000],
    ['00ffffffff', 0xffffffff],
  ]
  for (const [content, value] of cases) {
    it(`reads ${content} as ${value}`, () => {
      const buf = tlv(0x02, hex(content))
      assert.equal(readInteger(buf, readElement(buf, 0), { min: -(2 ** 40), max: 2 ** 40 }), value)
    })
  }

  it('bounds the value (Int32 by default)', () => {
    const big = tlv(0x02, hex('0080000000'))
    assertDerError(() => readInteger(big, readElement(big, 0)), /out of range/)
    assert.equal(readInteger(big, readElement(big, 0), { min: 0, max: 2 ** 31 }), 2 ** 31)
    const five = tlv(0x02, hex('05'))
    assertDerError(() => readInteger(five, readElement(five, 0), { min: 6, max: 9 }), /range/)
    const seven = tlv(0x02, hex('01 00000000 0000'))
    assertDerError(() => readInteger(seven, readElement(seven, 0), INT32), /out of range/)
  })

  it('refuses empty, non-minimal and mistagged integers', () => {
    for (const bytes of ['02 00', '02 02 0001', '02 02 ff80', '04 01 01', '22 03 020101']) {
      const buf = hex(bytes)
      assertDerError(() => readInteger(buf, readElement(buf, 0)))
    }
  })
})

describe('leniency (BER lengths and INTEGERs, opt-in)', () => {
  const lengths = { nonMinimalLengths: true }
  const integers = { nonMinimalIntegers: true }

  it('reads non-minimal long-form lengths only when asked', () => {
    for (const [bytes, length] of [
      ['04 81 05 0102030405', 5],
      ['04 82 00 05 0102030405', 5],
      ['04 84 00 00 00 00', 0],
      ['04 82 00 80', -1],
    ] as const) {
      const buf = hex(bytes)
      assertDerError(() => readElement(buf, 0), /non-minimal length|past the end/)
      if (length < 0) {
        assertDerError(() => readElement(buf, 0, buf.length, lengths), /past the end/)
        continue
      }
      const el = readElement(buf, 0, buf.length, lengths)
      assert.equal(el.end - el.contentStart, length, bytes)
      assert.equal(el.end, buf.length)
    }
  })

  const stillRefused: [string, string, RegExp][] = [
    ['indefinite length', '30 80 00 00', /indefinite/],
    ['reserved length octet', '04 ff', /reserved/],
    ['five length octets', '04 85 00 00 00 00 01 00', /too large/],
    ['a 4 GiB length', '04 84 ff ff ff ff 00', /past the end/],
    ['truncated long length', '04 84 00 00', /truncated length/],
    ['high-tag form for a low number', '1f 05 00', /low tag number/],
  ]
  for (const [name, bytes, pattern] of stillRefused) {
    it(`still refuses ${name}`, () => {
      const buf = hex(bytes)
      assertDerError(() => readElement(buf, 0, buf.length, lengths), pattern)
    })
  }

  it('passes the leniency down through children and explicitInner', () => {
    const seq = hex('30 07 02 81 01 05 02 01 06')
    assertDerError(() => [...children(seq, readElement(seq, 0))], /non-minimal length/)
    const items = [...children(seq, readElement(seq, 0), lengths)]
    assert.deepEqual(
      items.map((el) => readInteger(seq, el)),
      [5, 6],
    )
    const tagged = hex('a6 84 00 00 00 05 02 82 00 01 34')
    const outer = readElement(tagged, 0, tagged.length, lengths)
    assertDerError(() => explicitInner(tagged, outer, 6), /non-minimal length/)
    assert.equal(readInteger(tagged, explicitInner(tagged, outer, 6, lengths)), 0x34)
  })

  it('reads non-minimal INTEGERs only when asked, within bounds and 6 octets', () => {
    for (const [content, value] of [
      ['00 05', 5],
      ['00 00 00 34', 0x34],
      ['ff ff', -1],
      ['ff ff 80', -128],
      ['00 00 00 00 00 05', 5],
    ] as const) {
      const buf = tlv(0x02, hex(content))
      assertDerError(() => readInteger(buf, readElement(buf, 0)), /non-minimal INTEGER/)
      assert.equal(readInteger(buf, readElement(buf, 0), INT32, integers), value, content)
    }
    for (const content of ['00 00 00 00 00 00 05', '00 80 00 00 00', '']) {
      const buf = tlv(0x02, hex(content))
      assertDerError(() => readInteger(buf, readElement(buf, 0), INT32, integers))
    }
    const mistagged = tlv(0x04, hex('00 05'))
    assertDerError(() => readInteger(mistagged, readElement(mistagged, 0), INT32, integers))
  })

  it('lenient readElement never points outside the buffer or its limit', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(70), fc.nat(70), (bytes, at, limit) => {
        const buf = Buffer.from(bytes)
        try {
          const el = readElement(buf, at, limit, { ...lengths, ...integers })
          assert.ok(el.contentStart > el.start && el.end >= el.contentStart)
          assert.ok(el.end <= Math.min(limit, buf.length))
        } catch (err) {
          assert.ok(err instanceof DerError, `unexpected ${String(err)}`)
        }
      }),
      { numRuns: 3000 },
    )
  })
})

describe('strings', () => {
  it('reads OCTET STRING and GeneralString content as copies', () => {
    const buf = Buffer.concat([tlv(0x04, [1, 2, 3]), tlv(0x1b, Buffer.from('EXAMPLE.COMalice'))])
    const os = readOctetString(buf, readElement(buf, 0))
    assert.deepEqual([...os], [1, 2, 3])
    os[0] = 9
    assert.equal(buf[2], 1, 'a copy, not a view')
    const gs = readGeneralString(buf, readElement(buf, 5))
    assert.equal(gs.toString('latin1'), 'EXAMPLE.COMalice')
  })

  it('refuses constructed and mistagged strings', () => {
    const constructed = tlv(0x24, tlv(0x04, [1]))
    assertDerError(() => readOctetString(constructed, readElement(constructed, 0)))
    const utf8 = tlv(0x0c, Buffer.from('x'))
    assertDerError(() => readGeneralString(utf8, readElement(utf8, 0)), /GeneralString/)
    assertDerError(() => readOctetString(utf8, readElement(utf8, 0)), /OCTET STRING/)
  })
})

describe('SEQUENCE and explicit tags', () => {
  it('iterates a SEQUENCE OF', () => {
    const buf = tlv(0x30, Buffer.concat([tlv(0x02, [1]), tlv(0x02, [2]), tlv(0x02, [3])]))
    const items = sequenceItems(buf, readElement(buf, 0))
    assert.deepEqual(
      items.map((el) => readInteger(buf, el)),
      [1, 2, 3],
    )
    assert.deepEqual(sequenceItems(hex('30 00'), readElement(hex('30 00'), 0)), [])
  })

  it('refuses children running past their parent', () => {
    // The SEQUENCE claims 3 content bytes; its child claims 5.
    const buf = hex('30 03 04 05 00 00 00 00 00')
    assertDerError(() => sequenceItems(buf, readElement(buf, 0)), /past the end/)
  })

  it('refuses a primitive where a SEQUENCE is expected', () => {
    const buf = hex('10 00')
    assertDerError(() => sequenceItems(buf, readElement(buf, 0)), /SEQUENCE/)
    assertDerError(() => [...children(buf, readElement(buf, 0))], /constructed/)
  })

  it('unwraps [n] EXPLICIT', () => {
    const buf = tlv(0xa6, tlv(0x02, [0x19]))
    const inner = explicitInner(buf, readElement(buf, 0), 6)
    assert.equal(readInteger(buf, inner), 25)
    assertDerError(() => explicitInner(buf, readElement(buf, 0), 5), /\[5\]/)
  })

  it('refuses trailing bytes inside an explicit tag, and non-context tags', () => {
    const trailing = tlv(0xa0, Buffer.concat([tlv(0x02, [1]), tlv(0x02, [2])]))
    assertDerError(() => explicitInner(trailing, readElement(trailing, 0)), /trailing/)
    const implicit = tlv(0x80, [1])
    assertDerError(() => explicitInner(implicit, readElement(implicit, 0)), /explicit/)
    const app = tlv(0x61, tlv(0x02, [1]))
    assertDerError(() => explicitInner(app, readElement(app, 0)), /explicit/)
  })
})

describe('parseTree', () => {
  it('parses nested structures', () => {
    const buf = tlv(0x7e, tlv(0x30, Buffer.concat([tlv(0xa0, tlv(0x02, [5])), tlv(0x04, [])])))
    assert.deepEqual(parseTree(buf), {
      cls: 1,
      constructed: true,
      tagNumber: 30,
      length: 9,
      children: [
        {
          cls: 0,
          constructed: true,
          tagNumber: 16,
          length: 7,
          children: [
            {
              cls: 2,
              constructed: true,
              tagNumber: 0,
              length: 3,
              children: [{ cls: 0, constructed: false, tagNumber: 2, length: 1 }],
            },
            { cls: 0, constructed: false, tagNumber: 4, length: 0 },
          ],
        },
      ],
    })
  })

  it('refuses trailing bytes and deep nesting', () => {
    assertDerError(() => parseTree(hex('04 00 00')), /trailing/)
    let deep = tlv(0x04, [])
    for (let i = 0; i < 40; i++) deep = tlv(0x30, deep)
    assertDerError(() => parseTree(deep), /too deep/)
    assert.ok(parseTree(deep, 64))
  })
})

/** An arbitrary well-formed DER tree, and its encoding. */
const derTree: fc.Memo<Buffer> = fc.memo((depth) =>
  depth <= 1
    ? primitive()
    : fc.oneof(
        primitive(),
        fc
          .tuple(
            fc.integer({ min: 0, max: 3 }),
            tagNumber(),
            fc.array(derTree(depth - 1), { maxLength: 4 }),
          )
          .map(([cls, n, kids]) => tlv(identifier(cls, true, n), Buffer.concat(kids))),
      ),
)

function tagNumber(): fc.Arbitrary<number> {
  return fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 31, max: 0x1fffff }))
}

function primitive(): fc.Arbitrary<Buffer> {
  return fc
    .tuple(
      fc.integer({ min: 0, max: 3 }),
      tagNumber(),
      fc.oneof(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ minLength: 120, maxLength: 300 })),
    )
    .map(([cls, n, content]) => tlv(identifier(cls, false, n), Buffer.from(content)))
}

function identifier(cls: number, constructed: boolean, n: number): number[] {
  const first = (cls << 6) | (constructed ? 0x20 : 0)
  if (n < 31) return [first | n]
  const digits: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 128)) digits.unshift(v % 128)
  return [first | 0x1f, ...digits.map((d, i) => (i < digits.length - 1 ? d | 0x80 : d))]
}

function countNodes(node: DerNode): number {
  return 1 + (node.children ?? []).reduce((n, c) => n + countNodes(c), 0)
}

describe('fuzz (fast-check)', () => {
  it('random bytes give a tree or a DerError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const buf = Buffer.from(bytes)
        try {
          const tree = parseTree(buf)
          assert.ok(tree.length <= buf.length)
        } catch (err) {
          assert.ok(err instanceof DerError, `unexpected ${String(err)}`)
          assert.ok(err.offset >= 0 && err.offset <= buf.length, 'offset within the input')
        }
      }),
      { numRuns: 5000 },
    )
  })

  it('readElement never points outside the buffer or its limit', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.nat(70),
        fc.nat(70),
        (bytes, offset, limit) => {
          const buf = Buffer.from(bytes)
          try {
            const el = readElement(buf, offset, limit)
            assert.ok(el.start === offset)
            assert.ok(el.contentStart > el.start)
            assert.ok(el.end >= el.contentStart)
            assert.ok(el.end <= Math.min(limit, buf.length))
          } catch (err) {
            assert.ok(err instanceof DerError)
          }
        },
      ),
      { numRuns: 5000 },
    )
  })

  it('typed readers on random elements return or throw DerError only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), (bytes) => {
        const buf = Buffer.from(bytes)
        for (const read of [
          (el: ReturnType<typeof readElement>) => readInteger(buf, el),
          (el: ReturnType<typeof readElement>) => readOctetString(buf, el),
          (el: ReturnType<typeof readElement>) => readGeneralString(buf, el),
          (el: ReturnType<typeof readElement>) => sequenceItems(buf, el),
          (el: ReturnType<typeof readElement>) => explicitInner(buf, el),
        ]) {
          try {
            read(readElement(buf, 0))
          } catch (err) {
            assert.ok(err instanceof DerError, `unexpected ${String(err)}`)
          }
        }
      }),
      { numRuns: 3000 },
    )
  })

  it('every well-formed DER tree parses, and any truncation of it fails cleanly', () => {
    fc.assert(
      fc.property(derTree(4), fc.nat(), (buf, cut) => {
        const tree = parseTree(buf)
        assert.ok(countNodes(tree) >= 1)
        const short = buf.subarray(0, cut % buf.length)
        assertDerError(() => parseTree(short))
      }),
      { numRuns: 1000 },
    )
  })
})
