/**
 * The admin listener (`service.adminListen`): plain HTTP with only `/healthz`, `/readyz` and `/metrics`,
 * for probes and scrapes that should not need the RPC port's TLS or credentials.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { type Readiness, registerHealth } from './health.js'
import { parseListen } from './listen-address.js'

export async function startAdmin(
  option: string,
  listen: string,
  readiness: Readiness,
  metrics?: () => Promise<string>,
  extend?: (app: FastifyInstance) => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const { host, port } = parseListen(option, listen)
  const app = Fastify({ logger: false, forceCloseConnections: true })
  registerHealth(app, readiness, metrics)
  extend?.(app)
  await app.listen({ host, port })
  const addr = app.server.address()
  return {
    port: typeof addr === 'object' && addr !== null ? addr.port : port,
    close: () => app.close(),
  }
}
