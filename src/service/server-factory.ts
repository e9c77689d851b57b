/**
 * The HTTP servers behind Fastify.
 *
 * With TLS: one `http2.createSecureServer` with `allowHTTP1`, ALPN picks HTTP/2 (gRPC,
 * Connect) or HTTP/1.1 (curl, Connect JSON) per connection.
 *
 * Without TLS Node has no such switch: `http2.createServer` speaks only h2c and
 * `http.createServer` only HTTP/1.1. So the plain server peeks at the first bytes of each
 * connection: the HTTP/2 client preface (`PRI * HTTP/2.0`) goes to an h2c server, anything
 * else to the HTTP/1.1 server. Both call the same Fastify handler, so gRPC over h2c and curl
 * over HTTP/1.1 work on one port.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { SecureServerOptions } from 'node:http2'
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'

type Handler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void

/** Bytes of the HTTP/2 preface that decide the protocol: no HTTP/1 method is `PRI`. */
const H2_PREFACE_START = Buffer.from('PRI * HTTP/2.0')
/** A client that sends nothing within this long is closed (slowloris on the sniffer). */
const SNIFF_TIMEOUT_MS = 10_000

export interface PlainServers {
  /** The server Fastify listens with (HTTP/1.1); it hands h2c connections on. */
  server: http.Server
  h2c: http2.Http2Server
}

/** HTTP/1.1 + h2c on one plain port. */
export function createPlainServers(handler: Handler): PlainServers {
  const server = http.createServer(handler as Parameters<typeof http.createServer>[1])
  const h2c = http2.createServer(handler as Parameters<typeof http2.createServer>[1])
  const [http1Listener] = server.listeners('connection') as Array<(socket: Socket) => void>
  if (http1Listener === undefined) throw new Error('node:http has no connection listener')
  server.removeAllListeners('connection')
  server.on('connection', (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS)
    const decide = (chunk: Buffer) => {
      clearTimeout(timer)
      socket.removeListener('error', onError)
      socket.pause()
      socket.unshift(chunk)
      const n = Math.min(chunk.length, H2_PREFACE_START.length)
      const isH2 = n > 0 && chunk.subarray(0, n).equals(H2_PREFACE_START.subarray(0, n))
      if (isH2) h2c.emit('connection', wrapForHttp2(socket))
      else http1Listener.call(server, socket)
      socket.resume()
    }
    const onError = () => {
      clearTimeout(timer)
      socket.destroy()
    }
    socket.once('data', decide)
    socket.once('error', onError)
  })
  // Closing the listener also has to end h2c sessions, or close() waits for them.
  const close = server.close.bind(server)
  server.close = ((cb?: (err?: Error) => void) => {
    h2c.close()
    return close(cb)
  }) as typeof server.close
  return { server, h2c }
}

/**
 * node:http2 (as of Node 20) takes over a socket's native handle and drops bytes already
 * read into JavaScript, so the sniffed preface would be lost. A plain Duplex around the
 * socket has no handle: node:http2 then reads through it and sees the preface again.
 * Only h2c connections pay this indirection; HTTP/1.1 and TLS connections do not.
 */
function wrapForHttp2(socket: Socket): Duplex {
  const duplex = new Duplex({
    read() {
      socket.resume()
    },
    write(chunk, encoding, callback) {
      socket.write(chunk, encoding, callback)
    },
    final(callback) {
      socket.end(callback)
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined)
      callback(err)
    },
  })
  socket.on('data', (chunk: Buffer) => {
    if (!duplex.push(chunk)) socket.pause()
  })
  socket.on('end', () => duplex.push(null))
  socket.on('close', () => duplex.destroy())
  socket.on('error', (err) => duplex.destroy(err))
  return duplex
}

/** HTTP/2 with HTTP/1.1 fallback over TLS (ALPN). */
export function createSecureServer(
  handler: Handler,
  tls: SecureServerOptions,
): http2.Http2SecureServer {
  return http2.createSecureServer(
    { ...tls, allowHTTP1: true },
    handler as Parameters<typeof http2.createSecureServer>[1],
  )
}
