import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import type { Authenticator, AuthRequest, AuthResult } from '../../src/authenticator.js'
import type { Reason } from '../../src/errors.js'
import {
  decodeReply,
  encodeField,
  encodeReply,
  encodeRequest,
  NO_INVALID_TEXT,
  NO_UNAVAILABLE_TEXT,
} from '../../src/saslauthd/codec.js'
import {
  type ListenerLogger,
  type SaslauthdDecisionEvent,
  SaslauthdListener,
  type SaslauthdListenerOptions,
} from '../../src/saslauthd/listener.js'

const dir = mkdtempSync(join(tmpdir(), 'saslgate-listener-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let seq = 0
const nextPath = () => join(dir, `s${++seq}.sock`)

const OK = encodeReply('ok')
const NO = encodeReply('invalid')
const NO_UNAVAILABLE = encodeReply('unavailable')

/** A scripted authenticator: the login picks the behaviour. */
class FakeAuthenticator implements Authenticator {
  readonly requests: AuthRequest[] = []
  readonly signals: AbortSignal[] = []
  readonly timers = new Set<NodeJS.Timeout>()
  /** The password buffers as handed over (not copies): to see when the listener wipes them. */
  readonly passwordBuffers: Buffer[] = []
  /** Settles the pending `held` requests (login `held`) with this result. */
  readonly held: Array<(r: AuthResult) => void> = []
  closed = false

  authenticate(req: AuthRequest): Promise<AuthResult> {
    this.requests.push({ ...req, password: Buffer.from(req.password) })
    this.passwordBuffers.push(req.password)
    this.signals.push(req.signal)
    const pw = req.password.toString()
    const invalid = (reason: Reason): Promise<AuthResult> =>
      Promise.resolve({ decision: 'invalid', reason, stage: 'kerberos' })
    switch (req.login) {
      case 'alice':
        return pw === 'secret'
          ? Promise.resolve({ decision: 'ok', reason: 'ok', stage: 'kerberos' })
          : invalid('bad_password')
      case 'nobody':
        return invalid('unknown_principal')
      case 'blocked':
        return invalid('guard_blocked')
      case 'shed':
        return Promise.resolve({ decision: 'unavailable', reason: 'shed', stage: 'admission' })
      case 'hang':
        return new Promise(() => {})
      case 'held':
        return new Promise((resolve) => this.held.push(resolve))
      case 'throw':
        throw new Error('boom')
      case 'reject':
        return Promise.reject(new Error('boom'))
      case 'garbage':
        return Promise.resolve({ decision: 'OK' } as unknown as AuthResult)
      default: {
        // `slow<ms>`: answers OK after that long (ignores the signal, like a stuck backend).
        const ms = Number(/^slow(\d+)$/.exec(req.login)?.[1] ?? Number.NaN)
        if (Number.isFinite(ms)) {
          return new Promise((resolve) => {
            const t = setTimeout(() => {
              this.timers.delete(t)
              resolve({ decision: 'ok', reason: 'ok', stage: 'kerberos' })
            }, ms)
            this.timers.add(t)
          })
        }
        return invalid('bad_password')
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true
    for (const t of this.timers) clearTimeout(t)
  }
}

interface Started {
  listener: SaslauthdListener
  auth: FakeAuthenticator
  path: string
  events: SaslauthdDecisionEvent[]
  logs: Array<{ level: string; obj: Record<string, unknown>; msg?: string }>
}

async function start(
  t: { after: (fn: () => unknown) => void },
  opts: Partial<SaslauthdListenerOptions> = {},
): Promise<Started> {
  const path = opts.socketPath ?? nextPath()
  const auth = new FakeAuthenticator()
  const events: SaslauthdDecisionEvent[] = []
  const logs: Started['logs'] = []
  const log =
    (level: string) =>
    (obj: Record<string, unknown>, msg?: string): void => {
      logs.push({ level, obj, msg })
    }
  const logger: ListenerLogger = {
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    debug: log('debug'),
  }
  const listener = new SaslauthdListener({
    socketPath: path,
    authenticator: auth,
    readTimeoutMs: 2000,
    answerDeadlineMs: 1000,
    logger,
    onDecision: (e) => events.push(e),
    ...opts,
  })
  t.after(async () => {
    await listener.close()
    await auth.close()
  })
  await listener.listen()
  return { listener, auth, path, events, logs }
}

interface ClientResult {
  data: Buffer
  elapsedMs: number
  /** The server closed its write side (we saw EOF). */
  ended: boolean
  timedOut: boolean
  error?: string
}

interface ClientOptions {
  /** Shut down our write side after the last write (a client that half-closes). */
  endAfterWrite?: boolean
  /** Destroy the socket this long after the last write (a client that goes away). */
  destroyAfterMs?: number
  /** Bytes to send later, after a delay. */
  later?: { bytes: Buffer; delayMs: number }
  timeoutMs?: number
}

/** One client connection: write, read until the server closes (bounded in time). */
function request(path: string, bytes: Buffer | null, o: ClientOptions = {}): Promise<ClientResult> {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const chunks: Buffer[] = []
    let ended = false
    let timedOut = false
    let error: string | undefined
    const timers: NodeJS.Timeout[] = []
    const sock = connect({ path })
    const timer = setTimeout(() => {
      timedOut = true
      sock.destroy()
    }, o.timeoutMs ?? 5000)
    timers.push(timer)
    sock.on('connect', () => {
      if (bytes !== null) sock.write(bytes)
      const afterWrites = () => {
        if (o.endAfterWrite) sock.end()
        if (o.destroyAfterMs !== undefined) {
          timers.push(setTimeout(() => sock.destroy(), o.destroyAfterMs))
        }
      }
      if (o.later) {
        const later = o.later
        timers.push(
          setTimeout(() => {
            sock.write(later.bytes)
            afterWrites()
          }, later.delayMs),
        )
      } else afterWrites()
    })
    sock.on('data', (d) => chunks.push(d))
    sock.on('end', () => {
      ended = true
    })
    sock.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message
    })
    sock.on('close', () => {
      for (const x of timers) clearTimeout(x)
      resolve({
        data: Buffer.concat(chunks),
        elapsedMs: performance.now() - t0,
        ended,
        timedOut,
        ...(error !== undefined ? { error } : {}),
      })
    })
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not reached in time')
    await sleep(10)
  }
}

const good = { login: 'alice', password: 'secret', service: 'imap', realm: '' }

describe('SaslauthdListener: answers', () => {
  test('good password -> OK, the authenticator gets the fields, then the server half-closes', async (t) => {
    const s = await start(t)
    const r = await request(s.path, encodeRequest({ ...good, realm: 'EXAMPLE.ORG' }))
    assert.deepStrictEqual(r.data, OK)
    assert.equal(r.ended, true)
    assert.equal(r.timedOut, false)
    const req = s.auth.requests[0]!
    assert.equal(req.login, 'alice')
    assert.equal(req.password.toString(), 'secret')
    assert.equal(req.service, 'imap')
    assert.equal(req.realm, 'EXAMPLE.ORG')
    assert.equal(req.clientAddress, undefined)
    assert.equal(s.auth.signals[0]!.aborted, false)
    await waitFor(() => s.listener.stats().openConnections === 0)
    const e = s.events[0]!
    assert.equal(e.decision, 'ok')
    assert.equal(e.delivered, true)
    assert.equal(e.fieldCount, 4)
    assert.ok(!JSON.stringify(e).includes('secret'), 'the event never carries the password')
  })

  test('every kind of invalid gives the byte-identical NO', async (t) => {
    const s = await start(t, { fields: 'auto', fiveFieldGraceMs: 1 })
    const cases: Array<[string, Buffer, ClientOptions?]> = [
      ['wrong password', encodeRequest({ ...good, password: 'wrong' })],
      ['unknown user', encodeRequest({ ...good, login: 'nobody' })],
      ['guard blocked', encodeRequest({ ...good, login: 'blocked' })],
      ['truncated + EOF', encodeRequest(good).subarray(0, 10), { endAfterWrite: true }],
      ['over-long field', encodeRequest({ ...good, realm: 'x'.repeat(300) })],
      ['zero-length login', encodeRequest({ ...good, login: '' })],
      ['zero-length password', encodeRequest({ ...good, password: '' })],
      ['NUL in login', encodeRequest({ ...good, login: 'ali\0ce' })],
      ['NUL in password', encodeRequest({ ...good, password: Buffer.from('secret\0x') })],
      [
        'garbage after the frame',
        Buffer.concat([encodeRequest({ ...good, clientAddress: '1;2' }), Buffer.from('xyz')]),
      ],
      ['bad UTF-8', encodeRequest({ ...good, login: Buffer.from([0xff, 0xfe]) })],
    ]
    for (const [name, bytes, o] of cases) {
      const r = await request(s.path, bytes, o)
      assert.deepStrictEqual(r.data, NO, name)
      assert.equal(r.data.subarray(2).toString(), NO_INVALID_TEXT, name)
    }
    // Only the three well-formed requests reached the authenticator.
    assert.deepStrictEqual(
      s.auth.requests.map((r) => r.login),
      ['alice', 'nobody', 'blocked'],
    )
    const details = s.events.filter((e) => e.stage === 'decode').map((e) => e.detail)
    assert.deepStrictEqual(details, [
      'truncated',
      'field_too_long',
      'empty_login',
      'empty_password',
      'nul_byte',
      'nul_byte',
      'trailing_garbage',
      'bad_utf8',
    ])
  })

  test('an unavailable decision is a NO with the unavailable text', async (t) => {
    const s = await start(t)
    const r = await request(s.path, encodeRequest({ ...good, login: 'shed' }))
    assert.deepStrictEqual(r.data, NO_UNAVAILABLE)
    assert.equal(r.data.subarray(2).toString(), NO_UNAVAILABLE_TEXT)
    const parsed = decodeReply(r.data)
    assert.equal(parsed.status === 'reply' && parsed.ok, false)
  })

  test('garbage arriving while the authenticator works -> NO, request aborted', async (t) => {
    const s = await start(t, { fields: '4' })
    const r = await request(s.path, encodeRequest({ ...good, login: 'slow300' }), {
      later: { bytes: Buffer.from('junk'), delayMs: 50 },
    })
    assert.deepStrictEqual(r.data, NO)
    assert.ok(r.elapsedMs < 290, `answered at ${r.elapsedMs} ms, before the authenticator`)
    assert.equal(s.auth.signals[0]!.aborted, true)
  })
})

describe('SaslauthdListener: timeouts and deadlines', () => {
  // The cause is asserted (the reason the listener recorded); the time only within loose
  // bounds: not before the timeout, and not far past it (machines here are shared).
  test('a client that connects and sends nothing gets NO at the read timeout', async (t) => {
    const s = await start(t, { readTimeoutMs: 500 })
    const r = await request(s.path, null)
    assert.deepStrictEqual(r.data, NO)
    assert.equal(s.events[0]!.detail, 'read_timeout')
    assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 1500, `after ${r.elapsedMs} ms`)
  })

  test('half a frame and wait -> NO at the read timeout', async (t) => {
    const s = await start(t, { readTimeoutMs: 500 })
    const r = await request(s.path, encodeRequest(good).subarray(0, 12))
    assert.deepStrictEqual(r.data, NO)
    assert.equal(s.events[0]!.detail, 'read_timeout')
    assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 1500, `after ${r.elapsedMs} ms`)
    assert.equal(s.auth.requests.length, 0)
  })

  test('an authenticator that never settles -> NO at the deadline, signal aborted', async (t) => {
    const s = await start(t, { answerDeadlineMs: 500 })
    const r = await request(s.path, encodeRequest({ ...good, login: 'hang' }))
    assert.deepStrictEqual(r.data, NO_UNAVAILABLE)
    assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 1500, `after ${r.elapsedMs} ms`)
    assert.equal(s.auth.signals[0]!.aborted, true)
    assert.equal(s.events[0]!.reason, 'deadline')
    assert.equal(s.listener.stats().inFlight, 0)
    assert.equal(s.listener.stats().authenticatorPending, 1)
  })

  test('the frame password is zeroed once the authenticator has answered', async (t) => {
    const s = await start(t)
    for (const [login, password, reply] of [
      ['alice', 'secret', OK],
      ['alice', 'wrong-password', NO],
      ['reject', 'rejected-password', NO_UNAVAILABLE],
    ] as const) {
      const r = await request(s.path, encodeRequest({ ...good, login, password }))
      assert.deepStrictEqual(r.data, reply, login)
      const buffer = s.auth.passwordBuffers.at(-1)!
      assert.equal(s.auth.requests.at(-1)!.password.toString(), password, 'it had the password')
      assert.equal(buffer.length, Buffer.byteLength(password))
      assert.ok(
        buffer.every((b) => b === 0),
        `${login}: the buffer the authenticator got is zeroed after the answer`,
      )
    }
  })

  test('answered at the deadline: the password stays until the authenticator settles, then is zeroed', async (t) => {
    const s = await start(t, { answerDeadlineMs: 200 })
    const r = await request(s.path, encodeRequest({ ...good, login: 'held', password: 'late' }))
    assert.deepStrictEqual(r.data, NO_UNAVAILABLE)
    const buffer = s.auth.passwordBuffers[0]!
    // Still running: it may yet read the password (zeros sent on would be a wrong guess).
    assert.equal(buffer.toString(), 'late')
    s.auth.held[0]!({ decision: 'ok', reason: 'ok', stage: 'kerberos' })
    await waitFor(() => s.listener.stats().authenticatorPending === 0)
    assert.ok(
      buffer.every((b) => b === 0),
      'zeroed once the authenticator settled',
    )
  })

  test('OK arriving after the deadline is never sent', async (t) => {
    const s = await start(t, { answerDeadlineMs: 200 })
    const r = await request(s.path, encodeRequest({ ...good, login: 'slow400' }))
    assert.deepStrictEqual(r.data, NO_UNAVAILABLE)
    await waitFor(() => s.listener.stats().authenticatorPending === 0)
    assert.equal(s.events.length, 1, 'one decision per request')
  })

  test('an authenticator that throws, rejects or returns garbage -> NO (fail closed)', async (t) => {
    const s = await start(t)
    for (const login of ['throw', 'reject', 'garbage']) {
      const r = await request(s.path, encodeRequest({ ...good, login }))
      assert.deepStrictEqual(r.data, NO_UNAVAILABLE, login)
    }
    assert.deepStrictEqual(
      s.events.map((e) => e.reason),
      ['internal_error', 'internal_error', 'internal_error'],
    )
  })

  test('a client that disconnects before the reply: no crash, no leak', async (t) => {
    const s = await start(t, { answerDeadlineMs: 2000 })
    const r = await request(s.path, encodeRequest({ ...good, login: 'slow200' }), {
      destroyAfterMs: 20,
    })
    assert.equal(r.data.length, 0)
    await waitFor(() => s.events.length === 1)
    assert.equal(s.events[0]!.delivered, false)
    await waitFor(() => s.listener.stats().openConnections === 0)
    assert.equal(s.listener.stats().inFlight, 0)
    // And the listener still works.
    assert.deepStrictEqual((await request(s.path, encodeRequest(good))).data, OK)
  })

  test('a client that keeps its end open after the reply is closed after drainTimeoutMs', async (t) => {
    const s = await start(t, { drainTimeoutMs: 200 })
    const sock = connect({ path: s.path, allowHalfOpen: true })
    t.after(() => sock.destroy())
    const chunks: Buffer[] = []
    sock.on('data', (d) => chunks.push(d))
    const gotEnd = new Promise<void>((resolve) => sock.once('end', resolve))
    const failed = new Promise<string>((resolve) =>
      sock.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message)),
    )
    const t0 = performance.now()
    sock.write(encodeRequest({ ...good, login: 'alice' }))
    await gotEnd
    assert.deepStrictEqual(Buffer.concat(chunks), OK)
    // The server waits for our EOF, bounded: then it closes anyway.
    await waitFor(() => s.listener.stats().openConnections === 0)
    const ms = performance.now() - t0
    assert.ok(ms >= 150 && ms < 3000, `closed after ${ms} ms`)
    sock.write(Buffer.from('late'))
    assert.equal(await failed, 'EPIPE')
  })
})

describe('SaslauthdListener: field forms', () => {
  const five = { ...good, clientAddress: '192.0.2.7;40123' }

  test('5-field request in auto mode: the client address reaches the authenticator', async (t) => {
    const s = await start(t, { fields: 'auto', fiveFieldGraceMs: 2000 })
    const r = await request(s.path, encodeRequest(five))
    assert.deepStrictEqual(r.data, OK)
    assert.ok(r.elapsedMs < 1500, 'a whole 5-field frame does not wait for the grace')
    assert.equal(s.auth.requests[0]!.clientAddress, '192.0.2.7;40123')
    assert.equal(s.events[0]!.fieldCount, 5)
  })

  test('default grace (0, one event-loop turn): a one-write 5-field request keeps its address', async (t) => {
    const s = await start(t, { fields: 'auto' })
    const r = await request(s.path, encodeRequest(five))
    assert.deepStrictEqual(r.data, OK)
    assert.equal(s.auth.requests[0]!.clientAddress, '192.0.2.7;40123')
    assert.equal(s.events[0]!.fieldCount, 5)
  })

  test('default grace: a 4-field request is decided as 4 fields', async (t) => {
    const s = await start(t, { fields: 'auto' })
    const r = await request(s.path, encodeRequest(good))
    assert.deepStrictEqual(r.data, OK)
    assert.equal(s.events[0]!.fieldCount, 4)
    assert.equal(s.auth.requests[0]!.clientAddress, undefined)
  })

  test('default grace: a fifth field written 30 ms later is trailing bytes (NO), never a crash', async (t) => {
    const s = await start(t, { fields: 'auto' })
    // A login whose check takes 300 ms: the late field always comes while it is decided.
    const slow = { ...five, login: 'slow300' }
    const bytes = encodeRequest(slow)
    const cut = encodeRequest({ ...good, login: 'slow300' }).length
    const r = await request(s.path, bytes.subarray(0, cut), {
      later: { bytes: bytes.subarray(cut), delayMs: 30 },
    })
    // With no grace the 4-field frame is decided at once; the late bytes abort it.
    assert.deepStrictEqual(r.data, NO)
    assert.equal(s.events.length, 1)
    assert.equal(s.events[0]!.fieldCount, 4)
    assert.equal(s.events[0]!.detail, 'trailing_garbage')
    assert.equal(s.auth.requests.length, 1, 'the 4-field request went to the authenticator')
    assert.equal(s.auth.signals[0]!.aborted, true, 'and its check was aborted')
    assert.ok(r.elapsedMs < 290, `answered at ${r.elapsedMs} ms, before the check could end`)
  })

  test('5-field request forced (fields=5)', async (t) => {
    const s = await start(t, { fields: '5' })
    const r = await request(s.path, encodeRequest(five))
    assert.deepStrictEqual(r.data, OK)
    assert.equal(s.auth.requests[0]!.clientAddress, '192.0.2.7;40123')
  })

  test('5-field request with the fifth field split off and late (within the grace)', async (t) => {
    const s = await start(t, { fields: 'auto', fiveFieldGraceMs: 500 })
    const bytes = encodeRequest(five)
    const cut = encodeRequest(good).length
    const r = await request(s.path, bytes.subarray(0, cut), {
      later: { bytes: bytes.subarray(cut), delayMs: 30 },
    })
    assert.deepStrictEqual(r.data, OK)
    assert.equal(s.auth.requests[0]!.clientAddress, '192.0.2.7;40123')
  })

  test('4-field request in auto mode waits the grace and no more', async (t) => {
    const grace = 200
    const s = await start(t, { fields: 'auto', fiveFieldGraceMs: grace })
    const r = await request(s.path, encodeRequest(good))
    assert.deepStrictEqual(r.data, OK)
    assert.ok(r.elapsedMs >= grace - 20, `answered after ${r.elapsedMs} ms`)
    assert.ok(r.elapsedMs < grace + 1000, `answered after ${r.elapsedMs} ms`)
    assert.equal(s.events[0]!.fieldCount, 4)
  })

  test('4-field request with EOF right after it in auto mode does not wait the grace', async (t) => {
    const s = await start(t, { fields: 'auto', fiveFieldGraceMs: 2000 })
    const r = await request(s.path, encodeRequest(good), { endAfterWrite: true })
    assert.deepStrictEqual(r.data, OK)
    assert.ok(r.elapsedMs < 1500, `answered after ${r.elapsedMs} ms`)
  })

  test('fields=4 answers a 4-field request without any grace', async (t) => {
    const s = await start(t, { fields: '4', fiveFieldGraceMs: 2000 })
    const r = await request(s.path, encodeRequest(good))
    assert.deepStrictEqual(r.data, OK)
    assert.ok(r.elapsedMs < 1500, `answered after ${r.elapsedMs} ms`)
  })

  test('fields=4 refuses a 5-field request (trailing garbage)', async (t) => {
    const s = await start(t, { fields: '4' })
    const r = await request(s.path, encodeRequest(five))
    assert.deepStrictEqual(r.data, NO)
    assert.equal(s.auth.requests.length, 0)
  })

  test('fields=5 with a 4-field client: NO at the read timeout, never a hang', async (t) => {
    const s = await start(t, { fields: '5', readTimeoutMs: 500 })
    const r = await request(s.path, encodeRequest(good))
    assert.deepStrictEqual(r.data, NO)
    assert.equal(r.timedOut, false)
    assert.equal(s.events[0]!.detail, 'read_timeout', 'waiting for the fifth field timed out')
    assert.equal(s.auth.requests.length, 0)
    assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 1500, `after ${r.elapsedMs} ms`)
  })

  test('an empty fifth field is accepted without a client address', async (t) => {
    const s = await start(t, { fields: 'auto' })
    const r = await request(s.path, Buffer.concat([encodeRequest(good), encodeField('')]))
    assert.deepStrictEqual(r.data, OK)
    assert.equal(s.auth.requests[0]!.clientAddress, undefined)
  })
})

describe('SaslauthdListener: socket file', () => {
  test('a stale socket is replaced', async (t) => {
    const path = nextPath()
    // A process that listens and dies without cleaning up leaves a stale socket file.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ],
      { stdio: 'ignore' },
    )
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    await new Promise((resolve) => child.once('exit', resolve))
    assert.ok(statSync(path).isSocket(), 'stale socket left behind')
    const s = await start(t, { socketPath: path })
    assert.deepStrictEqual((await request(s.path, encodeRequest(good))).data, OK)
  })

  test('a live socket is refused with SASLGATE_ERR_SOCKET_IN_USE', async (t) => {
    const path = nextPath()
    const other = createServer((c) => c.destroy())
    await new Promise<void>((resolve) => other.listen(path, resolve))
    t.after(() => new Promise<void>((resolve) => other.close(() => resolve())))
    const listener = new SaslauthdListener({
      socketPath: path,
      authenticator: new FakeAuthenticator(),
    })
    t.after(() => listener.close())
    await assert.rejects(listener.listen(), { code: 'SASLGATE_ERR_SOCKET_IN_USE' })
    assert.ok(statSync(path).isSocket(), 'the live socket is left alone')
  })

  test('a path that is not a socket is refused', async (t) => {
    const path = nextPath()
    writeFileSync(path, 'not a socket')
    const listener = new SaslauthdListener({
      socketPath: path,
      authenticator: new FakeAuthenticator(),
    })
    t.after(() => listener.close())
    await assert.rejects(listener.listen(), { code: 'SASLGATE_ERR_SOCKET_PATH' })
    assert.ok(statSync(path).isFile(), 'the file is left alone')
  })

  test('socket mode defaults to 0777 and is applied when given', async (t) => {
    const a = await start(t)
    assert.equal(statSync(a.path).mode & 0o7777, 0o777)
    const b = await start(t, { socketMode: 0o660 })
    assert.equal(statSync(b.path).mode & 0o7777, 0o660)
  })

  test('socket group is applied (by name and by gid)', async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip('needs root to chgrp')
      return
    }
    const byName = await start(t, { socketGroup: 'daemon' })
    assert.equal(statSync(byName.path).gid, 1)
    const byGid = await start(t, { socketGroup: 2 })
    assert.equal(statSync(byGid.path).gid, 2)
    const bad = new SaslauthdListener({
      socketPath: nextPath(),
      authenticator: new FakeAuthenticator(),
      socketGroup: 'no-such-group-saslgate',
    })
    t.after(() => bad.close())
    await assert.rejects(bad.listen(), { code: 'SASLGATE_ERR_CONFIG' })
  })

  test('close removes the socket file', async (t) => {
    const s = await start(t)
    await s.listener.close()
    assert.throws(() => statSync(s.path), { code: 'ENOENT' })
  })

  test('bad options are refused with SASLGATE_ERR_CONFIG', () => {
    const auth = new FakeAuthenticator()
    const mk = (o: Partial<SaslauthdListenerOptions>) => () =>
      new SaslauthdListener({ socketPath: nextPath(), authenticator: auth, ...o })
    assert.throws(mk({ fields: '6' as '4' }), { code: 'SASLGATE_ERR_CONFIG' })
    assert.throws(mk({ readTimeoutMs: 0 }), { code: 'SASLGATE_ERR_CONFIG' })
    assert.throws(mk({ answerDeadlineMs: 1.5 }), { code: 'SASLGATE_ERR_CONFIG' })
    assert.throws(mk({ socketMode: 0o10000 }), { code: 'SASLGATE_ERR_CONFIG' })
  })
})

describe('SaslauthdListener: capacity and lifecycle', () => {
  test('beyond maxConnections new connections get NO at once; the warning is rate-limited', async (t) => {
    const s = await start(t, { maxConnections: 2, readTimeoutMs: 3000 })
    const idle = [request(s.path, null), request(s.path, null)]
    await waitFor(() => s.listener.stats().openConnections === 2)
    const extra = []
    for (let i = 0; i < 3; i++) extra.push(await request(s.path, encodeRequest(good)))
    for (const r of extra) {
      assert.deepStrictEqual(r.data, NO_UNAVAILABLE)
      assert.ok(r.elapsedMs < 1500, `rejected after ${r.elapsedMs} ms`)
    }
    assert.equal(s.listener.stats().rejectedOverCapacity, 3)
    assert.equal(s.logs.filter((l) => l.level === 'warn').length, 1)
    assert.equal(s.auth.requests.length, 0)
    await s.listener.close()
    for (const r of await Promise.all(idle)) assert.deepStrictEqual(r.data, NO_UNAVAILABLE)
  })

  test('graceful close answers in-flight requests, then refuses to listen again', async (t) => {
    const s = await start(t, { answerDeadlineMs: 2000 })
    const inflight = request(s.path, encodeRequest({ ...good, login: 'slow200' }))
    const idle = request(s.path, null)
    await waitFor(
      () => s.listener.stats().inFlight === 1 && s.listener.stats().openConnections === 2,
    )
    const t0 = performance.now()
    const closing = s.listener.close()
    assert.equal(s.listener.close(), closing, 'close is idempotent')
    const [a, b] = await Promise.all([inflight, idle])
    await closing
    assert.deepStrictEqual(a.data, OK)
    assert.deepStrictEqual(b.data, NO_UNAVAILABLE)
    assert.ok(performance.now() - t0 < 2000)
    assert.throws(() => statSync(s.path), { code: 'ENOENT' })
    assert.equal(s.listener.stats().openConnections, 0)
    await assert.rejects(s.listener.listen(), { code: 'SASLGATE_ERR_CLOSED' })
    await s.listener.close()
  })

  test('close with a hung authenticator is bounded by the deadline', async (t) => {
    const s = await start(t, { answerDeadlineMs: 300 })
    const hung = request(s.path, encodeRequest({ ...good, login: 'hang' }))
    await waitFor(() => s.listener.stats().inFlight === 1)
    const t0 = performance.now()
    await s.listener.close()
    const ms = performance.now() - t0
    assert.deepStrictEqual((await hung).data, NO_UNAVAILABLE)
    assert.ok(ms < 2000, `close took ${ms} ms`)
  })

  test('a throwing onDecision hook does not break answers', async (t) => {
    const s = await start(t, {
      onDecision: () => {
        throw new Error('hook')
      },
    })
    assert.deepStrictEqual((await request(s.path, encodeRequest(good))).data, OK)
    assert.ok(s.logs.some((l) => l.level === 'error'))
  })

  test('many concurrent clients all get their own answer', async (t) => {
    const s = await start(t, { fields: '4' })
    const rs = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        request(s.path, encodeRequest({ ...good, password: i % 2 ? 'secret' : 'wrong' })),
      ),
    )
    rs.forEach((r, i) => {
      assert.deepStrictEqual(r.data, i % 2 ? OK : NO)
    })
    await waitFor(() => s.listener.stats().openConnections === 0)
    assert.equal(s.listener.stats().answered, 200)
  })
})
