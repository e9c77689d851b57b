// The KDC transport against tiny fake KDCs on real sockets (127.0.0.1 only).
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import dns from 'node:dns'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import { isSaslgateError, type SaslgateError } from '../../src/errors.js'
import {
  classifyKdcReply,
  isKdcReply,
  KRB_ERR_RESPONSE_TOO_BIG,
  krbErrorCode,
} from '../../src/kerberos/kdc-message.js'
import {
  DEFAULT_TRANSPORT_OPTIONS,
  type KdcAttemptEvent,
  KdcClient,
  type KdcTransportInit,
  parseKdcAddress,
} from '../../src/kerberos/transport.js'
import { type FakeDns, startFakeDns } from '../../src/testing/fake-dns.js'

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)
process.on('unhandledRejection', onUnhandled)
after(() => {
  process.off('unhandledRejection', onUnhandled)
  assert.deepEqual(unhandled, [], 'no unhandled rejection during the whole file')
})

// ---------------------------------------------------------------- DER builders

function der(tag: number, content: Buffer): Buffer {
  const n = content.length
  let head: Buffer
  if (n < 0x80) head = Buffer.from([tag, n])
  else if (n < 0x100) head = Buffer.from([tag, 0x81, n])
  else head = Buffer.from([tag, 0x82, n >> 8, n & 0xff])
  return Buffer.concat([head, content])
}

function derInt(value: number): Buffer {
  const bytes: number[] = []
  let v = value
  for (;;) {
    bytes.unshift(v & 0xff)
    v >>= 8
    const top = bytes[0]! & 0x80
    if ((v === 0 && !top) || (v === -1 && top)) break
  }
  return der(0x02, Buffer.from(bytes))
}

const ctx = (n: number, inner: Buffer) => der(0xa0 + n, inner)
const gstr = (s: string) => der(0x1b, Buffer.from(s))

function principalName(...parts: string[]): Buffer {
  return der(
    0x30,
    Buffer.concat([ctx(0, derInt(1)), ctx(1, der(0x30, Buffer.concat(parts.map(gstr))))]),
  )
}

/** A minimal, well-formed KRB-ERROR (what a KDC says for a wrong password etc.). */
function krbError(code: number, pad = 0): Buffer {
  const fields = [
    ctx(0, derInt(5)),
    ctx(1, derInt(30)),
    ctx(4, der(0x18, Buffer.from('20250101000000Z'))),
    ctx(5, derInt(0)),
    ctx(6, derInt(code)),
    ctx(9, gstr('TEST.REALM')),
    ctx(10, principalName('krbtgt', 'TEST.REALM')),
  ]
  if (pad > 0) fields.push(ctx(12, der(0x04, Buffer.alloc(pad, 0x61))))
  return der(0x7e, der(0x30, Buffer.concat(fields)))
}

/** Shaped like an AS-REP (the enc-part is opaque bytes; nobody decrypts it here). */
function asRep(padBytes = 16): Buffer {
  const fields = [
    ctx(0, derInt(5)),
    ctx(1, derInt(11)),
    ctx(3, gstr('TEST.REALM')),
    ctx(4, principalName('alice')),
    ctx(5, der(0x61, Buffer.from('ticket'))),
    ctx(
      6,
      der(0x30, Buffer.concat([ctx(0, derInt(18)), ctx(2, der(0x04, Buffer.alloc(padBytes, 7)))])),
    ),
  ]
  return der(0x6b, der(0x30, Buffer.concat(fields)))
}

const WRONG_PASSWORD = krbError(24)
const REQUEST = Buffer.from('a fake AS-REQ, the KDC fakes do not parse it')

// ---------------------------------------------------------------- fake KDCs

type UdpMode = 'answer' | 'blackhole' | 'garbage' | 'garbage-then-answer' | 'too-big' | 'spoof'
type TcpMode = 'answer' | 'split' | 'blackhole' | 'huge-length'

interface FakeKdc {
  port: number
  /** `127.0.0.1:port`, as the transport names it. */
  kdc: string
  udpMode: UdpMode
  tcpMode: TcpMode
  /** Delay before any UDP/TCP answer. */
  delayMs: number
  udpReply: Buffer
  tcpReply: Buffer
  udpRequests: Buffer[]
  tcpRequests: Buffer[]
  close(): Promise<void>
}

const fakes = new Set<FakeKdc>()
after(async () => {
  for (const fake of fakes) await fake.close()
})

function bindUdp(port: number, host: string): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4')
    socket.once('error', (err) => {
      socket.close()
      reject(err)
    })
    socket.bind(port, host, () => resolve(socket))
  })
}

function listenTcp(server: net.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      server.off('error', reject)
      resolve((server.address() as net.AddressInfo).port)
    })
  })
}

/** A UDP + TCP fake KDC on one port number of `host`. */
async function startFake(init: Partial<FakeKdc> = {}, host = '127.0.0.1'): Promise<FakeKdc> {
  const timers = new Set<NodeJS.Timeout>()
  const conns = new Set<net.Socket>()
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t)
      fn()
    }, ms)
    timers.add(t)
  }
  const fake: FakeKdc = {
    port: 0,
    kdc: '',
    udpMode: 'answer',
    tcpMode: 'answer',
    delayMs: 0,
    udpReply: WRONG_PASSWORD,
    tcpReply: WRONG_PASSWORD,
    udpRequests: [],
    tcpRequests: [],
    close: async () => {},
    ...init,
  }
  const server = net.createServer((conn) => {
    conns.add(conn)
    conn.on('close', () => conns.delete(conn))
    conn.on('error', () => {})
    let buf = Buffer.alloc(0)
    conn.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      if (buf.length < 4 || buf.length < 4 + buf.readUInt32BE(0)) return
      fake.tcpRequests.push(buf.subarray(4, 4 + buf.readUInt32BE(0)))
      const reply = fake.tcpReply
      const prefix = Buffer.alloc(4)
      prefix.writeUInt32BE(reply.length)
      const framed = Buffer.concat([prefix, reply])
      later(fake.delayMs, () => {
        if (fake.tcpMode === 'answer') conn.write(framed)
        else if (fake.tcpMode === 'huge-length')
          conn.write(Buffer.from([0x00, 0x10, 0x00, 0x00, 1, 2]))
        else if (fake.tcpMode === 'split') {
          // 1 + 2 + 3 bytes of prefix and body, then the rest: framing must reassemble
          const cuts = [1, 3, 6, 9, framed.length]
          let from = 0
          cuts.forEach((cut, i) => {
            const piece = framed.subarray(from, cut)
            from = cut
            later(5 * (i + 1), () => conn.write(piece))
          })
        }
      })
    })
  })
  let udp: dgram.Socket | undefined
  for (let tries = 0; tries < 20 && !udp; tries++) {
    const port = await listenTcp(server, host)
    try {
      udp = await bindUdp(port, host)
      fake.port = port
    } catch {
      await new Promise<void>((r) => server.close(() => r()))
    }
  }
  assert.ok(udp, 'found a port free for both UDP and TCP')
  const udpSocket = udp
  const spoofSocket = await bindUdp(0, host)
  udpSocket.on('message', (msg, rinfo) => {
    fake.udpRequests.push(msg)
    const send = (bytes: Buffer, via = udpSocket) => via.send(bytes, rinfo.port, rinfo.address)
    later(fake.delayMs, () => {
      switch (fake.udpMode) {
        case 'answer':
          return send(fake.udpReply)
        case 'garbage':
          return send(Buffer.from('\x7e\x05not kerberos'))
        case 'garbage-then-answer':
          send(Buffer.from('garbage'))
          send(Buffer.from([0x7e, 0x03, 0x30, 0x01, 0x00])) // truncated
          return later(20, () => send(fake.udpReply))
        case 'too-big':
          return send(krbError(KRB_ERR_RESPONSE_TOO_BIG))
        case 'spoof':
          return send(fake.udpReply, spoofSocket)
        default:
          return undefined
      }
    })
  })
  fake.kdc = net.isIPv6(host) ? `[${host}]:${fake.port}` : `${host}:${fake.port}`
  let closed = false
  fake.close = async () => {
    if (closed) return
    closed = true
    for (const t of timers) clearTimeout(t)
    for (const c of conns) c.destroy()
    await new Promise<void>((r) => udpSocket.close(() => r()))
    await new Promise<void>((r) => spoofSocket.close(() => r()))
    await new Promise<void>((r) => server.close(() => r()))
    fakes.delete(fake)
  }
  fakes.add(fake)
  return fake
}

/** A port with nothing behind it on UDP or TCP (the kernel answers ICMP / RST). */
async function refusedPort(): Promise<string> {
  const socket = await bindUdp(0, '127.0.0.1')
  const { port } = socket.address()
  await new Promise<void>((r) => socket.close(() => r()))
  return `127.0.0.1:${port}`
}

function client(t: { after(fn: () => Promise<void>): void }, init: KdcTransportInit) {
  const events: KdcAttemptEvent[] = []
  const changes: Array<{ kdc: string; state: string }> = []
  const c = new KdcClient({
    onAttempt: (e) => events.push(e),
    onBreakerChange: (e) => changes.push(e),
    ...init,
  })
  t.after(() => c.close())
  return { c, events, changes }
}

const signal = (ms = 5000) => AbortSignal.timeout(ms)

async function rejectsWith(
  p: Promise<unknown>,
  code: SaslgateError['code'],
): Promise<SaslgateError> {
  try {
    await p
  } catch (err) {
    assert.ok(isSaslgateError(err, code), `expected ${code}, got ${String((err as Error).stack)}`)
    return err
  }
  assert.fail(`expected a rejection with ${code}`)
}

function udpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length
}

function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length
}

/** Waits (bounded) until `fn` holds; sockets close one tick after close(). */
async function eventually(fn: () => boolean, what: string, ms = 1000): Promise<void> {
  const until = performance.now() + ms
  while (!fn()) {
    if (performance.now() > until) assert.fail(`still not true after ${ms} ms: ${what}`)
    await sleep(5)
  }
}

// ---------------------------------------------------------------- kdc-message

describe('kdc-message', () => {
  test('classifies KRB-ERROR with its code, AS-REP, and refuses the rest', () => {
    assert.deepEqual(classifyKdcReply(krbError(24)), { kind: 'krb-error', errorCode: 24 })
    assert.equal(krbErrorCode(krbError(KRB_ERR_RESPONSE_TOO_BIG)), 52)
    assert.equal(krbErrorCode(krbError(-1)), -1)
    assert.equal(krbErrorCode(krbError(6, 300)), 6, 'long-form DER lengths')
    assert.deepEqual(classifyKdcReply(asRep()), { kind: 'as-rep' })
    assert.equal(krbErrorCode(asRep()), undefined)
    const good = krbError(24)
    assert.equal(isKdcReply(good.subarray(0, good.length - 1)), false, 'truncated')
    assert.equal(isKdcReply(Buffer.concat([good, Buffer.from([0])])), false, 'trailing byte')
    const wrongType = Buffer.from(asRep())
    wrongType[0] = 0x6d // TGS-REP tag around an AS-REP msg-type
    assert.equal(isKdcReply(wrongType), false)
    assert.equal(isKdcReply(Buffer.from('hello')), false)
    assert.equal(isKdcReply(Buffer.alloc(0)), false)
    assert.equal(isKdcReply(Buffer.from([0x7e, 0x80, 0x30, 0x80, 0, 0, 0, 0])), false, 'indefinite')
  })

  /** A TLV whose length takes `octets` long-form octets, minimal or not. */
  const longForm = (tag: number, content: Buffer, octets: number) => {
    const len = Buffer.alloc(octets)
    len.writeUIntBE(content.length, 0, octets)
    return Buffer.concat([Buffer.from([tag, 0x80 | octets]), len, content])
  }
  const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
  /** pvno 5, msg-type 30, then `fields`, in a KRB-ERROR. */
  const errorWith = (...fields: Buffer[]) =>
    der(0x7e, der(0x30, Buffer.concat([ctx(0, derInt(5)), ctx(1, derInt(30)), ...fields])))

  test('reads non-minimal lengths and INTEGERs (BER), as libkrb5 does', () => {
    const inner = Buffer.concat([
      longForm(0xa0, longForm(0x02, hex('05'), 4), 2),
      longForm(0xa1, der(0x02, hex('00 1e')), 1),
      ctx(6, der(0x02, hex('00 00 00 34'))),
    ])
    const reply = longForm(0x7e, longForm(0x30, inner, 4), 4)
    assert.deepEqual(classifyKdcReply(reply), { kind: 'krb-error', errorCode: 52 })
    assert.equal(krbErrorCode(errorWith(ctx(6, der(0x02, hex('ff ff'))))), -1)
    assert.equal(krbErrorCode(errorWith(ctx(6, der(0x02, hex('7f ff ff ff'))))), 0x7fffffff)
    assert.equal(krbErrorCode(errorWith(ctx(6, der(0x02, hex('80 00 00 00'))))), -0x80000000)
    // More than 4 INTEGER octets is not an Int32 field, even when the value would fit.
    assert.equal(krbErrorCode(errorWith(ctx(6, der(0x02, hex('00 00 00 00 34'))))), undefined)
    assert.equal(krbErrorCode(errorWith(ctx(6, der(0x02, hex('00 80 00 00 00'))))), undefined)
    assert.equal(krbErrorCode(errorWith(ctx(6, der(0x02, Buffer.alloc(0))))), undefined)
    // Every truncation of the lenient reply is refused, none throws.
    for (let n = 0; n < reply.length; n++) {
      assert.equal(classifyKdcReply(reply.subarray(0, n)), undefined, `first ${n} bytes`)
    }
  })

  test('refuses malformed fields and impossible lengths', () => {
    const code = ctx(6, derInt(52))
    assert.equal(krbErrorCode(errorWith(code)), 52)
    const refused: [string, Buffer][] = [
      ['a multi-octet field tag', errorWith(code, hex('bf 1f 03 02 01 00'))],
      ['a universal field', errorWith(code, hex('02 01 00'))],
      ['a primitive context field', errorWith(code, hex('86 01 34'))],
      ['a field running past the SEQUENCE', errorWith(code, hex('a7 05 02 01 00'))],
      ['trailing bytes in [6]', errorWith(ctx(6, hex('02 01 34 02 01 00')))],
      ['[6] holding no INTEGER', errorWith(ctx(6, der(0x04, hex('34'))))],
      ['a SET for the SEQUENCE', der(0x7e, der(0x31, Buffer.concat([ctx(0, derInt(5))])))],
      ['two elements in the outer tag', Buffer.concat([hex('7e 04 30 00 30 00')])],
      ['a 4 GiB length', hex('7e 84 ff ff ff ff 30 00')],
      ['five length octets', hex('7e 85 00 00 00 00 02 30 00')],
      ['a reserved length octet', hex('7e ff 30 00')],
      ['a truncated long length', hex('7e 83 00 00')],
      ['a multi-octet outer tag', hex('7f 1e 02 30 00')],
      ['a primitive outer tag', Buffer.from([0x5e, ...errorWith(code).subarray(1)])],
    ]
    for (const [what, buf] of refused) assert.equal(classifyKdcReply(buf), undefined, what)
  })

  test('an unreadable INTEGER only unsets its field; the last occurrence wins', () => {
    const bad = ctx(6, der(0x04, hex('34')))
    assert.equal(krbErrorCode(errorWith(bad, ctx(6, derInt(52)))), 52)
    assert.equal(krbErrorCode(errorWith(ctx(6, derInt(52)), bad)), undefined)
    assert.equal(krbErrorCode(errorWith(ctx(6, derInt(24)), ctx(6, derInt(52)))), 52)
    // Fields other than pvno, msg-type (and a KRB-ERROR's error-code) are not read inside.
    const rep = der(0x6b, der(0x30, Buffer.concat([ctx(0, derInt(5)), ctx(1, derInt(11)), bad])))
    assert.deepEqual(classifyKdcReply(rep), { kind: 'as-rep' })
    const tgs = der(0x6d, der(0x30, Buffer.concat([ctx(1, derInt(13)), ctx(0, derInt(5))])))
    assert.deepEqual(classifyKdcReply(tgs), { kind: 'tgs-rep' }, 'any field order')
  })

  test('any bytes: a verdict, never a throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const info = classifyKdcReply(Buffer.from(bytes))
        assert.ok(info === undefined || typeof info.kind === 'string')
      }),
      { numRuns: 2000 },
    )
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 255 }), (i, b) => {
        const bytes = Buffer.from(krbError(24))
        bytes[i % bytes.length] = b
        classifyKdcReply(bytes)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('parseKdcAddress', () => {
  test('host, host:port, [v6]:port, bare v6', () => {
    assert.deepEqual(parseKdcAddress('KDC1.Example.org'), {
      host: 'kdc1.example.org',
      port: 88,
      family: 0,
      key: 'kdc1.example.org:88',
    })
    assert.equal(parseKdcAddress('10.0.0.1:750').key, '10.0.0.1:750')
    assert.equal(parseKdcAddress('10.0.0.1:750').family, 4)
    assert.deepEqual(parseKdcAddress('[2001:db8::1]:88'), {
      host: '2001:db8::1',
      port: 88,
      family: 6,
      key: '[2001:db8::1]:88',
    })
    assert.equal(parseKdcAddress('[::1]').key, '[::1]:88')
    assert.equal(parseKdcAddress('::1').key, '[::1]:88')
  })

  test('bad addresses are configuration errors', () => {
    for (const bad of [
      '',
      'host:',
      'host:0',
      'host:65536',
      'host:x',
      '[::1',
      '[::1]x',
      '[kdc]:88',
      'a b',
      'https://kdc/x',
      'a:b:c',
    ]) {
      assert.throws(
        () => parseKdcAddress(bad),
        (e) => isSaslgateError(e, 'SASLGATE_ERR_CONFIG'),
        bad,
      )
    }
  })
})

// ---------------------------------------------------------------- transport

describe('KdcClient', () => {
  test('defaults are the documented ones', () => {
    assert.equal(DEFAULT_TRANSPORT_OPTIONS.udpAttemptTimeoutMs, 400)
    assert.equal(DEFAULT_TRANSPORT_OPTIONS.tcpAttemptTimeoutMs, 1000)
    assert.equal(DEFAULT_TRANSPORT_OPTIONS.udpPreferenceLimit, 1465)
    assert.equal(DEFAULT_TRANSPORT_OPTIONS.passes, 2)
    assert.equal(DEFAULT_TRANSPORT_OPTIONS.maxReplyBytes, 65536)
    assert.equal(DEFAULT_TRANSPORT_OPTIONS.breaker.resetTimeoutMs, 5000)
  })

  test('bad options and unknown realms', async (t) => {
    assert.throws(() => new KdcClient({ realms: { R: ['x y'] } }), /bad KDC address/)
    assert.throws(
      () => new KdcClient({ realms: {}, udpAttemptTimeoutMs: 0 }),
      (e) => isSaslgateError(e, 'SASLGATE_ERR_CONFIG') && /udpAttemptTimeoutMs/.test(e.message),
    )
    const { c } = client(t, { realms: { EMPTY: [] } })
    await rejectsWith(c.send('NOPE', REQUEST, { signal: signal() }), 'SASLGATE_ERR_NO_KDC')
    await rejectsWith(c.send('EMPTY', REQUEST, { signal: signal() }), 'SASLGATE_ERR_NO_KDC')
    const aborted = AbortSignal.abort()
    await rejectsWith(c.send('EMPTY', REQUEST, { signal: aborted }), 'SASLGATE_ERR_ABORTED')
  })

  test('a KDC answering over UDP', async (t) => {
    const kdc = await startFake()
    const { c, events } = client(t, { realms: { R: [kdc.kdc] } })
    const r = await c.send('R', REQUEST, { signal: signal() })
    assert.deepEqual(r.reply, WRONG_PASSWORD)
    assert.equal(r.kdc, kdc.kdc)
    assert.equal(r.protocol, 'udp')
    assert.equal(r.attempt, 1)
    assert.deepEqual(kdc.udpRequests, [REQUEST])
    assert.equal(events.length, 1)
    assert.equal(events[0]!.outcome, 'reply')
    assert.equal(events[0]!.realm, 'R')
  })

  test('a hostname is resolved (localhost, from /etc/hosts)', async (t) => {
    const { address } = await dns.promises.lookup('localhost')
    const kdc = await startFake({}, address)
    const { c } = client(t, { realms: { R: [`localhost:${kdc.port}`] } })
    const r = await c.send('R', REQUEST, { signal: signal() })
    assert.equal(r.kdc, `localhost:${kdc.port}`)
    const again = await c.send('R', REQUEST, { signal: signal() })
    assert.equal(again.attempt, 1)
    assert.equal(kdc.udpRequests.length, 2)
  })

  test('black hole: timeout after udpAttemptTimeoutMs, then failover to the next KDC', async (t) => {
    const hole = await startFake({ udpMode: 'blackhole' })
    const good = await startFake()
    const { c, events } = client(t, {
      realms: { R: [hole.kdc, good.kdc] },
      udpAttemptTimeoutMs: 150,
    })
    const t0 = performance.now()
    const r = await c.send('R', REQUEST, { signal: signal() })
    const elapsed = performance.now() - t0
    assert.equal(r.kdc, good.kdc)
    assert.equal(r.attempt, 2)
    assert.ok(elapsed >= 140 && elapsed < 1000, `failover after ${elapsed} ms`)
    assert.deepEqual(
      events.map((e) => [e.kdc, e.outcome]),
      [
        [hole.kdc, 'timeout'],
        [good.kdc, 'reply'],
      ],
    )
  })

  test('black hole only: rejects at the deadline; fs and dns stay fast meanwhile', async (t) => {
    const hole = await startFake({ udpMode: 'blackhole' })
    const { c } = client(t, { realms: { R: [hole.kdc] }, passes: 5 })
    const udpBefore = udpHandles()
    const t0 = performance.now()
    const pending = c.send('R', REQUEST, { signal: AbortSignal.timeout(1000) })
    pending.catch(() => {})
    await sleep(100)
    const f0 = performance.now()
    await readFile(new URL(import.meta.url))
    const fsMs = performance.now() - f0
    const d0 = performance.now()
    await dns.promises.lookup('localhost')
    const dnsMs = performance.now() - d0
    await rejectsWith(pending, 'SASLGATE_ERR_DEADLINE')
    const elapsed = performance.now() - t0
    assert.ok(fsMs < 100, `fs read took ${fsMs} ms while the KDC hangs`)
    assert.ok(dnsMs < 100, `dns.lookup took ${dnsMs} ms while the KDC hangs`)
    assert.ok(elapsed >= 990 && elapsed < 1300, `rejected after ${elapsed} ms`)
    assert.ok(hole.udpRequests.length >= 2, 'the KDC was retried on the second pass')
    await eventually(() => udpHandles() <= udpBefore, 'the UDP socket of the attempt is closed')
  })

  test('black hole with time to spare: KDC_TIMEOUT after the passes', async (t) => {
    const hole = await startFake({ udpMode: 'blackhole' })
    const { c } = client(t, { realms: { R: [hole.kdc] }, udpAttemptTimeoutMs: 100 })
    const t0 = performance.now()
    await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_KDC_TIMEOUT')
    const elapsed = performance.now() - t0
    assert.ok(elapsed >= 190 && elapsed < 1000, `two passes of 100 ms took ${elapsed} ms`)
    assert.equal(hole.udpRequests.length, 2)
  })

  test('the caller aborts: ABORTED at once, socket closed', async (t) => {
    const hole = await startFake({ udpMode: 'blackhole' })
    const { c, events } = client(t, {
      realms: { R: [hole.kdc] },
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 1 },
    })
    const udpBefore = udpHandles()
    const ac = new AbortController()
    const pending = c.send('R', REQUEST, { signal: ac.signal })
    await eventually(() => hole.udpRequests.length === 1, 'the request reached the fake')
    const t0 = performance.now()
    ac.abort()
    await rejectsWith(pending, 'SASLGATE_ERR_ABORTED')
    assert.ok(performance.now() - t0 < 50)
    assert.equal(events.at(-1)?.outcome, 'aborted')
    await eventually(() => udpHandles() <= udpBefore, 'the UDP socket is closed')
    await sleep(10)
    assert.equal(c.breakerStates()[hole.kdc], 'closed', 'an aborted attempt does not count')
  })

  test('a refused port fails over at once (ICMP on a connected socket)', async (t) => {
    const refused = await refusedPort()
    const good = await startFake()
    const { c, events } = client(t, {
      realms: { R: [refused, good.kdc] },
      udpAttemptTimeoutMs: 2000,
      breaker: { volumeThreshold: 1000 }, // keep trying the refusing KDC
    })
    await c.send('R', REQUEST, { signal: signal() }) // warm up
    // The machine is shared: take the best of a few sends for the 50 ms figure, and require
    // every one to stay far below the 2 s attempt timeout.
    const times: number[] = []
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now()
      const r = await c.send('R', REQUEST, { signal: signal() })
      times.push(performance.now() - t0)
      assert.equal(r.kdc, good.kdc)
      assert.equal(r.attempt, 2)
      assert.equal(events.at(-2)?.outcome, 'refused')
    }
    assert.ok(Math.min(...times) < 50, `failover took ${times.join(', ')} ms`)
    assert.ok(Math.max(...times) < 1000, `failover took ${times.join(', ')} ms`)
  })

  test('RESPONSE_TOO_BIG over UDP: same request, same KDC, over TCP', async (t) => {
    const kdc = await startFake({ udpMode: 'too-big', tcpReply: asRep(3000) })
    const other = await startFake()
    const { c, events } = client(t, { realms: { R: [kdc.kdc, other.kdc] } })
    const r = await c.send('R', REQUEST, { signal: signal() })
    assert.equal(r.protocol, 'tcp')
    assert.equal(r.kdc, kdc.kdc)
    assert.equal(r.attempt, 2)
    assert.deepEqual(r.reply, asRep(3000))
    assert.deepEqual(kdc.tcpRequests, [REQUEST])
    assert.deepEqual(
      events.map((e) => [e.protocol, e.outcome]),
      [
        ['udp', 'too_big'],
        ['tcp', 'reply'],
      ],
    )
    assert.equal(other.udpRequests.length + other.tcpRequests.length, 0)
  })

  test('TCP: length-prefixed reply arriving in pieces', async (t) => {
    const kdc = await startFake({ tcpMode: 'split', tcpReply: asRep(40) })
    const { c } = client(t, { realms: { R: [kdc.kdc] } })
    const r = await c.send('R', REQUEST, { signal: signal(), tcp: true })
    assert.equal(r.protocol, 'tcp')
    assert.deepEqual(r.reply, asRep(40))
    assert.equal(kdc.udpRequests.length, 0)
  })

  test('TCP: a length prefix above maxReplyBytes is refused', async (t) => {
    const kdc = await startFake({ tcpMode: 'huge-length' })
    const { c, events } = client(t, { realms: { R: [kdc.kdc] }, passes: 1 })
    const tcpBefore = tcpHandles()
    await rejectsWith(
      c.send('R', REQUEST, { signal: signal(), tcp: true }),
      'SASLGATE_ERR_KDC_UNREACHABLE',
    )
    assert.deepEqual(
      events.map((e) => [e.outcome, e.detail]),
      [['error', 'bad_length']],
    )
    await eventually(() => tcpHandles() <= tcpBefore, 'the TCP socket is closed')
  })

  test('TCP: a black hole times out after tcpAttemptTimeoutMs', async (t) => {
    const kdc = await startFake({ tcpMode: 'blackhole' })
    const { c } = client(t, { realms: { R: [kdc.kdc] }, passes: 1, tcpAttemptTimeoutMs: 150 })
    const t0 = performance.now()
    await rejectsWith(
      c.send('R', REQUEST, { signal: signal(), tcp: true }),
      'SASLGATE_ERR_KDC_TIMEOUT',
    )
    assert.ok(performance.now() - t0 >= 140)
  })

  test('a request above udpPreferenceLimit goes over TCP first', async (t) => {
    const kdc = await startFake()
    const { c } = client(t, { realms: { R: [kdc.kdc] } })
    const big = Buffer.alloc(DEFAULT_TRANSPORT_OPTIONS.udpPreferenceLimit + 1, 1)
    const r = await c.send('R', big, { signal: signal() })
    assert.equal(r.protocol, 'tcp')
    assert.deepEqual(kdc.tcpRequests, [big])
    assert.equal(kdc.udpRequests.length, 0)
    const small = await c.send('R', REQUEST, { signal: signal() })
    assert.equal(small.protocol, 'udp')
  })

  test('garbage datagrams are ignored while a real reply may still come', async (t) => {
    const kdc = await startFake({ udpMode: 'garbage-then-answer' })
    const { c } = client(t, { realms: { R: [kdc.kdc] } })
    const r = await c.send('R', REQUEST, { signal: signal() })
    assert.deepEqual(r.reply, WRONG_PASSWORD)
  })

  test('garbage only: a failure after the attempt timeout', async (t) => {
    const kdc = await startFake({ udpMode: 'garbage' })
    const { c, events } = client(t, {
      realms: { R: [kdc.kdc] },
      passes: 1,
      udpAttemptTimeoutMs: 100,
    })
    const t0 = performance.now()
    await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_KDC_UNREACHABLE')
    assert.ok(performance.now() - t0 >= 90, 'kept waiting for a real reply')
    assert.deepEqual(
      events.map((e) => [e.outcome, e.detail]),
      [['error', 'bad_reply']],
    )
  })

  test('a reply from another source port is not accepted', async (t) => {
    const kdc = await startFake({ udpMode: 'spoof' })
    const { c } = client(t, { realms: { R: [kdc.kdc] }, passes: 1, udpAttemptTimeoutMs: 150 })
    await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_KDC_TIMEOUT')
    assert.equal(kdc.udpRequests.length, 1)
  })

  test('preferKdc is tried first', async (t) => {
    const a = await startFake()
    const b = await startFake()
    const { c } = client(t, { realms: { R: [a.kdc, b.kdc] } })
    const r = await c.send('R', REQUEST, { signal: signal(), preferKdc: b.kdc })
    assert.equal(r.kdc, b.kdc)
    assert.equal(a.udpRequests.length, 0)
  })

  test('primaryOnly sends go to the primaries only; isPrimary names them', async (t) => {
    const replica = await startFake()
    const primary = await startFake()
    const outside = await startFake() // a primary that is not in the realm's KDC list
    const { c } = client(t, {
      realms: { R: [replica.kdc, primary.kdc], NOPRIMARY: [replica.kdc] },
      primaries: { R: [outside.kdc, primary.kdc] },
    })
    assert.equal((await c.send('R', REQUEST, { signal: signal() })).kdc, replica.kdc)
    const r = await c.send('R', REQUEST, {
      signal: signal(),
      primaryOnly: true,
      preferKdc: replica.kdc, // not a primary: ignored
    })
    assert.equal(r.kdc, outside.kdc)
    assert.equal(replica.udpRequests.length, 1)
    assert.equal(c.isPrimary('R', primary.kdc), true)
    assert.equal(c.isPrimary('R', outside.kdc), true)
    assert.equal(c.isPrimary('R', replica.kdc), false)
    assert.equal(c.isPrimary('NOPRIMARY', replica.kdc), undefined)
    await rejectsWith(
      c.send('NOPRIMARY', REQUEST, { signal: signal(), primaryOnly: true }),
      'SASLGATE_ERR_NO_KDC',
    )
    // The primaries have breakers of their own (a gauge each).
    assert.ok(outside.kdc in c.breakerStates())
  })
})

describe('KdcClient breakers', () => {
  test('open after volumeThreshold transport failures; the KDC is then skipped', async (t) => {
    const hole = await startFake({ udpMode: 'blackhole' })
    const good = await startFake()
    const { c, changes } = client(t, {
      realms: { R: [hole.kdc, good.kdc] },
      udpAttemptTimeoutMs: 60,
      passes: 1,
      breaker: { volumeThreshold: 3, resetTimeoutMs: 60000 },
    })
    for (let i = 0; i < 3; i++) {
      const r = await c.send('R', REQUEST, { signal: signal() })
      assert.equal(r.attempt, 2)
    }
    await eventually(() => c.breakerStates()[hole.kdc] === 'open', 'the breaker opened')
    assert.deepEqual(changes, [{ kdc: hole.kdc, state: 'open' }])
    assert.equal(c.allOpen('R'), false)
    const t0 = performance.now()
    const r = await c.send('R', REQUEST, { signal: signal() })
    assert.ok(performance.now() - t0 < 50, 'no time spent on the open KDC')
    assert.equal(r.kdc, good.kdc)
    assert.equal(r.attempt, 1)
    assert.equal(hole.udpRequests.length, 3)
  })

  test('KRB-ERROR replies (wrong passwords) never open a breaker', async (t) => {
    const kdc = await startFake({ udpReply: krbError(24) })
    const { c, changes } = client(t, {
      realms: { R: [kdc.kdc] },
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 1 },
    })
    for (let i = 0; i < 20; i++) {
      const r = await c.send('R', REQUEST, { signal: signal() })
      assert.equal(krbErrorCode(r.reply), 24)
    }
    await sleep(10)
    assert.equal(c.breakerStates()[kdc.kdc], 'closed')
    assert.deepEqual(changes, [])
  })

  test('every breaker open: BREAKERS_OPEN at once, allOpen true', async (t) => {
    const refused = await refusedPort()
    const { c } = client(t, {
      realms: { R: [refused] },
      passes: 1,
      breaker: { volumeThreshold: 2, resetTimeoutMs: 60000 },
    })
    for (let i = 0; i < 2; i++) {
      await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_KDC_UNREACHABLE')
    }
    await eventually(() => c.allOpen('R'), 'allOpen')
    const t0 = performance.now()
    await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_BREAKERS_OPEN')
    assert.ok(performance.now() - t0 < 20)
    assert.deepEqual(c.breakerStates(), { [refused]: 'open' })
  })

  test('after resetTimeoutMs one probe goes through and closes the breaker', async (t) => {
    const kdc = await startFake({ udpMode: 'blackhole' })
    const { c, changes } = client(t, {
      realms: { R: [kdc.kdc] },
      udpAttemptTimeoutMs: 50,
      passes: 1,
      breaker: { volumeThreshold: 2, resetTimeoutMs: 300 },
    })
    for (let i = 0; i < 2; i++) {
      await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_KDC_TIMEOUT')
    }
    await eventually(() => c.allOpen('R'), 'open')
    await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_BREAKERS_OPEN')

    // The KDC comes back, slowly: the probe is under way while a second request arrives.
    kdc.udpMode = 'answer'
    kdc.delayMs = 30
    await eventually(() => c.breakerStates()[kdc.kdc] === 'halfOpen', 'half-open', 2000)
    assert.equal(c.allOpen('R'), false, 'a free probe slot is not offline mode')
    const probe = c.send('R', REQUEST, { signal: signal() })
    assert.equal(c.allOpen('R'), true, 'while the probe is out, others stay offline')
    await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_BREAKERS_OPEN')
    const r = await probe
    assert.equal(r.attempt, 1)
    await eventually(() => c.breakerStates()[kdc.kdc] === 'closed', 'closed again')
    assert.deepEqual(
      changes.map((e) => e.state),
      ['open', 'halfOpen', 'closed'],
    )
    await c.send('R', REQUEST, { signal: signal() })
  })

  test('a failed probe opens the breaker again', async (t) => {
    const refused = await refusedPort()
    const { c, changes } = client(t, {
      realms: { R: [refused] },
      passes: 1,
      breaker: { volumeThreshold: 1, resetTimeoutMs: 100 },
    })
    await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_KDC_UNREACHABLE')
    await eventually(() => c.breakerStates()[refused] === 'halfOpen', 'half-open', 2000)
    await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_KDC_UNREACHABLE')
    await eventually(() => c.breakerStates()[refused] === 'open', 'open again')
    assert.deepEqual(
      changes.map((e) => e.state),
      ['open', 'halfOpen', 'open'],
    )
  })
})

describe('KdcClient close', () => {
  test('close() ends sends under way, is idempotent, and leaves no socket', async () => {
    const hole = await startFake({ udpMode: 'blackhole', tcpMode: 'blackhole' })
    const udpBefore = udpHandles()
    const tcpBefore = tcpHandles()
    const c = new KdcClient({ realms: { R: [hole.kdc] } })
    const viaUdp = c.send('R', REQUEST, { signal: signal() })
    const viaTcp = c.send('R', REQUEST, { signal: signal(), tcp: true })
    await eventually(
      () => hole.udpRequests.length === 1 && hole.tcpRequests.length === 1,
      'both requests reached the fake',
    )
    const t0 = performance.now()
    await Promise.all([c.close(), c.close()])
    await rejectsWith(viaUdp, 'SASLGATE_ERR_CLOSED')
    await rejectsWith(viaTcp, 'SASLGATE_ERR_CLOSED')
    assert.ok(performance.now() - t0 < 50)
    await c.close()
    await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_CLOSED')
    assert.equal(c.allOpen('R'), false)
    assert.deepEqual(c.breakerStates(), {})
    await eventually(() => udpHandles() <= udpBefore && tcpHandles() <= tcpBefore, 'sockets closed')
  })
})

describe('KdcClient: KDC_ERR_SVC_UNAVAILABLE (error 29)', () => {
  test('fails over to the next KDC and counts against the one that said it', async (t) => {
    const sick = await startFake({ udpReply: krbError(29), tcpReply: krbError(29) })
    const good = await startFake()
    const { c, events } = client(t, {
      realms: { R: [sick.kdc, good.kdc] },
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 60_000 },
    })
    const r = await c.send('R', REQUEST, { signal: signal() })
    assert.equal(r.kdc, good.kdc)
    assert.deepEqual(r.reply, WRONG_PASSWORD)
    assert.deepEqual(
      events.map((e) => [e.kdc, e.outcome, e.detail]),
      [
        [sick.kdc, 'error', 'svc_unavailable'],
        [good.kdc, 'reply', undefined],
      ],
    )
    await eventually(() => c.breakerStates()[sick.kdc] === 'open', 'the sick KDC is open')
    assert.equal(c.breakerStates()[good.kdc], 'closed')
    // over TCP too
    const viaTcp = await c.send('R', REQUEST, { signal: signal(), tcp: true })
    assert.equal(viaTcp.kdc, good.kdc)
  })

  test('every KDC says 29: no reply for the caller, a transport failure', async (t) => {
    const a = await startFake({ udpReply: krbError(29) })
    const b = await startFake({ udpReply: krbError(29) })
    const { c } = client(t, { realms: { R: [a.kdc, b.kdc] }, passes: 1 })
    const err = await rejectsWith(
      c.send('R', REQUEST, { signal: signal() }),
      'SASLGATE_ERR_KDC_UNREACHABLE',
    )
    assert.match(err.message, /2 svc_unavailable/)
    assert.equal(a.udpRequests.length + b.udpRequests.length, 2)
  })
})

describe('KdcClient: a UDP reply after its attempt timed out', () => {
  /** A KDC that answers request `which` (1-based) only when `release()` holds. */
  async function heldKdc(t: { after(fn: () => Promise<void>): void }) {
    const socket = await bindUdp(0, '127.0.0.1')
    t.after(() => new Promise<void>((r) => socket.close(() => r())))
    const senders: dgram.RemoteInfo[] = []
    socket.on('message', (_msg, rinfo) => senders.push(rinfo))
    const { port } = socket.address()
    return {
      kdc: `127.0.0.1:${port}`,
      senders,
      answer(which: number) {
        const to = senders[which - 1]!
        socket.send(WRONG_PASSWORD, to.port, to.address)
      },
    }
  }

  test('is taken while a later attempt waits (another KDC); that KDC is not charged', async (t) => {
    const slow = await heldKdc(t)
    const hole = await startFake({ udpMode: 'blackhole' })
    const { c, events } = client(t, {
      realms: { R: [slow.kdc, hole.kdc] },
      udpAttemptTimeoutMs: 300,
      passes: 1,
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 60_000 },
    })
    const udpBefore = udpHandles()
    const pending = c.send('R', REQUEST, { signal: signal() })
    // The slow KDC answers its (timed-out) request once the next KDC has been asked.
    await eventually(() => hole.udpRequests.length === 1, 'the second KDC was asked')
    slow.answer(1)
    const r = await pending
    assert.equal(r.kdc, slow.kdc, 'the slow KDC answered, late')
    assert.equal(r.attempt, 1)
    assert.deepEqual(r.reply, WRONG_PASSWORD)
    assert.deepEqual(
      events.map((e) => [e.kdc, e.outcome]),
      [
        [slow.kdc, 'timeout'],
        [hole.kdc, 'late_reply'],
      ],
    )
    await sleep(20)
    assert.equal(c.breakerStates()[hole.kdc], 'closed', 'cut short by a late reply: neutral')
    await eventually(() => udpHandles() <= udpBefore, 'every socket of the send is closed')
  })

  test('is taken on the same KDC (second pass); every socket closes when the send settles', async (t) => {
    const slow = await heldKdc(t)
    const { c } = client(t, { realms: { R: [slow.kdc] }, udpAttemptTimeoutMs: 300, passes: 3 })
    const udpBefore = udpHandles()
    const pending = c.send('R', REQUEST, { signal: signal() })
    await eventually(() => slow.senders.length === 2, 'a second attempt went out')
    slow.answer(1) // to the first attempt's socket
    const r = await pending
    assert.equal(r.attempt, 1, 'the first attempt answered')
    assert.notEqual(slow.senders[0]!.port, slow.senders[1]!.port, 'from its own socket')
    await eventually(() => udpHandles() <= udpBefore, 'both sockets closed')
  })

  test('without a late reply the send still fails after its passes and closes its sockets', async (t) => {
    const hole = await startFake({ udpMode: 'blackhole' })
    const { c } = client(t, { realms: { R: [hole.kdc] }, udpAttemptTimeoutMs: 60, passes: 3 })
    const udpBefore = udpHandles()
    await rejectsWith(c.send('R', REQUEST, { signal: signal() }), 'SASLGATE_ERR_KDC_TIMEOUT')
    assert.equal(hole.udpRequests.length, 3)
    await eventually(() => udpHandles() <= udpBefore, 'all three sockets closed')
  })
})

describe('KdcClient: host names (hosts file, then c-ares; never getaddrinfo)', () => {
  const dnsFakes: FakeDns[] = []
  after(async () => {
    for (const d of dnsFakes) await d.close()
  })
  async function fakeDns(records: Record<string, string>): Promise<FakeDns> {
    const d = await startFakeDns(records)
    dnsFakes.push(d)
    return d
  }

  test('a slow resolver skips the KDC without tripping its breaker; the answer is used later', async (t) => {
    const named = await startFake({ udpReply: asRep() })
    const good = await startFake()
    const dnsServer = await fakeDns({ 'kdc.saslgate.test': '127.0.0.1' })
    dnsServer.delayMs = 400
    const { c, events } = client(t, {
      realms: { R: [`kdc.saslgate.test:${named.port}`, good.kdc] },
      udpAttemptTimeoutMs: 100,
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 60_000 },
      dns: { servers: [dnsServer.server], hostsFile: '', timeoutMs: 2000, tries: 1 },
    })
    for (let i = 0; i < 3; i++) {
      const r = await c.send('R', REQUEST, { signal: signal() })
      assert.equal(r.kdc, good.kdc)
    }
    assert.ok(
      events.some((e) => e.outcome === 'error' && e.detail === 'dns'),
      'the slow name was skipped',
    )
    assert.equal(named.udpRequests.length, 0)
    assert.equal(dnsServer.queries.length, 1, 'one look-up at a time, not one per send')
    await sleep(20)
    assert.equal(c.breakerStates()[`kdc.saslgate.test:${named.port}`], 'closed')
    await eventually(() => c.dnsLookups() === 1 && dnsServer.queries.length === 1, 'asked once')
    // Once the answer came (after 400 ms), the named KDC is used.
    let r = await c.send('R', REQUEST, { signal: signal() })
    for (let i = 0; i < 40 && r.kdc !== `kdc.saslgate.test:${named.port}`; i++) {
      await sleep(50)
      r = await c.send('R', REQUEST, { signal: signal() })
    }
    assert.equal(r.kdc, `kdc.saslgate.test:${named.port}`)
    assert.deepEqual(r.reply, asRep())
  })

  test('a stale answer is served at once while one refresh runs; failures are cached', async (t) => {
    const named = await startFake()
    const dnsServer = await fakeDns({ 'kdc.saslgate.test': '127.0.0.1' })
    const kdc = `kdc.saslgate.test:${named.port}`
    const { c, events } = client(t, {
      realms: { R: [kdc], NOPE: [`nope.saslgate.test:${named.port}`] },
      udpAttemptTimeoutMs: 300,
      passes: 1,
      dns: {
        servers: [dnsServer.server],
        hostsFile: '',
        ttlMs: 50,
        staleMs: 60_000,
        negativeTtlMs: 60_000,
        timeoutMs: 150,
        tries: 1,
      },
    })
    assert.equal((await c.send('R', REQUEST, { signal: signal() })).kdc, kdc)
    assert.equal(dnsServer.queries.length, 1)
    await sleep(80) // the answer is stale now
    dnsServer.blackhole = true
    // The resolver is dead now: only the stale answer can get this send through.
    const stale = await c.send('R', REQUEST, { signal: signal() })
    assert.equal(stale.kdc, kdc)
    assert.equal(dnsServer.queries.length, 2, 'one refresh in the background')
    await sleep(250) // the refresh timed out; the failure is remembered, the old answer kept
    for (let i = 0; i < 3; i++)
      assert.equal((await c.send('R', REQUEST, { signal: signal() })).kdc, kdc)
    assert.equal(dnsServer.queries.length, 2, 'no refresh storm while the resolver is dead')
    // A name that does not exist: asked once, then answered from memory.
    dnsServer.blackhole = false
    await rejectsWith(c.send('NOPE', REQUEST, { signal: signal() }), 'SASLGATE_ERR_KDC_UNREACHABLE')
    await rejectsWith(c.send('NOPE', REQUEST, { signal: signal() }), 'SASLGATE_ERR_KDC_UNREACHABLE')
    assert.equal(dnsServer.queries.filter((q) => q === 'nope.saslgate.test').length, 1)
    assert.equal(events.filter((e) => e.detail === 'dns').length, 2)
  })

  test('the hosts file is read first; IP literals never reach the resolver', async (t) => {
    const named = await startFake()
    const dnsServer = await fakeDns({})
    const dir = await mkdtemp(join(tmpdir(), 'saslgate-hosts-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const hostsFile = join(dir, 'hosts')
    await writeFile(hostsFile, '# test\n::1 other.test\n127.0.0.1\tkdc-hosts.test alias.test # x\n')
    const { c } = client(t, {
      realms: { R: [`kdc-hosts.test:${named.port}`], IP: [named.kdc] },
      dns: { servers: [dnsServer.server], hostsFile },
    })
    assert.equal(
      (await c.send('R', REQUEST, { signal: signal() })).kdc,
      `kdc-hosts.test:${named.port}`,
    )
    assert.deepEqual(dnsServer.queries, [])
    const before = c.dnsLookups()
    await c.send('IP', REQUEST, { signal: signal() })
    assert.equal(c.dnsLookups(), before)
  })
})
