/**
 * Ports free for both UDP and TCP on a loopback address (a KDC listens on both, same number).
 *
 * Plain async functions, no test-framework imports: the demo uses them too.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { createServer, type Server, type Socket as TcpSocket } from 'node:net'
import { SaslgateError } from '../errors.js'

export const DEFAULT_PORT_OPTIONS = {
  host: '127.0.0.1',
  /** How many kernel-chosen TCP ports to try before giving up. */
  maxAttempts: 50,
}

export interface PortOptions {
  host?: string
  maxAttempts?: number
}

/** A UDP socket and a listening TCP server bound to the same port. */
export interface UdpTcpPair {
  host: string
  port: number
  udp: UdpSocket
  tcp: Server
}

/**
 * Binds a TCP server (kernel-chosen port) and a UDP socket on the same port, retrying when the
 * UDP side of that number is taken. `onConnection` receives every accepted TCP socket.
 */
export async function listenUdpAndTcp(
  onConnection: (socket: TcpSocket) => void,
  options: PortOptions = {},
): Promise<UdpTcpPair> {
  const host = options.host ?? DEFAULT_PORT_OPTIONS.host
  const maxAttempts = options.maxAttempts ?? DEFAULT_PORT_OPTIONS.maxAttempts
  let lastError: unknown
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const tcp = createServer(onConnection)
    const port = await listenTcp(tcp, host, 0)
    const udp = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' })
    try {
      await bindUdp(udp, host, port)
      return { host, port, udp, tcp }
    } catch (err) {
      lastError = err
      udp.close()
      await closeServer(tcp)
    }
  }
  throw new SaslgateError(
    'SASLGATE_ERR_TEST_REALM',
    `no port free for both UDP and TCP on ${host} after ${maxAttempts} attempts`,
    { cause: lastError },
  )
}

/** A port that was free for both UDP and TCP on 127.0.0.1 a moment ago (nothing holds it now). */
export async function freePort(options: PortOptions = {}): Promise<number> {
  const pair = await listenUdpAndTcp((socket) => socket.destroy(), options)
  await closePair(pair)
  return pair.port
}

/** Closes both halves of a pair (the TCP server waits for its connections to be destroyed). */
export async function closePair(pair: UdpTcpPair): Promise<void> {
  await Promise.all([closeUdp(pair.udp), closeServer(pair.tcp)])
}

function listenTcp(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject)
      const address = server.address()
      if (address === null || typeof address === 'string') {
        reject(new SaslgateError('SASLGATE_ERR_TEST_REALM', 'TCP server has no port'))
        return
      }
      resolve(address.port)
    })
  })
}

function bindUdp(socket: UdpSocket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off('error', reject)
      resolve()
    })
  })
}

function closeUdp(socket: UdpSocket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve())
    } catch {
      resolve() // already closed
    }
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve()
      return
    }
    server.close(() => resolve())
  })
}
