/**
 * Hostile RPC bodies against `saslgate serve --listen` (a child process, real KDC): too
 * large, not Protobuf, not JSON, the wrong content type, fields over 256 bytes; over the
 * Connect protocol (binary and JSON, HTTP/1.1) and gRPC (h2c). Each gets a clear error
 * (a Connect/gRPC code and a message saying what is wrong), none reaches the pipeline, the
 * service's memory does not follow the attacker's body sizes, and it keeps answering.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect as h2connect } from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { create, toBinary } from '@bufbuild/protobuf'
import { Code, ConnectError, createClient } from '@connectrpc/connect'
import { createGrpcTransport } from '@connectrpc/connect-node'
import {
  AuthenticateRequestSchema,
  AuthService,
  Decision,
} from '../../src/gen/saslgate/v1/auth_pb.js'
import { startService, writeTokenFile } from '../../src/testing/deployment.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import type { SaslgateProcess } from '../../src/testing/saslgate-process.js'

const TOKEN = 'saslgate-rpc-input-token-0123456789abcdef0123456789'
const PASSWORD = 'Rpc-input-alice-1'
const BODY_LIMIT = 8192 // service.bodyLimitBytes (the default)
const FIELDS = ['login', 'password', 'service', 'realm', 'client_address'] as const

let realm: Realm
let dir: string
let svc: SaslgateProcess
let base: string
const AUTH = { authorization: `Bearer ${TOKEN}` }

before(async () => {
  realm = await startRealm({ users: [{ name: 'alice', password: PASSWORD }] })
  dir = await mkdtemp(join(tmpdir(), 'saslgate-rpc-input-'))
  const started = await startService({
    realm,
    tokenFile: writeTokenFile(dir, TOKEN),
    args: ['--set', 'log.level=debug'],
    keepAllOutput: true,
  })
  svc = started.proc
  base = started.url
})

after(async () => {
  await svc?.stop(5000)
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

const URL_PATH = '/saslgate.v1.AuthService/Authenticate'
/** Decision log lines so far, once the child's output has settled (logs trail the answers). */
async function decisions(): Promise<number> {
  let last = -1
  for (let i = 0; i < 20 && svc.output().length !== last; i++) {
    last = svc.output().length
    await sleep(50)
  }
  return (svc.output().match(/"decision":"(ok|invalid|unavailable)"/g) ?? []).length
}

interface Answer {
  status: number
  contentType: string
  text: string
  json?: { code?: string; message?: string }
}

async function post(headers: Record<string, string>, body: Uint8Array | string): Promise<Answer> {
  const r = await fetch(base + URL_PATH, {
    method: 'POST',
    headers,
    body,
    signal: AbortSignal.timeout(10_000),
  })
  const text = await r.text()
  let json: Answer['json']
  try {
    json = JSON.parse(text)
  } catch {}
  return {
    status: r.status,
    contentType: r.headers.get('content-type') ?? '',
    text,
    ...(json !== undefined ? { json } : {}),
  }
}

const JSON_H = { 'content-type': 'application/json', ...AUTH }
const PROTO_H = { 'content-type': 'application/proto', ...AUTH }

function protoBody(fields: Record<string, unknown>): Uint8Array {
  return toBinary(AuthenticateRequestSchema, create(AuthenticateRequestSchema, fields))
}

function assertConnectError(
  a: Answer,
  status: number,
  code: string,
  message: RegExp,
  what: string,
) {
  assert.equal(a.status, status, `${what}: ${a.status} ${a.text}`)
  assert.match(a.contentType, /^application\/json/, `${what}: content-type ${a.contentType}`)
  assert.equal(a.json?.code, code, `${what}: ${a.text}`)
  assert.match(a.json?.message ?? '', message, `${what}: ${a.text}`)
}

/** A Connect error from a gRPC client call, or undefined when it succeeded. */
async function grpcError(fields: Record<string, unknown>): Promise<ConnectError | undefined> {
  const client = createClient(AuthService, createGrpcTransport({ baseUrl: base }))
  try {
    await client.authenticate(create(AuthenticateRequestSchema, fields), {
      headers: AUTH,
      timeoutMs: 5000,
    })
    return undefined
  } catch (err) {
    return ConnectError.from(err)
  }
}

/** One raw gRPC call over h2c with `payload` as the message bytes (any length prefix). */
function rawGrpc(frame: Buffer): Promise<{ status: string; message: string }> {
  return new Promise((resolve, reject) => {
    const session = h2connect(base)
    session.on('error', reject)
    const req = session.request({
      ':method': 'POST',
      ':path': URL_PATH,
      'content-type': 'application/grpc+proto',
      te: 'trailers',
      ...AUTH,
    })
    let headersStatus = ''
    let headersMessage = ''
    req.on('response', (h) => {
      headersStatus = String(h['grpc-status'] ?? '')
      headersMessage = String(h['grpc-message'] ?? '')
    })
    req.on('trailers', (h) => {
      headersStatus = String(h['grpc-status'] ?? headersStatus)
      headersMessage = String(h['grpc-message'] ?? headersMessage)
    })
    req.on('data', () => {})
    req.on('error', () => {})
    req.on('close', () => {
      session.close()
      resolve({ status: headersStatus, message: decodeURIComponent(headersMessage) })
    })
    req.setTimeout(10_000, () => req.close())
    req.end(frame)
  })
}

function grpcFrame(message: Buffer, declaredLength = message.length): Buffer {
  const head = Buffer.alloc(5)
  head.writeUInt32BE(declaredLength, 1)
  return Buffer.concat([head, message])
}

describe('RPC input: too large', () => {
  test('a body over service.bodyLimitBytes: resource_exhausted naming the limit', async () => {
    const before = await decisions()
    const big = Buffer.alloc(BODY_LIMIT * 3, 0x61)
    assertConnectError(
      await post(PROTO_H, protoBody({ login: 'alice', password: big })),
      429,
      'resource_exhausted',
      /larger than.*8192/,
      'binary',
    )
    assertConnectError(
      await post(JSON_H, JSON.stringify({ login: 'alice', password: big.toString('base64') })),
      429,
      'resource_exhausted',
      /larger than.*8192/,
      'JSON',
    )
    const err = await grpcError({ login: 'alice', password: big })
    assert.equal(err?.code, Code.ResourceExhausted, String(err))
    // A frame that only declares a huge length is refused without waiting for the bytes.
    const raw = await rawGrpc(grpcFrame(Buffer.alloc(10), 0x7fffffff))
    assert.equal(raw.status, String(Code.ResourceExhausted), JSON.stringify(raw))
    assert.equal(await decisions(), before, 'an oversized request reached the pipeline')
  })

  test('forty 5 MB bodies at once: all refused, memory stays bounded, service still answers', async () => {
    const rssBefore = rssOf(svc.pid)
    const five = Buffer.alloc(5 * 1024 * 1024, 0x61)
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        post(i % 2 ? PROTO_H : JSON_H, i % 2 ? five : `{"login":"${five.toString()}"}`),
      ),
    )
    for (const a of answers)
      assert.equal(a.json?.code, 'resource_exhausted', `${a.status} ${a.text}`)
    const grown = rssOf(svc.pid) - rssBefore
    assert.ok(
      grown < 100 * 1024 * 1024,
      `RSS grew by ${(grown / 1048576).toFixed(0)} MB for 200 MB sent`,
    )
    const ok = await post(JSON_H, JSON.stringify({ login: 'alice', password: b64(PASSWORD) }))
    assert.deepEqual(ok.json, { decision: 'DECISION_OK' })
  })

  test('an unauthenticated caller is refused before the body is read, whatever its size', async () => {
    const before = await decisions()
    const a = await post({ 'content-type': 'application/proto' }, Buffer.alloc(5 * 1024 * 1024, 1))
    assertConnectError(a, 401, 'unauthenticated', /not authenticated/, 'unauthenticated 5 MB')
    assert.equal(await decisions(), before)
  })
})

const b64 = (s: string) => Buffer.from(s).toString('base64')
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? 0) * 1024
}

describe('RPC input: malformed', () => {
  const GARBAGE = [
    Buffer.from([0xff, 0xff, 0xff, 0x12, 0x99]),
    Buffer.from([0x0a, 0xff, 0x7f]), // field 1, length beyond the data
    Buffer.from([0x12, 0x05, 0x61]), // password, truncated
    Buffer.from([0x0f]), // wire type 7 does not exist
  ]

  test('garbage Protobuf over Connect binary (the shim path): invalid_argument', async () => {
    const before = await decisions()
    for (const garbage of GARBAGE)
      assertConnectError(
        await post(PROTO_H, garbage),
        400,
        'invalid_argument',
        /cannot decode/,
        `binary ${garbage.toString('hex')}`,
      )
    assert.equal(await decisions(), before)
  })

  test('garbage Protobuf over gRPC: refused with a message, never decided', async () => {
    const before = await decisions()
    for (const garbage of GARBAGE) {
      const raw = await rawGrpc(grpcFrame(garbage))
      assert.ok(
        raw.status !== '' && raw.status !== '0',
        `gRPC ${garbage.toString('hex')}: ${JSON.stringify(raw)}`,
      )
      assert.match(raw.message, /parse|decode/, JSON.stringify(raw))
    }
    assert.equal(await decisions(), before)
  })

  test('garbage Protobuf over gRPC: the code is invalid_argument (3), not internal', async () => {
    for (const garbage of GARBAGE) {
      const raw = await rawGrpc(grpcFrame(garbage))
      assert.equal(
        raw.status,
        String(Code.InvalidArgument),
        `gRPC ${garbage.toString('hex')}: ${JSON.stringify(raw)}`,
      )
    }
  })

  test('bad JSON: invalid_argument naming what is wrong', async () => {
    const before = await decisions()
    const cases: Array<[string, RegExp]> = [
      ['{"login": ', /JSON/],
      ['{"login": 5}', /login/],
      ['{"login": "alice", "password": "***"}', /password.*base64/],
      ['[1,2,3]', /AuthenticateRequest/],
      ['"just a string"', /AuthenticateRequest/],
    ]
    for (const [body, message] of cases)
      assertConnectError(await post(JSON_H, body), 400, 'invalid_argument', message, body)
    assert.equal(await decisions(), before)
  })

  test('a field over 256 bytes: invalid_argument naming the field (JSON, binary, gRPC)', async () => {
    const before = await decisions()
    for (const field of FIELDS) {
      const json: Record<string, string> = { login: 'alice', password: b64('pw') }
      const msg: Record<string, unknown> = { login: 'alice', password: Buffer.from('pw') }
      const key = field === 'client_address' ? 'clientAddress' : field
      if (field === 'password') {
        json.password = Buffer.alloc(257, 0x61).toString('base64')
        msg.password = Buffer.alloc(257, 0x61)
      } else {
        json[key] = 'a'.repeat(257)
        msg[key] = 'a'.repeat(257)
      }
      const named = new RegExp(`field ${field} is longer than 256 bytes`)
      assertConnectError(
        await post(JSON_H, JSON.stringify(json)),
        400,
        'invalid_argument',
        named,
        `JSON ${field}`,
      )
      assertConnectError(
        await post(PROTO_H, protoBody(msg)),
        400,
        'invalid_argument',
        named,
        `binary ${field}`,
      )
      const err = await grpcError(msg)
      assert.equal(err?.code, Code.InvalidArgument, `gRPC ${field}: ${String(err)}`)
      assert.match(err?.rawMessage ?? '', named)
      // 256 bytes exactly is fine (the saslauthd limit).
      const edge = {
        ...json,
        [key]: field === 'password' ? Buffer.alloc(256, 0x61).toString('base64') : 'a'.repeat(256),
      }
      const okEdge = await post(JSON_H, JSON.stringify(edge))
      assert.equal(okEdge.status, 200, `256-byte ${field}: ${okEdge.text}`)
    }
    // Multi-byte characters count in bytes, not characters: 129 x 'ä' = 258 bytes.
    const wide = await post(JSON_H, JSON.stringify({ login: 'ä'.repeat(129), password: b64('pw') }))
    assertConnectError(wide, 400, 'invalid_argument', /field login/, 'wide login')
    assert.equal(
      await decisions(),
      before + FIELDS.length,
      'only the 256-byte requests were decided',
    )
  })
})

describe('RPC input: the wrong content type', () => {
  const wrong: Array<[string, Record<string, string>, string]> = [
    ['text/plain', { 'content-type': 'text/plain', ...AUTH }, 'hello'],
    ['no content type', { ...AUTH }, 'hello'],
    ['a form', { 'content-type': 'application/x-www-form-urlencoded', ...AUTH }, 'login=alice'],
    ['XML', { 'content-type': 'application/xml', ...AUTH }, '<login>alice</login>'],
  ]

  test('refused with 415 and never decided', async () => {
    const before = await decisions()
    for (const [name, headers, body] of wrong) {
      const a = await post(headers, body)
      assert.equal(a.status, 415, `${name}: ${a.status} ${a.text}`)
    }
    assert.equal(await decisions(), before)
  })

  test('the 415 carries a JSON error saying which content types are accepted', async () => {
    const problems: string[] = []
    for (const [name, headers, body] of wrong) {
      const a = await post(headers, body)
      if (!/^application\/json/.test(a.contentType) || a.json?.message === undefined)
        problems.push(
          `${name}: ${a.status}, content-type "${a.contentType}", body "${a.text.slice(0, 80)}"`,
        )
      else if (!/application\/(proto|json)/.test(a.json.message))
        problems.push(`${name}: message does not name the accepted types: ${a.text.slice(0, 120)}`)
    }
    assert.deepEqual(problems, [], 'unclear 415 answers')
  })
})

describe('RPC input: afterwards', () => {
  test('the service still decides correctly', async () => {
    const good = await post(JSON_H, JSON.stringify({ login: 'alice', password: b64(PASSWORD) }))
    assert.deepEqual(good.json, { decision: 'DECISION_OK' })
    const bad = await post(PROTO_H, protoBody({ login: 'alice', password: Buffer.from('nope') }))
    assert.equal(bad.status, 200)
    const client = createClient(AuthService, createGrpcTransport({ baseUrl: base }))
    const r = await client.authenticate(
      { login: 'alice', password: Buffer.from(PASSWORD) },
      { headers: AUTH, timeoutMs: 5000 },
    )
    assert.equal(r.decision, Decision.OK)
    assert.ok(!svc.output().includes(PASSWORD), 'the password was logged')
  })
})
