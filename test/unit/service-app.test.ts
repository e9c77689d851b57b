/**
 * The service's lifecycle on real sockets (in process, a fake decider): graceful shutdown
 * (not ready first, in-flight RPCs answered, then closed within the bound) and request limits.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import { describe, test } from 'node:test'
import { Code, type ConnectError } from '@connectrpc/connect'
import { pino } from 'pino'
import type { Authenticator, AuthResult } from '../../src/authenticator.js'
import { ServiceApp } from '../../src/service/app.js'
import { CallerAuth } from '../../src/service/caller-auth.js'
import { ConnectUnaryClient } from '../../src/shim/connect-unary-client.js'

const TOKEN = 'service-app-test-token-0123456789abcdef01234'

function app(
  delayMs: number,
  opts: {
    readyDelayMs?: number
    drainTimeoutMs?: number
    onRequest?: (signal: AbortSignal) => void
  } = {},
) {
  const authenticator: Authenticator = {
    async authenticate(req): Promise<AuthResult> {
      opts.onRequest?.(req.signal)
      // Waits delayMs, or less when the service aborts the request's signal.
      await new Promise<void>((r) => {
        const timer = setTimeout(r, delayMs)
        req.signal.addEventListener('abort', () => {
          clearTimeout(timer)
          r()
        })
      })
      return req.signal.aborted
        ? { decision: 'unavailable', reason: 'deadline', stage: 'test' }
        : { decision: 'ok', reason: 'ok', stage: 'test' }
    },
    close: async () => {},
  }
  return new ServiceApp({
    authenticator,
    callerAuth: new CallerAuth({ tokens: [TOKEN] }),
    readiness: () => ({ ready: true }),
    logger: pino({ level: 'silent' }),
    bodyLimitBytes: 1024,
    maxConnections: 100,
    readyDelayMs: opts.readyDelayMs ?? 0,
    drainTimeoutMs: opts.drainTimeoutMs ?? 2000,
  })
}

const call = (port: number, agent = new http.Agent({ keepAlive: false })) =>
  new ConnectUnaryClient(`http://127.0.0.1:${port}`, agent).authenticate(
    { login: 'alice', password: Buffer.from('pw'), service: 'imap', realm: '', clientAddress: '' },
    { signal: AbortSignal.timeout(5000), timeoutMs: 5000, authorization: `Bearer ${TOKEN}` },
  )

describe('ServiceApp shutdown', () => {
  test('not ready first, in-flight RPCs answered, then closed within the bound', async () => {
    const a = app(400, { readyDelayMs: 300, drainTimeoutMs: 2000 })
    const { port } = await a.listen('127.0.0.1', 0)
    assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200)
    const inFlight = call(port)
    await new Promise((r) => setTimeout(r, 50))
    const t0 = performance.now()
    const closing = a.close()
    // During readyDelayMs the replica still serves but reports not ready.
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`)
    assert.equal(ready.status, 503)
    assert.deepEqual(await ready.json(), { status: 'not ready', reason: 'draining' })
    const res = await inFlight
    assert.equal(res.decision, 1, 'the in-flight RPC got its decision (DECISION_OK)')
    await closing
    const ms = performance.now() - t0
    assert.ok(ms >= 280 && ms < 2000, `closed after ${ms} ms`)
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'no longer listening')
  })

  test('an RPC outliving the drain bound is cut off and close() returns in time', async () => {
    // The decider would answer ok after 10 s unless its signal is aborted; the client would
    // give up after 5 s. Only the drain bound (300 ms) can end the call well before either.
    const seen: { abortedAfterMs?: number } = {}
    let t0 = 0
    const a = app(10_000, {
      drainTimeoutMs: 300,
      onRequest: (signal) =>
        signal.addEventListener('abort', () => {
          seen.abortedAfterMs = performance.now() - t0
        }),
    })
    const { port } = await a.listen('127.0.0.1', 0)
    const stuck = call(port).then(
      (r) => ({ decision: r.decision as unknown, code: undefined, at: performance.now() }),
      (err: ConnectError) => ({ decision: undefined, code: err.code, at: performance.now() }),
    )
    await new Promise((r) => setTimeout(r, 50))
    t0 = performance.now()
    await a.close()
    const closeMs = performance.now() - t0
    const outcome = await stuck
    const settledMs = outcome.at - t0
    assert.equal(
      outcome.decision,
      undefined,
      'never an answer (least of all OK) for a cut-off call',
    )
    assert.equal(
      outcome.code,
      Code.Unavailable,
      'the connection was cut, not the client timing out',
    )
    // The cut reaches the decider too (its request signal aborts), so it stops working.
    for (let i = 0; i < 100 && seen.abortedAfterMs === undefined; i++)
      await new Promise((r) => setTimeout(r, 10))
    assert.ok(seen.abortedAfterMs !== undefined, "the decider's signal was aborted by the shutdown")
    // The cut comes at the drain bound (+100 ms); loose ceilings, far below the 5 s and 10 s.
    assert.ok(
      seen.abortedAfterMs >= 300,
      `aborted after ${seen.abortedAfterMs} ms: before the bound`,
    )
    assert.ok(closeMs < 1500, `close took ${closeMs} ms`)
    assert.ok(settledMs < 1500, `the stuck call settled ${settledMs} ms after close()`)
  })
})

describe('ServiceApp limits', () => {
  test('a body over bodyLimitBytes is refused with a clear error, a fields over 256 bytes too', async () => {
    const a = app(0)
    const { port } = await a.listen('127.0.0.1', 0)
    try {
      const url = `http://127.0.0.1:${port}/saslgate.v1.AuthService/Authenticate`
      const big = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/proto', authorization: `Bearer ${TOKEN}` },
        body: Buffer.alloc(4096, 1),
      })
      assert.ok(big.status >= 400 && big.status < 500, String(big.status))
      const err = (await big.json()) as { code: string; message: string }
      assert.equal(err.code, 'resource_exhausted')
      const long = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ login: 'a'.repeat(300), password: 'cHc=' }),
      })
      assert.equal(long.status, 400)
      assert.match(
        ((await long.json()) as { message: string }).message,
        /field login is longer than 256 bytes/,
      )
    } finally {
      await a.close()
    }
  })
})
