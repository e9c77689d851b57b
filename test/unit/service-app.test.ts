/**
 * The service's lifecycle on real sockets (in process, a fake decider): graceful shutdown
 * (not ready first, in-flight RPCs answered, then closed within the bound), request limits,
 * and the caller check on the route the router matched (not on the raw URL).
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { describe, test } from 'node:test'
import { Code, type ConnectError } from '@connectrpc/connect'
import { pino } from 'pino'
import type { Authenticator, AuthResult } from '../../src/authenticator.js'
import { ServiceApp } from '../../src/service/app.js'
import { CallerAuth } from '../../src/service/caller-auth.js'
import { ConnectUnaryClient } from '../../src/shim/connect-unary-client.js'
import type { Observability } from '../../src/telemetry/observability.js'

const TOKEN = 'service-app-test-token-0123456789abcdef01234'

function app(
  delayMs: number,
  opts: {
    readyDelayMs?: number
    drainTimeoutMs?: number
    observability?: Observability
    onRequest?: (signal: AbortSignal) => void
  } = {},
  calls: { n: number } = { n: 0 },
) {
  const authenticator: Authenticator = {
    async authenticate(req): Promise<AuthResult> {
      calls.n++
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
    ...(opts.observability !== undefined ? { observability: opts.observability } : {}),
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

/**
 * Sends a request head announcing a 100-byte body and only the first 3 bytes of it, and
 * collects what comes back until the server closes or `waitMs` passes. A server that reads
 * the body before deciding can never answer this one (the body never completes).
 */
async function incompleteBody(
  port: number,
  path: string,
  headers: Record<string, string>,
  waitMs: number,
): Promise<{ status: number | undefined; head: string; body: string; socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1')
  let got = ''
  socket.on('data', (d) => {
    got += d.toString('latin1')
  })
  socket.on('error', () => {})
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  const head = Object.entries({ host: 'x', 'content-length': '100', ...headers })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')
  socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n\x08\x01\x12`)
  const complete = () => {
    const end = got.indexOf('\r\n\r\n')
    const length = /\r\ncontent-length: (\d+)/i.exec(got.slice(0, end))?.[1]
    return end >= 0 && length !== undefined && got.length - end - 4 >= Number(length)
  }
  const deadline = performance.now() + waitMs
  while (performance.now() < deadline && !complete()) await new Promise((r) => setTimeout(r, 10))
  const status = /^HTTP\/1\.1 (\d{3})/.exec(got)?.[1]
  return {
    status: status !== undefined ? Number(status) : undefined,
    head: got.slice(0, got.indexOf('\r\n\r\n') + 2),
    body: got.slice(got.indexOf('\r\n\r\n') + 4),
    socket,
  }
}

/** Every RPC metric the app records, as `method code`. */
function recordingObservability(): { obs: Observability; recorded: string[] } {
  const recorded: string[] = []
  const obs = {
    metrics: { recordRpc: (method: string, code: string) => recorded.push(`${method} ${code}`) },
    span: (_n: string, _k: unknown, _a: unknown, fn: () => unknown) => fn(),
    extract: () => undefined,
  } as unknown as Observability
  return { obs, recorded }
}

describe('ServiceApp caller check on the decoded route', () => {
  // Each spelling is routed to Authenticate by Fastify's router (it decodes the path).
  const spellings = [
    '/%73aslgate.v1.AuthService/Authenticate',
    '/saslgate.v1.AuthService/Authenticat%65',
    '/saslgate%2Ev1%2EAuthService/Authenticate',
    '/%73%61%73%6c%67%61%74%65.v1.AuthService/Authenticate?x=1',
  ]

  test('a percent-encoded RPC path gets 401 before any body is read; the handler never runs', async () => {
    const calls = { n: 0 }
    const a = app(0, {}, calls)
    const { port } = await a.listen('127.0.0.1', 0)
    try {
      for (const path of spellings) {
        for (const type of ['application/proto', 'application/json']) {
          const r = await incompleteBody(port, path, { 'content-type': type }, 3000)
          r.socket.destroy()
          assert.equal(r.status, 401, `${path} (${type}): answered before its body completed`)
          assert.equal((JSON.parse(r.body) as { code: string }).code, 'unauthenticated')
        }
      }
      // gRPC callers get their own status (16) in the headers, also before the body.
      const g = await incompleteBody(
        port,
        spellings[0]!,
        { 'content-type': 'application/grpc' },
        3000,
      )
      g.socket.destroy()
      assert.equal(g.status, 200)
      assert.match(g.head, /\r\ngrpc-status: 16\r\n/i)
      assert.equal(calls.n, 0, 'no unauthenticated request reached the authenticator')
    } finally {
      await a.close()
    }
  })

  test('control: with a valid token the same path is the real Authenticate route (it waits for the body)', async () => {
    const calls = { n: 0 }
    const a = app(0, {}, calls)
    const { port } = await a.listen('127.0.0.1', 0)
    try {
      const r = await incompleteBody(
        port,
        spellings[0]!,
        { 'content-type': 'application/proto', authorization: `Bearer ${TOKEN}` },
        300,
      )
      // The route reads the body before it decides: nothing can come back yet.
      assert.equal(r.status, undefined, 'no answer while the body is incomplete')
      const answered = new Promise<string>((resolve) => {
        let got = ''
        r.socket.on('data', (d) => {
          got += d.toString('latin1')
          if (got.includes('}')) resolve(got)
        })
      })
      r.socket.write(Buffer.alloc(97, 0xff))
      const reply = await answered
      r.socket.destroy()
      assert.match(reply, /^HTTP\/1\.1 400/, 'the handler decoded (and refused) the garbage body')
      assert.match(reply, /invalid_argument/)
      assert.equal(calls.n, 0)
      // And a well-formed call on an encoded path is answered like the plain one.
      const res = await new ConnectUnaryClient(
        `http://127.0.0.1:${port}`,
        new http.Agent({ keepAlive: false }),
      ).authenticate(
        {
          login: 'alice',
          password: Buffer.from('pw'),
          service: 'imap',
          realm: '',
          clientAddress: '',
        },
        { signal: AbortSignal.timeout(5000), timeoutMs: 5000, authorization: `Bearer ${TOKEN}` },
      )
      assert.equal(res.decision, 1)
      assert.equal(calls.n, 1)
    } finally {
      await a.close()
    }
  })

  test('unknown paths need a caller too; metrics label only known methods (others `unknown`)', async () => {
    const { obs, recorded } = recordingObservability()
    const a = app(0, { observability: obs })
    const { port } = await a.listen('127.0.0.1', 0)
    try {
      const junk = `/saslgate.v1.AuthService/${'X'.repeat(30)}${Date.now()}`
      for (const path of [...spellings, junk, '/nope', '/saslgate.v1.HealthService/Check']) {
        const r = await incompleteBody(port, path, { 'content-type': 'application/proto' }, 3000)
        r.socket.destroy()
        assert.equal(r.status, 401, path)
      }
      assert.deepEqual(recorded, [
        ...spellings.map(() => 'Authenticate unauthenticated'),
        'unknown unauthenticated',
        'unknown unauthenticated',
        'Check unauthenticated',
      ])
      // Open routes stay open; an authenticated caller on an unknown path gets a 404.
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200)
      assert.equal((await fetch(`http://127.0.0.1:${port}/%68ealthz`)).status, 200)
      const nope = await fetch(`http://127.0.0.1:${port}/nope`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      })
      assert.equal(nope.status, 404)
    } finally {
      await a.close()
    }
  })
})
