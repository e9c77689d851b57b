/**
 * One Connect client per upstream address, over HTTP/1.1 keep-alive connections.
 *
 * Why HTTP/1.1 and not one HTTP/2 connection: through a Kubernetes ClusterIP (or any L4
 * balancer) a single long-lived HTTP/2 connection pins every login to one pod. With a pool
 * of HTTP/1.1 connections, each connection lands on some pod, and connections older than
 * `connectionMaxAgeMs` are not reused, so the spread follows pods that come and go.
 */
import http from 'node:http'
import https from 'node:https'
import type { Socket } from 'node:net'
import { ConnectUnaryClient } from './connect-unary-client.js'

export interface TlsClientMaterial {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
}

export interface EndpointClientOptions {
  baseUrl: string
  servername: string | undefined
  tls: TlsClientMaterial
  maxConnections: number
  connectionMaxAgeMs: number
  /** Idle connections are closed after this (below the service's keep-alive timeout). */
  idleTimeoutMs?: number
}

/** A keep-alive agent that retires connections older than `maxAgeMs` instead of reusing them. */
function agedAgent(secure: boolean, options: https.AgentOptions, maxAgeMs: number): http.Agent {
  const born = new WeakMap<Socket, number>()
  const Base = secure ? https.Agent : http.Agent
  const agent = new Base(options)
  const keep = agent.keepSocketAlive.bind(agent)
  agent.keepSocketAlive = (socket: Socket) => {
    const now = Date.now()
    const t = born.get(socket)
    if (t === undefined) born.set(socket, now)
    else if (now - t > maxAgeMs) return false
    return keep(socket)
  }
  return agent
}

export class EndpointClient {
  readonly client: ConnectUnaryClient
  readonly #agent: http.Agent

  constructor(o: EndpointClientOptions) {
    const secure = o.baseUrl.startsWith('https:')
    this.#agent = agedAgent(
      secure,
      {
        keepAlive: true,
        maxSockets: o.maxConnections,
        maxFreeSockets: o.maxConnections,
        scheduling: 'fifo',
        timeout: o.idleTimeoutMs ?? 30_000,
        ...(secure
          ? {
              ...(o.tls.ca !== undefined ? { ca: o.tls.ca } : {}),
              ...(o.tls.cert !== undefined ? { cert: o.tls.cert, key: o.tls.key } : {}),
              ...(o.servername !== undefined ? { servername: o.servername } : {}),
              minVersion: 'TLSv1.2',
              rejectUnauthorized: true,
            }
          : {}),
      },
      o.connectionMaxAgeMs,
    )
    this.client = new ConnectUnaryClient(o.baseUrl, this.#agent)
  }

  close(): void {
    this.#agent.destroy()
  }
}
