import assert from 'node:assert/strict'
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { once } from 'node:events'
import { connect, createServer, type Socket as TcpSocket } from 'node:net'
import { describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startBlackholeKdc, startDelayProxy, startRefusingKdc } from '../../src/testing/fake-kdc.js'
import { closePair, freePort, listenUdpAndTcp } from '../../src/testing/ports.js'

const HOST = '127.0.0.1'

/** Waits until `cond()` holds, polling; bounded by `timeoutMs`. */
async function until(cond: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) assert.fail('condition not reached in time')
    await sleep(10)
  }
}

function frame(payload: string): Buffer {
  const body = Buffer.from(payload)
  const head = Buffer.alloc(4)
  head.writeUInt32BE(body.length)
  return Buffer.concat([head, body])
}

/** Resolves with the first datagram, or undefined after `waitMs`. */
async function udpExchange(port: number, payload: string, waitMs: number) {
  const sock = createSocket('udp4')
  try {
    const reply = new Promise<Buffer | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), waitMs)
      sock.once('message', (m) => {
        clearTimeout(t)
        resolve(m)
      })
    })
    sock.send(payload, port, HOST)
    return await reply
  } finally {
    sock.close()
  }
}

/** Connects, writes `data`, collects bytes until `bytes` arrived or `waitMs` passed. */
async function tcpExchange(port: number, data: Buffer, bytes: number, waitMs: number) {
  const sock = connect({ host: HOST, port })
  try {
    await once(sock, 'connect')
    const chunks: Buffer[] = []
    const got = new Promise<Buffer>((resolve) => {
      const t = setTimeout(() => resolve(Buffer.concat(chunks)), waitMs)
      sock.on('data', (c: Buffer) => {
        chunks.push(c)
        const all = Buffer.concat(chunks)
        if (all.length >= bytes) {
          clearTimeout(t)
          resolve(all)
        }
      })
    })
    sock.write(data)
    return await got
  } finally {
    sock.destroy()
  }
}

function connectError(port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ host: HOST, port })
    sock.once('connect', () => {
      sock.destroy()
      resolve('connected')
    })
    sock.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
  })
}

/** A stand-in KDC: UDP echoes "R:"+msg; TCP answers each frame with a frame "R:"+payload. */
async function startEchoKdc() {
  const sockets = new Set<TcpSocket>()
  let udpSeen = 0
  const pair = await listenUdpAndTcp((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    let buf = Buffer.alloc(0)
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c])
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0)
        s.write(frame(`R:${buf.subarray(4, 4 + len).toString()}`))
        buf = buf.subarray(4 + len)
      }
    })
  })
  pair.udp.on('message', (m, r) => {
    udpSeen++
    pair.udp.send(`R:${m.toString()}`, r.port, r.address)
  })
  return {
    port: pair.port,
    get udpSeen() {
      return udpSeen
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await closePair(pair)
    },
  }
}

describe('ports', () => {
  test('freePort gives a port that binds on UDP and TCP', async () => {
    const port = await freePort()
    assert.ok(port > 0 && port < 65536)
    const server = createServer()
    const udp: UdpSocket = createSocket('udp4')
    try {
      await new Promise<void>((res, rej) => server.once('error', rej).listen(port, HOST, res))
      await new Promise<void>((res, rej) => udp.once('error', rej).bind(port, HOST, res))
    } finally {
      udp.close()
      server.close()
    }
  })
})

describe('startBlackholeKdc', () => {
  test('counts UDP packets and TCP connections and never answers', async (t) => {
    const kdc = await startBlackholeKdc()
    t.after(() => kdc.close())
    assert.equal(await udpExchange(kdc.port, 'as-req', 200), undefined)
    await until(() => kdc.udpPacketsReceived === 1)
    const reply = await tcpExchange(kdc.port, frame('as-req'), 1, 200)
    assert.equal(reply.length, 0)
    assert.equal(kdc.tcpConnections, 1)
  })

  test('close releases the port and is idempotent', async () => {
    const kdc = await startBlackholeKdc()
    const held = connect({ host: HOST, port: kdc.port })
    held.on('error', () => {})
    await once(held, 'connect')
    await Promise.all([kdc.close(), kdc.close()])
    await kdc.close()
    assert.equal(await connectError(kdc.port), 'ECONNREFUSED')
    held.destroy()
  })
})

describe('startRefusingKdc', () => {
  test('TCP gets ECONNREFUSED and UDP gets port-unreachable', async (t) => {
    const kdc = await startRefusingKdc()
    t.after(() => kdc.close())
    assert.equal(await connectError(kdc.port), 'ECONNREFUSED')
    // A connected UDP socket reports the ICMP error on a later operation (Linux).
    const sock = createSocket('udp4')
    t.after(() => sock.close())
    await new Promise<void>((res) => sock.connect(kdc.port, HOST, res))
    const errored = once(sock, 'error').then(([e]) => (e as NodeJS.ErrnoException).code)
    sock.send('as-req')
    await sleep(50)
    sock.send('as-req')
    const code = await Promise.race([errored, sleep(2_000).then(() => 'no error')])
    assert.equal(code, 'ECONNREFUSED')
  })
})

describe('startDelayProxy', () => {
  test('relays UDP and TCP, delays, swallows and counts', async (t) => {
    const target = await startEchoKdc()
    t.after(() => target.close())
    const proxy = await startDelayProxy({ target: { host: HOST, port: target.port } })
    t.after(() => proxy.close())

    assert.equal((await udpExchange(proxy.port, 'a', 2_000))?.toString(), 'R:a')
    const two = Buffer.concat([frame('x'), frame('yy')]) // two frames in one write
    const tcp = await tcpExchange(proxy.port, two, 12, 2_000)
    assert.deepEqual(tcp, Buffer.concat([frame('R:x'), frame('R:yy')]))
    assert.equal(proxy.udpRequests, 1)
    assert.equal(proxy.tcpRequests, 2)
    assert.equal(proxy.requests, 3)
    assert.equal(proxy.repliesRelayed >= 2, true)

    proxy.setDelay(300)
    let start = Date.now()
    assert.equal((await udpExchange(proxy.port, 'b', 3_000))?.toString(), 'R:b')
    assert.ok(Date.now() - start >= 250, 'UDP reply came before the delay')
    start = Date.now()
    assert.deepEqual(await tcpExchange(proxy.port, frame('c'), 7, 3_000), frame('R:c'))
    assert.ok(Date.now() - start >= 250, 'TCP reply came before the delay')

    proxy.setDelay(0)
    proxy.setBlackhole(true)
    const seenBefore = target.udpSeen
    assert.equal(await udpExchange(proxy.port, 'd', 300), undefined)
    assert.equal((await tcpExchange(proxy.port, frame('e'), 1, 300)).length, 0)
    assert.equal(target.udpSeen, seenBefore, 'a swallowed request reached the target')
    assert.equal(proxy.requests, 7)

    proxy.setBlackhole(false)
    assert.equal((await udpExchange(proxy.port, 'f', 2_000))?.toString(), 'R:f')
    assert.throws(() => proxy.setDelay(-1), { code: 'SASLGATE_ERR_CONFIG' })
  })

  test('a reply delayed past close is never sent, and close frees the port', async (t) => {
    const target = await startEchoKdc()
    t.after(() => target.close())
    const proxy = await startDelayProxy({
      target: { host: HOST, port: target.port },
      delayMs: 5_000,
    })
    const pending = udpExchange(proxy.port, 'late', 400)
    await until(() => target.udpSeen === 1)
    await proxy.close()
    await proxy.close()
    assert.equal(await pending, undefined)
    assert.equal(await connectError(proxy.port), 'ECONNREFUSED')
  })

  test('a dead target: the client sees no UDP answer and a closed TCP connection', async (t) => {
    const dead = await startRefusingKdc()
    const proxy = await startDelayProxy({ target: { host: HOST, port: dead.port } })
    t.after(() => proxy.close())
    assert.equal(await udpExchange(proxy.port, 'a', 200), undefined)
    const sock = connect({ host: HOST, port: proxy.port })
    sock.on('error', () => {})
    await once(sock, 'connect')
    sock.write(frame('a'))
    await Promise.race([once(sock, 'close'), sleep(2_000).then(() => assert.fail('not closed'))])
    assert.equal(proxy.tcpRequests, 1)
  })
})
