/**
 * `/healthz` (the process is alive) and `/readyz` (ready to decide: keytab readable, at
 * least one KDC breaker not open, not draining). Neither says anything about users.
 */
import type { FastifyInstance } from 'fastify'

export type Readiness = () => { ready: boolean; reason?: string }

export function registerHealth(app: FastifyInstance, readiness: Readiness): void {
  app.get('/healthz', async (_req, reply) => {
    reply.header('cache-control', 'no-store')
    return { status: 'alive' }
  })
  app.get('/readyz', async (_req, reply) => {
    const r = readiness()
    reply.header('cache-control', 'no-store')
    if (r.ready) return { status: 'ready' }
    reply.code(503)
    return { status: 'not ready', reason: r.reason ?? 'unknown' }
  })
}
