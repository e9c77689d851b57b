/**
 * Misbehaving KDCs for transport tests: one that never answers, one that refuses, and a
 * UDP+TCP proxy in front of a real KDC that delays or swallows replies on demand.
 *
 * Plain async code, no test-framework imports. Everything binds 127.0.0.1 only.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram'
import { connect, type Socket as TcpSocket } from 'node:net'
import { SaslgateError } from '../errors.js'
import { closePair, freePort, listenUdpAndTcp } from './ports.js'

export const DEFAULT_FAKE_KDC_OPTIONS = {
  host: '127.0.0.1',
  /** Proxy: an upstream UDP socket waiting for the target's reply is dropped after this. */
  upstreamIdleMs: 30_000,
  /** Proxy: a TCP request frame larger than this closes the connection (Kerberos: 4 KB-64 KB). */
  maxTcpFrameBytes: 1 << 20,
}

// ---------------------------------------------------------------------------------------------
// Black hole

export interface BlackholeKdc {
  readonly host: string
  readonly port: number
  /** UDP datagrams received (none is ever answered). */
  readonly udpPacketsReceived: number
  /** TCP connections accepted (never answered, held open until close). */
  readonly tcpConnections: number
  close(): Promise<void>
}

/** Binds UDP and TCP on one port of 127.0.0.1, reads everything, answers nothing. */
export async function startBlackholeKdc(): Promise<BlackholeKdc> {
  const sockets = new Set<TcpSocket>()
  let udpPacketsReceived = 0
  let tcpConnections = 0
  const pair = await listenUdpAndTcp((socket) => {
    tcpConnections++
    sockets.add(socket)
    socket.on('data', () => {}) // read and drop
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  pair.udp.on('message', () => {
    udpPacketsReceived++
  })
  let closing: Promise<void> | undefined
  return {
    host: pair.host,
    port: pair.port,
    get udpPacketsReceived() {
      return udpPacketsReceived
    },
    get tcpConnections() {
      return tcpConnections
    },
    close() {
      closing ??= (async () => {
        for (const s of sockets) s.destroy()
        await closePair(pair)
      })()
      return closing
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Refusing

export interface RefusingKdc {
  readonly host: string
  /** Nothing listens here: UDP gets ICMP port-unreachable, TCP gets ECONNREFUSED. */
  readonly port: number
  close(): Promise<void>
}

/**
 * A port with nothing listening on UDP or TCP. Nothing holds it either, so another process could
 * take it later; on a test machine that is rare enough.
 */
export async function startRefusingKdc(): Promise<RefusingKdc> {
  const port = await freePort()
  return { host: DEFAULT_FAKE_KDC_OPTIONS.host, port, close: async () => {} }
}

// ---------------------------------------------------------------------------------------------
// Delay proxy

export interface DelayProxyOptions {
  target: { host: string; port: number }
  /** Delay added before relaying each reply (read when the reply arrives). */
  delayMs?: number
  upstreamIdleMs?: number
  maxTcpFrameBytes?: number
}

export interface DelayProxy {
  readonly host: string
  readonly port: number
  /** Requests received: UDP datagrams plus complete TCP request frames (also when swallowed). */
  readonly requests: number
  readonly udpRequests: number
  readonly tcpRequests: number
  /** Replies relayed back to clients. */
  readonly repliesRelayed: number
  setDelay(ms: number): void
  /** While true, every request and reply is swallowed (nothing forwarded, nothing answered). */
  setBlackhole(on: boolean): void
  close(): Promise<void>
}

/** A UDP+TCP proxy on a new port of 127.0.0.1 in front of `target`, with settable delay. */
export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const proxy = new DelayProxyImpl(options)
  await proxy.listen()
  return proxy
}

function checkDelay(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', 'delay proxy option delayMs must be >= 0')
  }
  return ms
}

class DelayProxyImpl implements DelayProxy {
  host: string = DEFAULT_FAKE_KDC_OPTIONS.host
  port = 0
  udpRequests = 0
  tcpRequests = 0
  repliesRelayed = 0
  private delayMs: number
  private blackhole = false
  private closed = false
  private closing: Promise<void> | undefined
  private pair: Awaited<ReturnType<typeof listenUdpAndTcp>> | undefined
  private readonly target: { host: string; port: number }
  private readonly upstreamIdleMs: number
  private readonly maxTcpFrameBytes: number
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly upstreamUdp = new Map<UdpSocket, NodeJS.Timeout>()
  private readonly tcpSockets = new Set<TcpSocket>()

  constructor(options: DelayProxyOptions) {
    this.target = { ...options.target }
    this.delayMs = checkDelay(options.delayMs ?? 0)
    this.upstreamIdleMs = options.upstreamIdleMs ?? DEFAULT_FAKE_KDC_OPTIONS.upstreamIdleMs
    this.maxTcpFrameBytes = options.maxTcpFrameBytes ?? DEFAULT_FAKE_KDC_OPTIONS.maxTcpFrameBytes
  }

  get requests(): number {
    return this.udpRequests + this.tcpRequests
  }

  setDelay(ms: number): void {
    this.delayMs = checkDelay(ms)
  }

  setBlackhole(on: boolean): void {
    this.blackhole = on
  }

  async listen(): Promise<void> {
    const pair = await listenUdpAndTcp((client) => this.onTcpClient(client))
    this.pair = pair
    this.host = pair.host
    this.port = pair.port
    pair.udp.on('message', (msg, rinfo) => this.onUdpRequest(pair.udp, msg, rinfo))
  }

  /** Runs `fn` after the current delay; never after close. */
  private later(fn: () => void, delayMs = this.delayMs): void {
    if (this.closed) return
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      if (!this.closed) fn()
    }, delayMs)
    timer.unref()
    this.timers.add(timer)
  }

  // -- UDP: one upstream socket per request, dropped after the reply or when idle ----------------

  private onUdpRequest(server: UdpSocket, msg: Buffer, client: RemoteInfo): void {
    this.udpRequests++
    if (this.blackhole || this.closed) return
    const upstream = createSocket(this.target.host.includes(':') ? 'udp6' : 'udp4')
    const done = () => {
      const idle = this.upstreamUdp.get(upstream)
      if (idle === undefined) return
      this.upstreamUdp.delete(upstream)
      clearTimeout(idle)
      upstream.close()
    }
    const idle = setTimeout(done, this.upstreamIdleMs)
    idle.unref()
    this.upstreamUdp.set(upstream, idle)
    upstream.on('error', done) // e.g. ICMP refused from a stopped target: the client times out
    upstream.on('message', (reply) => {
      done()
      if (this.blackhole) return
      this.later(() => {
        if (this.blackhole) return
        this.repliesRelayed++
        server.send(reply, client.port, client.address)
      })
    })
    upstream.send(msg, this.target.port, this.target.host)
  }

  // -- TCP: one upstream connection per client; frames counted, replies delayed in order ---------

  private onTcpClient(client: TcpSocket): void {
    if (this.closed) {
      client.destroy()
      return
    }
    this.tcpSockets.add(client)
    let upstream: TcpSocket | undefined
    let pending = Buffer.alloc(0)
    let releaseAt = 0 // replies on one connection leave in order even if the delay shrinks
    const endClient = () => {
      // after the replies still waiting for their delay
      this.later(() => client.end(), Math.max(0, releaseAt - Date.now()))
    }
    const teardown = () => {
      client.destroy()
      upstream?.destroy()
    }
    client.on('error', teardown)
    client.on('close', () => {
      this.tcpSockets.delete(client)
      upstream?.destroy()
    })
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 4) {
        const length = pending.readUInt32BE(0)
        if (length > this.maxTcpFrameBytes) {
          teardown()
          return
        }
        if (pending.length < 4 + length) break
        const frame = pending.subarray(0, 4 + length)
        pending = pending.subarray(4 + length)
        this.tcpRequests++
        if (this.blackhole) continue
        upstream ??= this.openUpstream(teardown, endClient, (reply) => {
          if (this.blackhole) return
          const at = Math.max(Date.now() + this.delayMs, releaseAt)
          releaseAt = at
          this.later(
            () => {
              if (this.blackhole || client.destroyed) return
              this.repliesRelayed++
              client.write(reply)
            },
            Math.max(0, at - Date.now()),
          )
        })
        upstream.write(frame)
      }
    })
  }

  private openUpstream(
    teardown: () => void,
    onEnd: () => void,
    onReply: (bytes: Buffer) => void,
  ): TcpSocket {
    const upstream = connect({ host: this.target.host, port: this.target.port })
    this.tcpSockets.add(upstream)
    upstream.on('data', onReply)
    upstream.on('error', teardown) // e.g. ECONNREFUSED from a stopped target
    upstream.on('end', onEnd)
    upstream.on('close', () => this.tcpSockets.delete(upstream))
    return upstream
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true
      for (const t of this.timers) clearTimeout(t)
      this.timers.clear()
      for (const [u, idle] of this.upstreamUdp) {
        clearTimeout(idle)
        u.close()
      }
      this.upstreamUdp.clear()
      for (const s of this.tcpSockets) s.destroy()
      this.tcpSockets.clear()
      if (this.pair !== undefined) await closePair(this.pair)
    })()
    return this.closing
  }
}
