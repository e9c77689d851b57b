/**
 * `/healthz` (the process is alive), `/readyz` (can serve: not draining, keytab readable, a
 * KDC of the default realm answered recently or offline mode has a known-good user; see
 * readiness.ts) and `/metrics`. None says anything about users.
 */
import type { FastifyInstance } from 'fastify'

export type Readiness = () => { ready: boolean; reason?: string }

/** Prometheus text exposition format 0.0.4. */
const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8'

export function registerHealth(
  app: FastifyInstance,
  readiness: Readiness,
  metrics?: () => Promise<string>,
): void {
  if (metrics !== undefined)
    app.get('/metrics', async (_req, reply) => {
      reply.header('cache-control', 'no-store')
      try {
        const text = await metrics()
        return reply.type(PROMETHEUS_TEXT).send(text)
      } catch {
        return reply.code(503).type('text/plain').send('metrics unavailable\n')
      }
    })
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
