import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { inspect } from 'node:util'
import fc from 'fast-check'
import { isSaslgateError } from '../../src/errors.js'
import {
  deriveKeyFromKeytab,
  looksLikeSessionToken,
  parseKeytab,
  SessionTokens,
} from '../../src/service/session-token.js'

const KEY = Buffer.alloc(32, 7)
const NOW = 1_700_000_000_000
const ALICE = 'host/fe1.saslgate.test@SASLGATE.TEST'

/** Replaces the character at `i` by another base64url character. */
function flip(s: string, i: number): string {
  const c = s[i] === 'A' ? 'B' : 'A'
  return s.slice(0, i) + c + s.slice(i + 1)
}

function parts(token: string): [string, string, string] {
  const [a, b, c] = token.split('.')
  return [a!, b!, c!]
}

// -- a tiny MIT keytab writer (format 0x0502, big-endian) ------------------------------------

interface Entry {
  principal: string
  kvno: number
  enctype: number
  key: Buffer
  timestamp?: number
}

function keytab(entries: readonly Entry[], holes = false): Buffer {
  const chunks: Buffer[] = [Buffer.from([0x05, 0x02])]
  const counted = (b: Buffer) => Buffer.concat([u16(b.length), b])
  for (const e of entries) {
    if (holes) chunks.push(i32(-12), Buffer.alloc(12, 0xee)) // a deleted entry
    const [name, realm] = e.principal.split('@') as [string, string]
    const comps = name.split('/')
    const body = Buffer.concat([
      u16(comps.length),
      counted(Buffer.from(realm)),
      ...comps.map((c) => counted(Buffer.from(c))),
      u32(1), // KRB5_NT_PRINCIPAL
      u32(e.timestamp ?? 1_700_000_000),
      Buffer.from([e.kvno & 0xff]),
      u16(e.enctype),
      counted(e.key),
      u32(e.kvno),
    ])
    chunks.push(i32(body.length), body)
  }
  return Buffer.concat(chunks)
}
function u16(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
function i32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeInt32BE(n)
  return b
}

const HTTP = 'HTTP/saslgate.test@SASLGATE.TEST'
const k1 = Buffer.alloc(32, 1)
const k2 = Buffer.alloc(16, 2)
const BASE: Entry[] = [
  { principal: HTTP, kvno: 2, enctype: 18, key: k1 },
  { principal: HTTP, kvno: 2, enctype: 17, key: k2 },
]

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'saslgate-session-token-'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function keyOf(buf: Buffer, principal?: string): Promise<Buffer> {
  const path = join(dir, `${randomBytes(6).toString('hex')}.keytab`)
  await writeFile(path, buf)
  return deriveKeyFromKeytab(path, principal)
}

describe('SessionTokens', () => {
  test('issue then verify gives the principal back until the expiry', () => {
    const st = new SessionTokens(KEY)
    const { token, expiresAt } = st.issue(ALICE, 60_000, NOW)
    assert.equal(expiresAt, NOW + 60_000)
    assert.match(token, /^sgs1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/)
    assert.equal(st.verify(token, NOW), ALICE)
    assert.equal(st.verify(token, expiresAt - 1), ALICE)
    assert.equal(st.verify(token, expiresAt), null, 'expired at expiresAt')
    assert.equal(st.verify(token, expiresAt + 3_600_000), null)
    assert.equal(SessionTokens.looksLike(token), true)
    assert.equal(looksLikeSessionToken('some-static-bearer-token'), false)
    assert.equal(looksLikeSessionToken(undefined), false)
  })

  test('another key (another keytab) does not verify; the same key does', () => {
    const { token } = new SessionTokens(KEY).issue(ALICE, 60_000, NOW)
    assert.equal(new SessionTokens(Buffer.from(KEY)).verify(token, NOW), ALICE)
    assert.equal(new SessionTokens(Buffer.alloc(32, 8)).verify(token, NOW), null)
  })

  test('tampering with any part is refused', () => {
    const st = new SessionTokens(KEY)
    const { token } = st.issue(ALICE, 60_000, NOW)
    const [prefix, payload, mac] = parts(token)
    // every single character of payload and MAC
    for (let i = 0; i < payload.length; i++) {
      assert.equal(st.verify(`${prefix}.${flip(payload, i)}.${mac}`, NOW), null, `payload[${i}]`)
    }
    for (let i = 0; i < mac.length; i++) {
      assert.equal(st.verify(`${prefix}.${payload}.${flip(mac, i)}`, NOW), null, `mac[${i}]`)
    }
    assert.equal(st.verify(`sgs2.${payload}.${mac}`, NOW), null, 'version')
    assert.equal(st.verify(`SGS1.${payload}.${mac}`, NOW), null, 'prefix case')
    // a forged payload (other principal, later expiry) with the old MAC
    const forged = Buffer.from(JSON.stringify({ p: 'root@SASLGATE.TEST', e: NOW + 1e9 })).toString(
      'base64url',
    )
    assert.equal(st.verify(`${prefix}.${forged}.${mac}`, NOW), null)
    // the payload of one token with the MAC of another
    const other = parts(st.issue('bob@SASLGATE.TEST', 60_000, NOW).token)
    assert.equal(st.verify(`${prefix}.${payload}.${other[2]}`, NOW), null)
    // non-canonical base64url spelling of the same MAC bytes (last char's unused bits)
    const last = mac.at(-1)!
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const sibling = alphabet[alphabet.indexOf(last) ^ 1]!
    const twin = `${mac.slice(0, -1)}${sibling}`
    assert.deepEqual(Buffer.from(twin, 'base64url'), Buffer.from(mac, 'base64url'))
    assert.equal(st.verify(`${prefix}.${payload}.${twin}`, NOW), null, 'non-canonical MAC')
  })

  test('malformed inputs are refused without throwing', () => {
    const st = new SessionTokens(KEY)
    const { token } = st.issue(ALICE, 60_000, NOW)
    const [prefix, payload, mac] = parts(token)
    const cases: unknown[] = [
      '',
      'sgs1.',
      'sgs1..',
      'sgs1...',
      `${prefix}.${payload}`,
      `${prefix}.${payload}.`,
      `${prefix}..${mac}`,
      `${prefix}.${payload}.${mac}.`,
      `${prefix}.${payload}.${mac}.x`,
      `${prefix}.${payload}=.${mac}`,
      `${prefix}.${payload}.${mac}=`,
      `${prefix}.${payload}.${mac.slice(0, -1)}`,
      `${prefix}.${payload}.${mac}AAAA`,
      ` ${token}`,
      `${token}\n`,
      `${token}\0`,
      `sgs1.${'A'.repeat(5000)}.${mac}`,
      undefined,
      null,
      42,
      {},
      Buffer.from(token),
    ]
    for (const c of cases) assert.equal(st.verify(c, NOW), null, inspect(c))
    assert.equal(st.verify(token, Number.NaN), null, 'NaN clock')
  })

  test('a validly signed but odd payload is refused', async () => {
    const { createHmac } = await import('node:crypto')
    const st = new SessionTokens(KEY)
    const make = (body: string) => {
      const p = Buffer.from(body).toString('base64url')
      const m = createHmac('sha256', KEY).update(`sgs1.${p}`).digest('base64url')
      return `sgs1.${p}.${m}`
    }
    assert.equal(st.verify(make(JSON.stringify({ p: ALICE, e: NOW + 1000 })), NOW), ALICE)
    for (const body of [
      'not json',
      'null',
      '[]',
      '"x"',
      JSON.stringify({ p: '', e: NOW + 1000 }),
      JSON.stringify({ p: 1, e: NOW + 1000 }),
      JSON.stringify({ p: ALICE }),
      JSON.stringify({ p: ALICE, e: `${NOW + 1000}` }),
      JSON.stringify({ p: ALICE, e: NOW + 0.5 }),
      JSON.stringify({ e: NOW + 1000 }),
      '{"p":"a","e":1e400}',
    ]) {
      assert.equal(st.verify(make(body), NOW), null, body)
    }
  })

  test('issue refuses bad arguments and keys that are too short', () => {
    const st = new SessionTokens(KEY)
    for (const [p, ttl] of [
      ['', 1000],
      [ALICE, 0],
      [ALICE, -1],
      [ALICE, 1.5],
      [ALICE, Number.POSITIVE_INFINITY],
      [ALICE, 48 * 3_600_000],
      ['x'.repeat(2000), 1000],
    ] as const) {
      assert.throws(
        () => st.issue(p, ttl, NOW),
        (e) => isSaslgateError(e, 'SASLGATE_ERR_CONFIG'),
      )
    }
    assert.throws(
      () => new SessionTokens(Buffer.alloc(8)),
      (e) => isSaslgateError(e),
    )
  })

  test('the key is not visible in inspect or JSON', () => {
    const st = new SessionTokens(Buffer.from('0123456789abcdef0123456789abcdef'))
    const shown = `${inspect(st, { showHidden: true, depth: 5 })}${JSON.stringify(st)}`
    assert.ok(!shown.includes('0123456789abcdef'))
    assert.ok(!shown.includes('30313233'))
  })

  test('property: verify never throws and never accepts what it did not issue', () => {
    const st = new SessionTokens(KEY)
    const { token } = st.issue(ALICE, 60_000, NOW)
    const [prefix, payload, mac] = parts(token)
    const b64url = fc.string({ unit: fc.constantFrom(...'AZaz09-_'.split('')), maxLength: 80 })
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.tuple(b64url, b64url).map(([a, b]) => `sgs1.${a}.${b}`),
          b64url.map((b) => `${prefix}.${payload}.${b}`),
          b64url.map((b) => `${prefix}.${b}.${mac}`),
          fc.anything(),
        ),
        fc.oneof(fc.integer(), fc.double(), fc.constant(NOW)),
        (input, now) => {
          const out = st.verify(input, now)
          assert.ok(out === null || input === token)
        },
      ),
      { numRuns: 2000 },
    )
  })

  test('property: any principal round-trips', () => {
    const st = new SessionTokens(KEY)
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 300, unit: 'grapheme' }), (p) => {
        const { token } = st.issue(p, 1000, NOW)
        assert.equal(st.verify(token, NOW), p)
        assert.equal(st.verify(token, NOW + 1000), null)
      }),
      { numRuns: 300 },
    )
  })
})

describe('session token key from a keytab', () => {
  test('same keys, other timestamps / order / deleted holes: same key', async () => {
    const a = await keyOf(keytab(BASE))
    const b = await keyOf(
      keytab(
        [...BASE].reverse().map((e) => ({ ...e, timestamp: 1 })),
        true,
      ),
    )
    assert.equal(a.length, 32)
    assert.deepEqual(a, b)
    const st = new SessionTokens(a)
    assert.equal(new SessionTokens(b).verify(st.issue(ALICE, 1000, NOW).token, NOW), ALICE)
  })

  test('other key bytes, other principal or other kvno: another key', async () => {
    const a = await keyOf(keytab(BASE))
    const otherKey = await keyOf(keytab([{ ...BASE[0]!, key: Buffer.alloc(32, 9) }, BASE[1]!]))
    const otherName = await keyOf(
      keytab(BASE.map((e) => ({ ...e, principal: 'HTTP/other.test@SASLGATE.TEST' }))),
    )
    const otherKvno = await keyOf(keytab(BASE.map((e) => ({ ...e, kvno: 3 }))))
    for (const k of [otherKey, otherName, otherKvno]) assert.notDeepEqual(k, a)
  })

  test('only the highest kvno counts; a principal filter picks its entries', async () => {
    const a = await keyOf(keytab(BASE))
    const old = BASE.map((e) => ({ ...e, kvno: 1, key: Buffer.alloc(e.key.length, 0x55) }))
    assert.deepEqual(await keyOf(keytab([...old, ...BASE])), a, 'old kvno ignored')
    const host = {
      principal: 'host/fe1.saslgate.test@SASLGATE.TEST',
      kvno: 4,
      enctype: 18,
      key: k2,
    }
    const both = keytab([...BASE, host])
    assert.notDeepEqual(await keyOf(both), a, 'no filter: every principal')
    assert.deepEqual(await keyOf(both, 'HTTP/saslgate.test'), a, 'any realm')
    assert.deepEqual(await keyOf(both, HTTP), a, 'exact')
    await assert.rejects(keyOf(both, 'HTTP/saslgate.test@OTHER.TEST'), (e) =>
      isSaslgateError(e, 'SASLGATE_ERR_CONFIG'),
    )
  })

  test('FILE: prefix, unreadable, non-keytab and truncated files', async () => {
    const path = join(dir, 'prefixed.keytab')
    await writeFile(path, keytab(BASE))
    assert.deepEqual(await deriveKeyFromKeytab(`FILE:${path}`), await deriveKeyFromKeytab(path))
    const st = await SessionTokens.fromKeytab(path)
    assert.ok(st.verify(st.issue(ALICE, 1000, NOW).token, NOW))
    const config = (e: unknown) => isSaslgateError(e, 'SASLGATE_ERR_CONFIG')
    await assert.rejects(deriveKeyFromKeytab(join(dir, 'missing.keytab')), config)
    await assert.rejects(deriveKeyFromKeytab('MEMORY:x'), config)
    await assert.rejects(keyOf(Buffer.from('hello world')), config)
    await assert.rejects(keyOf(Buffer.from([0x05, 0x02])), config, 'empty keytab')
    const full = keytab(BASE)
    // A whole first entry is a valid keytab; like MIT, a partial length word after it is the end.
    const boundary = keytab([BASE[0]!]).length
    for (let cut = 3; cut < full.length; cut += 1) {
      if (cut >= boundary && cut < boundary + 4) continue
      await assert.rejects(keyOf(full.subarray(0, cut)), config, `cut at ${cut}`)
    }
  })

  test('property: parseKeytab never throws anything but a SaslgateError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, v2) => {
        const buf = Buffer.concat([Buffer.from([0x05, v2 ? 0x02 : 0x01]), Buffer.from(bytes)])
        try {
          parseKeytab(buf)
        } catch (e) {
          assert.ok(isSaslgateError(e, 'SASLGATE_ERR_CONFIG'), String(e))
        }
      }),
      { numRuns: 1000 },
    )
  })
})
