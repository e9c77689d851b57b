/**
 * The saslgate service: Fastify serving the `proto/saslgate/v1` contract through
 * ConnectRPC (Connect JSON or binary over HTTP/1.1 or HTTP/2, and gRPC over HTTP/2), plus
 * health endpoints. Every RPC needs an authenticated caller; the auth hook answers
 * `unauthenticated` before the body is read, so nothing unauthenticated reaches the pipeline.
 *
 * The hook decides on the route Fastify matched, never on the raw URL: the router decodes
 * the path (`/%73aslgate.v1.AuthService/Authenticate` is the Authenticate route), so a prefix
 * test on `req.url` let such a request through to the handler with its body parsed. Only the
 * health, metrics and Negotiate routes are open; every other request, a 404 included, needs a
 * caller first.
 */
import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest, Http2Session } from 'node:http2'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { createContextValues } from '@connectrpc/connect'
import { SpanKind } from '@opentelemetry/api'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { Authenticator } from '../authenticator.js'
import { AuthService } from '../gen/saslgate/v1/auth_pb.js'
import { HealthService } from '../gen/saslgate/v1/health_pb.js'
import type { Observability } from '../telemetry/observability.js'
import type { Caller, CallerAuth } from './caller-auth.js'
import { registerConnectRoutes } from './connect-routes.js'
import { type Readiness, registerHealth } from './health.js'
import { type NegotiateRoute, registerNegotiate, SESSION_PATH } from './negotiate-route.js'
import { authenticateHandler, kCaller, type RpcDeps, requireCaller, routes } from './rpc.js'
import { createPlainServers, createSecureServer } from './server-factory.js'

export interface TlsMaterial {
  cert: Buffer
  key: Buffer
  /** CA bundle for client certificates (mTLS); absent: no client certificates requested. */
  clientCa?: Buffer
}

export interface ServiceAppOptions {
  authenticator: Authenticator
  callerAuth: CallerAuth
  readiness: Readiness
  logger: Logger
  tls?: TlsMaterial
  negotiate?: NegotiateRoute
  bodyLimitBytes: number
  maxConnections: number
  /** SIGTERM: report not ready this long before closing the listener. */
  readyDelayMs: number
  /** Then give in-flight RPCs this long. */
  drainTimeoutMs: number
  onAnswer?: RpcDeps['onAnswer']
  /** Traces (server span per RPC), RPC metrics and `/metrics`. */
  observability?: Observability
  /** Prometheus text for `/metrics`. */
  metrics?: () => Promise<string>
}

type RawRequest = IncomingMessage | Http2ServerRequest

/** Content types the RPC paths speak: Connect unary and streaming, gRPC. */
const RPC_CONTENT_TYPE =
  /^application\/(proto|json|connect\+(proto|json)|grpc(\+(proto|json))?)\s*(;|$)/i

/** Route of every RPC of the contract -> its method name (the only `method` metric labels). */
const RPC_METHODS: ReadonlyMap<string, string> = new Map(
  [AuthService, HealthService].flatMap((svc) =>
    svc.methods.map((m) => [`/${svc.typeName}/${m.name}`, m.name] as const),
  ),
)

/** Routes that need no caller: probes and scrapes, and Negotiate (it authenticates itself). */
const OPEN_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics', SESSION_PATH])

export class ServiceApp {
  readonly app: FastifyInstance
  readonly #o: ServiceAppOptions
  readonly #callers = new WeakMap<RawRequest, Caller>()
  readonly #sessions = new Set<Http2Session>()
  readonly #sockets = new Set<Socket>()
  readonly #shutdown = new AbortController()
  #draining = false
  #closing: Promise<void> | undefined

  constructor(options: ServiceAppOptions) {
    this.#o = options
    const track = (server: import('node:events').EventEmitter) => {
      server.on('session', (s: Http2Session) => {
        this.#sessions.add(s)
        s.once('close', () => this.#sessions.delete(s))
      })
    }
    const trackSockets = (server: import('node:events').EventEmitter) => {
      server.on('connection', (socket: Socket) => {
        this.#sockets.add(socket)
        socket.once('close', () => this.#sockets.delete(socket))
      })
    }
    this.app = Fastify({
      logger: false,
      bodyLimit: options.bodyLimitBytes,
      return503OnClosing: true,
      forceCloseConnections: 'idle',
      serverFactory: (handler) => {
        if (options.tls !== undefined) {
          const server = createSecureServer(handler as never, {
            cert: options.tls.cert,
            key: options.tls.key,
            minVersion: 'TLSv1.2',
            ...(options.tls.clientCa !== undefined
              ? { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: false }
              : {}),
          })
          track(server)
          trackSockets(server)
          server.maxConnections = options.maxConnections
          return server as never
        }
        const { server, h2c } = createPlainServers(handler as never)
        track(h2c)
        trackSockets(server)
        server.maxConnections = options.maxConnections
        server.keepAliveTimeout = 65_000
        server.headersTimeout = 10_000
        server.requestTimeout = 10_000
        return server
      },
    }) as unknown as FastifyInstance

    // onRequest runs before any byte of the body is read or parsed.
    this.app.addHook('onRequest', async (req, reply) => {
      // The matched route (decoded path, no query); undefined for a 404.
      const route = req.routeOptions.url
      if (route !== undefined && OPEN_ROUTES.has(route)) return
      const method = route !== undefined ? RPC_METHODS.get(route) : undefined
      const caller = options.callerAuth.identify(req.headers, req.raw.socket as never)
      if (caller === undefined) {
        options.observability?.metrics.recordRpc(method ?? 'unknown', 'unauthenticated', 0)
        return refuse(req, reply)
      }
      if (method === undefined) return
      this.#callers.set(req.raw, caller)
      const type = String(req.headers['content-type'] ?? '')
      if (req.method === 'POST' && !RPC_CONTENT_TYPE.test(type))
        return reply.code(415).header('content-type', 'application/json').send({
          code: 'invalid_argument',
          message:
            'content-type must be application/proto or application/json (Connect), or application/grpc',
        })
    })
    registerHealth(this.app, () => this.#readiness(), options.metrics)
    if (options.negotiate !== undefined) registerNegotiate(this.app, options.negotiate)
    const obs = options.observability
    const rpcDeps: RpcDeps = {
      authenticator: options.authenticator,
      ...(obs !== undefined
        ? {
            traceRpc: (header, fn) =>
              obs.span(
                'saslgate.rpc.Authenticate',
                SpanKind.SERVER,
                { 'rpc.system': 'connect_rpc', 'rpc.method': 'Authenticate' },
                () => fn(),
                obs.extract(header),
              ),
            onRpc: (method, code, ms) => obs.metrics.recordRpc(method, code, ms),
          }
        : {}),
      ready: () => this.#readiness().ready,
      ...(options.onAnswer !== undefined ? { onAnswer: options.onAnswer } : {}),
    }
    const direct = authenticateHandler(rpcDeps)
    registerConnectRoutes(this.app, {
      routes: routes(rpcDeps),
      interceptors: [requireCaller],
      contextValues: (req) => createContextValues().set(kCaller, this.#callers.get(req.raw)),
      readMaxBytes: options.bodyLimitBytes,
      acceptCompression: [],
      grpcWeb: false,
      // Aborted when the drain bound passes: handlers still running then answer `unavailable`.
      shutdownSignal: this.#shutdown.signal,
      // The direct path runs no interceptor: the handler itself refuses a missing caller.
      direct: (req, ctx) => direct(req, ctx),
    })
  }

  #readiness(): { ready: boolean; reason?: string } {
    if (this.#draining) return { ready: false, reason: 'draining' }
    return this.#o.readiness()
  }

  get draining(): boolean {
    return this.#draining
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    await this.app.listen({ host, port })
    const addr = this.app.server.address()
    if (addr === null || typeof addr === 'string') return { host, port }
    return { host: addr.address, port: addr.port }
  }

  /**
   * Graceful stop: readiness false, wait `readyDelayMs` (load balancers notice), stop
   * accepting, let in-flight RPCs finish within `drainTimeoutMs`, then cut what is left.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    this.#draining = true
    if (this.#o.readyDelayMs > 0) await sleep(this.#o.readyDelayMs)
    for (const s of this.#sessions) s.close()
    const closed = this.app.close()
    const cancel = new AbortController()
    const timer = sleep(this.#o.drainTimeoutMs + 100, 'timeout' as const, { signal: cancel.signal })
    const first = await Promise.race([
      closed.then(() => 'closed' as const),
      timer.catch(() => 'closed' as const),
    ])
    cancel.abort()
    if (first === 'timeout') {
      this.#shutdown.abort()
      for (const s of this.#sessions) s.destroy()
      for (const socket of this.#sockets) socket.destroy()
      await closed
    }
  }
}

/** `unauthenticated` in the caller's protocol, before the body is read. */
function refuse(req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const contentType = String(req.headers['content-type'] ?? '')
  const message = 'caller not authenticated: send a client certificate or Authorization: Bearer'
  if (contentType.startsWith('application/grpc')) {
    // gRPC "Trailers-Only": status in the headers, no body.
    return reply
      .code(200)
      .header('content-type', contentType)
      .header('grpc-status', '16')
      .header('grpc-message', encodeURIComponent(message))
      .send()
  }
  return reply
    .code(401)
    .header('content-type', 'application/json')
    .header('www-authenticate', 'Bearer, Negotiate')
    .send({ code: 'unauthenticated', message })
}
