/**
 * The shim's remote authenticator against in-process services (real HTTP on 127.0.0.1,
 * fake deciders): failover, hedging past a slow replica, the hard deadline, fail-closed
 * answers, caller refusal. Plus upstream parsing/resolution and caller authentication.
 */
import assert from 'node:assert/strict'
import http, { createServer, type Server } from 'node:http'
import type net from 'node:net'
import { after, describe, test } from 'node:test'
import { pino } from 'pino'
import type { Authenticator, AuthRequest, AuthResult } from '../../src/authenticator.js'
import { ServiceApp } from '../../src/service/app.js'
import { bearerOf, CallerAuth } from '../../src/service/caller-auth.js'
import { isLoopbackHost } from '../../src/service/listen-address.js'
import { ConnectUnaryClient } from '../../src/shim/connect-unary-client.js'
import { type AttemptEvent, RemoteAuthenticator } from '../../src/shim/remote-authenticator.js'
import { parseUpstream, Upstreams } from '../../src/shim/upstreams.js'
import { freePort } from '../../src/testing/ports.js'

const TOKEN = 'unit-test-token-0123456789abcdef0123456789'
const apps: ServiceApp[] = []
const remotes: RemoteAuthenticator[] = []

after(async () => {
  for (const r of remotes) await r.close()
  for (const a of apps) await a.close()
})

/** A replica answering `decision` after `delayMs`; counts its calls. */
async function replica(decision: AuthResult['decision'], delayMs = 0) {
  const calls = { n: 0 }
  const authenticator: Authenticator = {
    async authenticate(req: AuthRequest): Promise<AuthResult> {
      calls.n++
      await new Promise((r) => setTimeout(r, delayMs))
      if (req.signal.aborted) return { decision: 'unavailable', reason: 'deadline', stage: 'test' }
      return {
        decision,
        reason: decision === 'ok' ? 'ok' : decision === 'invalid' ? 'bad_password' : 'shed',
        stage: 'test',
      }
    },
    close: async () => {},
  }
  const app = new ServiceApp({
    authenticator,
    callerAuth: new CallerAuth({ tokens: [TOKEN] }),
    readiness: () => ({ ready: true }),
    logger: pino({ level: 'silent' }),
    bodyLimitBytes: 8192,
    maxConnections: 100,
    readyDelayMs: 0,
    drainTimeoutMs: 1000,
  })
  apps.push(app)
  const { port } = await app.listen('127.0.0.1', 0)
  return { url: `http://127.0.0.1:${port}`, calls, app }
}

function remote(
  upstreams: string[],
  overrides: Partial<ConstructorParameters<typeof RemoteAuthenticator>[0]> = {},
) {
  const r = new RemoteAuthenticator({
    upstreams,
    tls: {},
    credentials: { authorization: async () => `Bearer ${TOKEN}` },
    deadlineMs: 800,
    attemptTimeoutMs: 150,
    ejectMs: 5000,
    resolveIntervalMs: 60_000,
    connectionMaxAgeMs: 60_000,
    maxConnectionsPerUpstream: 16,
    ...overrides,
  })
  remotes.push(r)
  return r
}

const req = (): AuthRequest => ({
  login: 'alice',
  password: Buffer.from('pw'),
  service: 'imap',
  realm: '',
  signal: AbortSignal.timeout(5000),
})

async function timed(r: RemoteAuthenticator) {
  const t0 = performance.now()
  const result = await r.authenticate(req())
  return { result, ms: performance.now() - t0 }
}

describe('RemoteAuthenticator', () => {
  test('answers with the service decision (ok, invalid, unavailable)', async () => {
    for (const d of ['ok', 'invalid', 'unavailable'] as const) {
      const s = await replica(d)
      const r = remote([s.url])
      await r.start()
      const { result } = await timed(r)
      assert.equal(result.decision, d)
      assert.equal(result.stage, 'upstream')
    }
  })

  test('a dead replica: the request goes to the live one at once and the dead one is ejected', async () => {
    const live = await replica('ok')
    const dead = `http://127.0.0.1:${await freePort()}`
    const r = remote([dead, live.url], { attemptTimeoutMs: 5000 })
    await r.start()
    for (let i = 0; i < 10; i++) {
      const { result, ms } = await timed(r)
      assert.equal(result.decision, 'ok')
      assert.ok(ms < 300, `failover took ${ms} ms`)
    }
    const deadEndpoint = r.endpoints.find((e) => e.baseUrl === dead)
    assert.ok((deadEndpoint?.ejectedUntil ?? 0) > Date.now(), 'the dead replica is ejected')
    assert.ok((deadEndpoint?.failures ?? 0) >= 1)
  })

  test('a slow replica: the hedge to a fast one answers after attemptTimeoutMs, not at the deadline', async () => {
    const slow = await replica('ok', 2000)
    const fast = await replica('ok')
    const r = remote([slow.url, fast.url], { attemptTimeoutMs: 100, deadlineMs: 1500 })
    await r.start()
    let worst = 0
    for (let i = 0; i < 12; i++) {
      const { result, ms } = await timed(r)
      assert.equal(result.decision, 'ok')
      worst = Math.max(worst, ms)
    }
    assert.ok(worst < 600, `worst ${worst} ms: the slow replica held a request`)
    assert.ok(fast.calls.n >= 12)
  })

  test('every replica silent: unavailable at the deadline, never later', async () => {
    const a = await replica('ok', 3000)
    const b = await replica('ok', 3000)
    const r = remote([a.url, b.url], { deadlineMs: 400, attemptTimeoutMs: 100 })
    await r.start()
    const { result, ms } = await timed(r)
    assert.equal(result.decision, 'unavailable')
    assert.ok(ms >= 380 && ms < 700, `answered after ${ms} ms`)
  })

  test('no replica reachable: unavailable at once (fail closed)', async () => {
    const r = remote([
      `http://127.0.0.1:${await freePort()}`,
      `http://127.0.0.1:${await freePort()}`,
    ])
    await r.start()
    const { result, ms } = await timed(r)
    assert.equal(result.decision, 'unavailable')
    assert.ok(ms < 300, `${ms} ms`)
  })

  test('a wrong token: refused as a caller, answered unavailable, never ok', async () => {
    const s = await replica('ok')
    const r = remote([s.url], {
      credentials: { authorization: async () => 'Bearer wrong-token-wrong-token-wrong-token-xx' },
    })
    await r.start()
    const { result } = await timed(r)
    assert.equal(result.decision, 'unavailable')
    assert.equal(result.reason, 'upstream_refused_caller')
    assert.equal(s.calls.n, 0, 'the service decided nothing for an unauthenticated caller')
  })

  test('a draining replica (503) is failed over', async () => {
    // The draining replica would say ok, the other says invalid: only a failover gives invalid.
    const draining = await replica('ok', 0)
    const other = await replica('invalid', 0)
    const attempts: AttemptEvent[] = []
    const r = remote([draining.url, other.url], {
      attemptTimeoutMs: 5000,
      onAttempt: (e) => attempts.push(e),
    })
    await r.start()
    // Warm both (keep-alive connections to each), so the drain is met on a live connection.
    for (let i = 0; i < 20 && (draining.calls.n === 0 || other.calls.n === 0); i++) await timed(r)
    assert.ok(draining.calls.n > 0 && other.calls.n > 0, 'both replicas were warmed')
    const callsBefore = draining.calls.n
    attempts.length = 0
    const closing = draining.app.close()
    assert.equal(draining.app.draining, true)
    // The pick is random between healthy replicas: ask until the draining one was tried
    // (then it is ejected); 2^-20 that it never is.
    for (let i = 0; i < 20; i++) {
      const { result } = await timed(r)
      assert.equal(result.decision, 'invalid', `request ${i}: the other replica's answer`)
    }
    await closing
    assert.equal(draining.calls.n, callsBefore, 'the draining replica decided nothing')
    const failed = attempts.filter((e) => e.endpoint === draining.url)
    assert.ok(failed.length >= 1, 'the draining replica was tried')
    for (const e of failed) assert.equal(e.outcome, 'failed', JSON.stringify(e))
    const ejected = r.endpoints.find((e) => e.baseUrl === draining.url)
    assert.ok((ejected?.ejectedUntil ?? 0) > Date.now(), 'and ejected')
  })
})

/**
 * A replica that answers 200 with the given AuthenticateResponse bytes, whatever it is
 * asked: plays a broken or hostile service the shim must not trust beyond `DECISION_OK`.
 */
async function rawReplica(body: Buffer) {
  const calls = { n: 0 }
  const server: Server = createServer((req, res) => {
    calls.n++
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/proto', 'content-length': body.length })
      res.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${address.port}`, calls }
}

describe('RemoteAuthenticator fails closed', () => {
  // Field 1 (decision), varint: 08 <value>. No field at all is DECISION_UNSPECIFIED.
  const responses = {
    ok: Buffer.from([0x08, 0x01]),
    unspecified: Buffer.alloc(0),
    explicitUnspecified: Buffer.from([0x08, 0x00]),
    unknownEnum: Buffer.from([0x08, 0x07]),
    hugeEnum: Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0x07]),
    garbage: Buffer.from([0xff, 0xff, 0xff]),
  }

  test('only DECISION_OK is ok: the control answer proves the raw replica is understood', async () => {
    const s = await rawReplica(responses.ok)
    const r = remote([s.url])
    await r.start()
    const { result } = await timed(r)
    assert.deepEqual(result, { decision: 'ok', reason: 'remote_ok', stage: 'upstream' })
  })

  for (const name of ['unspecified', 'explicitUnspecified', 'unknownEnum', 'hugeEnum'] as const) {
    test(`a ${name} decision answers NO (unavailable), never ok`, async () => {
      const s = await rawReplica(responses[name])
      const r = remote([s.url])
      await r.start()
      const { result } = await timed(r)
      assert.deepEqual(result, {
        decision: 'unavailable',
        reason: 'upstream_unavailable',
        stage: 'upstream',
      })
      assert.equal(s.calls.n, 1, 'the replica was asked once')
    })
  }

  test('an undecodable response answers NO and ejects the replica', async () => {
    const s = await rawReplica(responses.garbage)
    const attempts: AttemptEvent[] = []
    const r = remote([s.url], { onAttempt: (e) => attempts.push(e) })
    await r.start()
    const { result } = await timed(r)
    assert.equal(result.decision, 'unavailable')
    assert.deepEqual(
      attempts.map((e) => [e.outcome, e.code]),
      [['failed', 'Internal']],
    )
    assert.ok((r.endpoints[0]?.ejectedUntil ?? 0) > Date.now())
  })

  test('credentials.authorization() throwing: NO at once, no replica asked, none ejected', async () => {
    const a = await replica('ok')
    const b = await replica('ok')
    let asked = 0
    const attempts: AttemptEvent[] = []
    const r = remote([a.url, b.url], {
      credentials: {
        authorization: async () => {
          asked++
          throw new Error('token source broke')
        },
      },
      onAttempt: (e) => attempts.push(e),
    })
    await r.start()
    for (let i = 0; i < 3; i++) {
      const { result } = await timed(r)
      assert.deepEqual(result, {
        decision: 'unavailable',
        reason: 'upstream_refused_caller',
        stage: 'upstream',
      })
    }
    assert.equal(asked, 3, 'once per request: no walk over the replicas')
    assert.equal(a.calls.n + b.calls.n, 0)
    assert.deepEqual(attempts, [], 'no attempt reached a replica')
    for (const e of r.endpoints) {
      assert.equal(e.ejectedUntil, 0, `${e.baseUrl} not ejected`)
      assert.equal(e.failures, 0)
    }
    // A synchronous throw is the same.
    const sync = remote([a.url], {
      credentials: {
        authorization: () => {
          throw new Error('sync')
        },
      },
    })
    await sync.start()
    assert.equal((await timed(sync)).result.reason, 'upstream_refused_caller')
    assert.equal(sync.endpoints[0]?.ejectedUntil, 0)
  })

  test('re-authentication: one fresh try after unauthenticated, on the same replica', async () => {
    const s = await replica('ok')
    const log: string[] = []
    let stale = true
    const r = remote([s.url], {
      credentials: {
        authorization: async () => {
          log.push(stale ? 'stale' : 'fresh')
          return `Bearer ${stale ? 'expired-session-token-expired-session-token' : TOKEN}`
        },
        rejected: () => {
          log.push('rejected')
          stale = false
        },
      },
    })
    await r.start()
    const { result } = await timed(r)
    assert.deepEqual(result, { decision: 'ok', reason: 'remote_ok', stage: 'upstream' })
    assert.deepEqual(log, ['stale', 'rejected', 'fresh'])
    assert.equal(s.calls.n, 1, 'only the authenticated call reached the pipeline')
  })

  test('re-authentication happens once: a second unauthenticated answers NO, no loop', async () => {
    const s = await replica('ok')
    const log: string[] = []
    const attempts: AttemptEvent[] = []
    const r = remote([s.url], {
      credentials: {
        authorization: async () => {
          log.push('asked')
          return 'Bearer never-right-never-right-never-right-xx'
        },
        rejected: () => log.push('rejected'),
      },
      onAttempt: (e) => attempts.push(e),
    })
    await r.start()
    const { result } = await timed(r)
    assert.deepEqual(result, {
      decision: 'unavailable',
      reason: 'upstream_refused_caller',
      stage: 'upstream',
    })
    assert.deepEqual(log, ['asked', 'rejected', 'asked', 'rejected'])
    assert.deepEqual(
      attempts.map((e) => e.outcome),
      ['unauthenticated', 'unauthenticated'],
    )
    assert.equal(s.calls.n, 0)
    assert.equal(r.endpoints[0]?.ejectedUntil, 0, 'a refused caller does not eject the replica')
  })
})

/**
 * An agent whose sockets remember every chunk node:http writes (the same Buffer objects, not
 * copies): the encoded request can then be looked at after the call.
 */
class RecordingAgent extends http.Agent {
  readonly chunks: Uint8Array[] = []
  override createConnection(...args: Parameters<http.Agent['createConnection']>) {
    const socket = (
      http.Agent.prototype as unknown as { createConnection: typeof net.createConnection }
    ).createConnection.apply(this, args as Parameters<typeof net.createConnection>) as net.Socket
    const write = socket.write.bind(socket)
    const writev = (socket as unknown as { _writev?: unknown })._writev
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (chunk instanceof Uint8Array) this.chunks.push(chunk)
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest)
    }) as typeof socket.write
    // Corked writes reach the handle through _writev with the same chunk objects.
    if (typeof writev === 'function')
      (socket as unknown as { _writev: unknown })._writev = (
        data: Array<{ chunk: unknown }>,
        cb: unknown,
      ) => {
        for (const d of data) if (d.chunk instanceof Uint8Array) this.chunks.push(d.chunk)
        return (writev as (...a: unknown[]) => unknown).call(socket, data, cb)
      }
    return socket
  }
}

describe('ConnectUnaryClient: the encoded request is wiped', () => {
  const password = Buffer.from('shim-body-password-0123')
  const holding = (agent: RecordingAgent) =>
    agent.chunks.filter((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength).includes(password))

  test('after the answer, the body node:http sent holds no password byte', async () => {
    const s = await replica('ok')
    const agent = new RecordingAgent({ keepAlive: true })
    const res = await new ConnectUnaryClient(s.url, agent).authenticate(
      { login: 'alice', password, service: 'imap', realm: '', clientAddress: '' },
      { signal: AbortSignal.timeout(5000), timeoutMs: 5000, authorization: `Bearer ${TOKEN}` },
    )
    assert.equal(res.decision, 1)
    assert.equal(s.calls.n, 1, 'the service got the request (so the body was sent)')
    const sent = agent.chunks.filter((c) => c.length >= password.length + 10 && c.length < 200)
    assert.ok(sent.length >= 1, 'the body chunk was seen on the socket')
    assert.equal(holding(agent).length, 0, 'every chunk written was zeroed: no password left')
    assert.ok(
      sent.some((c) => c.every((b) => b === 0)),
      'the encoded request itself is all zeros now',
    )
    assert.equal(
      password.toString(),
      'shim-body-password-0123',
      "the caller's own buffer is its own",
    )
    agent.destroy()
  })

  test('also when the call fails: refused caller, and aborted mid-way', async () => {
    const s = await replica('ok', 2000)
    const agent = new RecordingAgent({ keepAlive: false })
    const client = new ConnectUnaryClient(s.url, agent)
    const message = { login: 'alice', password, service: 'imap', realm: '', clientAddress: '' }
    await assert.rejects(
      client.authenticate(message, {
        signal: AbortSignal.timeout(5000),
        timeoutMs: 5000,
        authorization: 'Bearer wrong-token-0123456789abcdef0123456789',
      }),
      /not authenticated/,
    )
    const controller = new AbortController()
    const call = client.authenticate(message, {
      signal: controller.signal,
      timeoutMs: 5000,
      authorization: `Bearer ${TOKEN}`,
    })
    await new Promise((r) => setTimeout(r, 100))
    controller.abort()
    await assert.rejects(call)
    assert.ok(agent.chunks.length >= 2, 'both bodies were written')
    assert.equal(holding(agent).length, 0, 'no chunk written holds the password any more')
    agent.destroy()
  })
})

describe('isLoopbackHost (service.insecure, shim.insecure)', () => {
  test('only loopback literals and the name localhost; never a resolved name', () => {
    for (const h of [
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      '0:0:0:0:0:0:0:1',
      '::ffff:127.0.0.1',
      'localhost',
      'LOCALHOST',
    ])
      assert.equal(isLoopbackHost(h), true, h)
    for (const h of [
      '0.0.0.0',
      '::',
      '[::]',
      '10.0.0.1',
      '128.0.0.1',
      '::2',
      '::ffff:10.0.0.1',
      'saslgate.example.org',
      'localhost.example.org',
      '127.0.0.1.nip.io',
      '',
    ])
      assert.equal(isLoopbackHost(h), false, h)
  })
})

describe('Upstreams', () => {
  test('parses URLs and refuses what is not a service URL, naming the option', () => {
    assert.deepEqual(
      { ...parseUpstream('shim.upstreams', 'https://sg.example.org:8443/') },
      {
        source: 'https://sg.example.org:8443/',
        protocol: 'https:',
        host: 'sg.example.org',
        port: '8443',
        path: '',
      },
    )
    assert.equal(parseUpstream('x', 'http://[::1]:9000').host, '::1')
    for (const bad of ['ftp://x', 'not a url', 'https://u:p@h:1', 'https://h:1/?q=1'])
      assert.throws(() => parseUpstream('shim.upstreams', bad), /shim\.upstreams/)
  })

  test('a name resolving to several addresses gives one endpoint each, kept across re-resolution', async () => {
    let addrs = ['10.0.0.1', '10.0.0.2']
    const u = new Upstreams({
      urls: ['https://sg.example.org:8443'],
      ejectMs: 1000,
      resolveIntervalMs: 60_000,
      resolve: async () => addrs,
    })
    await u.refresh()
    assert.deepEqual(
      u.endpoints.map((e) => e.baseUrl),
      ['https://10.0.0.1:8443', 'https://10.0.0.2:8443'],
    )
    assert.equal(
      u.endpoints[0]?.servername,
      'sg.example.org',
      'TLS checks the name, not the address',
    )
    const first = u.endpoints[0]
    addrs = ['10.0.0.1', '10.0.0.3']
    await u.refresh()
    assert.equal(u.endpoints[0], first, 'state of a kept address survives')
    assert.deepEqual(
      u.endpoints.map((e) => e.baseUrl),
      ['https://10.0.0.1:8443', 'https://10.0.0.3:8443'],
    )
    u.close()
  })

  test('pick: never an excluded endpoint; ejected ones only when nothing else is left', async () => {
    const u = new Upstreams({
      urls: ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
      ejectMs: 1000,
      resolveIntervalMs: 60_000,
    })
    await u.refresh()
    const [a, b] = u.endpoints
    u.failed(a as never)
    for (let i = 0; i < 20; i++) assert.equal(u.pick(new Set()), b)
    assert.equal(u.pick(new Set([b as never])), a, 'an ejected endpoint beats none')
    assert.equal(u.pick(new Set([a as never, b as never])), undefined)
    u.close()
  })
})

describe('CallerAuth', () => {
  test('bearer tokens: any configured token, constant-time compare, nothing else', () => {
    const auth = new CallerAuth({ tokens: [TOKEN, `${TOKEN}-next`] })
    assert.deepEqual(auth.identify({ authorization: `Bearer ${TOKEN}` }, undefined), {
      method: 'token',
      name: 'token#1',
    })
    assert.deepEqual(auth.identify({ authorization: `bearer ${TOKEN}-next` }, undefined), {
      method: 'token',
      name: 'token#2',
    })
    for (const h of [undefined, '', `Bearer ${TOKEN}x`, `Basic ${TOKEN}`, `Bearer  `, TOKEN])
      assert.equal(auth.identify({ authorization: h }, undefined), undefined, String(h))
  })

  test('client certificates: only an authorized TLS socket, names as allowed', () => {
    const cert = {
      subject: { CN: 'fe1.example.org' },
      subjectaltname: 'DNS:fe1.example.org, DNS:alt.example.org',
    }
    const sock = (authorized: boolean) => ({ authorized, getPeerCertificate: () => cert as never })
    const any = new CallerAuth({ mtls: true })
    assert.deepEqual(any.identify({}, sock(true)), { method: 'mtls', name: 'fe1.example.org' })
    assert.equal(any.identify({}, sock(false)), undefined)
    const listed = new CallerAuth({ mtls: true, clientNames: ['alt.example.org'] })
    assert.deepEqual(listed.identify({}, sock(true)), { method: 'mtls', name: 'alt.example.org' })
    const other = new CallerAuth({ mtls: true, clientNames: ['fe9.example.org'] })
    assert.equal(other.identify({}, sock(true)), undefined)
    assert.equal(
      new CallerAuth({ tokens: [TOKEN] }).identify({}, sock(true)),
      undefined,
      'no mTLS configured',
    )
  })

  test('session tokens go to the session verifier, never compared as static tokens', () => {
    const auth = new CallerAuth({
      tokens: [TOKEN],
      sessions: {
        looksLike: (t) => t.startsWith('sgs1.'),
        verify: (t) => (t === 'sgs1.good' ? 'host/fe@R' : null),
      },
    })
    assert.deepEqual(auth.identify({ authorization: 'Bearer sgs1.good' }, undefined), {
      method: 'session',
      name: 'host/fe@R',
    })
    assert.equal(auth.identify({ authorization: 'Bearer sgs1.bad' }, undefined), undefined)
    assert.equal(bearerOf('Bearer abc'), 'abc')
    assert.equal(bearerOf('Bearer a b'), undefined)
  })
})
