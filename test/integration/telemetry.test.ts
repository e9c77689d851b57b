/**
 * Observability end to end, with real processes: testsaslauthd-like clients -> `saslgate
 * shim` -> `saslgate serve` -> a real MIT KDC, both exporting OTLP/HTTP (JSON) to a receiver
 * this test runs on 127.0.0.1, and both serving Prometheus `/metrics` on admin ports.
 *
 *   - one login yields one trace across both processes, parent/child links intact;
 *   - no password, session token or 256-bit value (a cache key) in anything the processes
 *     emitted: stdout/stderr, exported spans and metrics, /metrics scrapes, error bodies;
 *   - /metrics parses as Prometheus text and the counters move as expected.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { encodeRequest } from '../../src/saslauthd/codec.js'
import { saslauthdCheck } from '../../src/storm/saslauthd-client.js'
import {
  realmUsers,
  startService,
  startShim,
  writeTokenFile,
} from '../../src/testing/deployment.js'
import { freePort } from '../../src/testing/ports.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import type { SaslgateProcess } from '../../src/testing/saslgate-process.js'
import { OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js'
import { parsePrometheusText, sampleSum } from '../support/prometheus-text.js'

const ALICE = 'Tel3metry-Alice-Good-7731'
const BOB = 'Tel3metry-Bob-Good-8842'
const CAROL = 'Tel3metry-Carol-Good-9953'
const WRONG = 'Tel3metry-Wrong-Guess-1064'
const GUESSES = Array.from({ length: 12 }, (_, i) => `Tel3metry-Storm-${i}-x7`)
const TIMEOUT_PW = 'Tel3metry-Frozen-Service-2175'
const RPC_PW = 'Tel3metry-Rpc-Body-3286'
const TOKEN = 'telemetry-test-token-0123456789abcdef0123456789'
const SECRETS = [ALICE, BOB, CAROL, WRONG, ...GUESSES, TIMEOUT_PW, RPC_PW, TOKEN]

let realm: Realm
let receiver: OtlpReceiver
let dir: string
let svc: SaslgateProcess
let shim: SaslgateProcess
let socket: string
let rpcPort: number
let svcAdmin: number
let shimAdmin: number
const errorBodies: string[] = []

const otelEnv = () => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  OTEL_BSP_SCHEDULE_DELAY: '100',
  OTEL_METRIC_EXPORT_INTERVAL: '500',
})

before(async () => {
  realm = await startRealm({ users: realmUsers({ alice: ALICE, bob: BOB, carol: CAROL }) })
  receiver = await OtlpReceiver.start()
  dir = await mkdtemp(join(tmpdir(), 'saslgate-telemetry-'))
  const tokenFile = writeTokenFile(dir, TOKEN)
  rpcPort = await freePort()
  svcAdmin = await freePort()
  shimAdmin = await freePort()
  const service = await startService({
    realm,
    tokenFile,
    port: rpcPort,
    args: [
      '--set',
      `service.adminListen=127.0.0.1:${svcAdmin}`,
      '--set',
      'log.level=debug',
      '--set',
      'pipeline.guardThreshold=3',
    ],
    env: otelEnv(),
    keepAllOutput: true,
  })
  svc = service.proc
  socket = join(dir, 'mux')
  shim = await startShim({
    socket,
    upstream: service.url,
    tokenFile,
    args: [
      '--set',
      `shim.adminListen=127.0.0.1:${shimAdmin}`,
      '--set',
      'shim.deadlineMs=700',
      '--set',
      'log.level=debug',
    ],
    env: otelEnv(),
    keepAllOutput: true,
  })
})

after(async () => {
  try {
    if (svc !== undefined) process.kill(svc.pid, 'SIGCONT')
  } catch {}
  await shim?.stop()
  await svc?.stop()
  await receiver?.close()
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  return res.text()
}

function children(spans: ReceivedSpan[], parent: ReceivedSpan): ReceivedSpan[] {
  return spans.filter((s) => s.traceId === parent.traceId && s.parentSpanId === parent.spanId)
}

describe('telemetry across shim and service', () => {
  test('one login is one trace: socket request (shim) -> RPC (service) -> decision -> KDC exchanges', async () => {
    const r = await saslauthdCheck(socket, 'alice', ALICE)
    assert.equal(r.ok, true, r.reply)
    await receiver.waitForSpans(
      (spans) => spans.some((s) => s.name === 'saslgate.kdc.exchange'),
      10_000,
    )
    await new Promise((res) => setTimeout(res, 300))
    const spans = receiver.spans
    const roots = spans.filter((s) => s.name === 'saslgate.saslauthd.request')
    assert.equal(roots.length, 1, `one socket request span: ${spans.map((s) => s.name).join(', ')}`)
    const root = roots[0] as ReceivedSpan
    assert.equal(root.service, 'saslgate-shim')
    assert.equal(root.parentSpanId, undefined)
    assert.equal(root.attributes['saslgate.decision'], 'ok')
    assert.deepEqual(
      root.events.map((e) => [e.name, e.attributes['saslgate.outcome']]),
      [['upstream.attempt', 'answer']],
    )
    const [rpc] = children(spans, root)
    assert.equal(
      rpc?.name,
      'saslgate.rpc.Authenticate',
      'the service span continues the shim trace',
    )
    assert.equal(rpc?.service, 'saslgate-service')
    const [decide] = children(spans, rpc as ReceivedSpan)
    assert.equal(decide?.name, 'saslgate.decide')
    const a = (decide as ReceivedSpan).attributes
    assert.equal(a['saslgate.decision'], 'ok')
    assert.equal(a['saslgate.stage'], 'kerberos')
    assert.equal(a['saslgate.cache_hit'], false)
    assert.equal(a['saslgate.guard'], 'open')
    assert.equal(typeof a['saslgate.queue_wait_ms'], 'number')
    assert.match(
      String(a['saslgate.principal']),
      /^h:[0-9a-f]{16}$/,
      'principal as a keyed hash by default',
    )
    const kdc = children(spans, decide as ReceivedSpan)
    assert.ok(kdc.length >= 2, `KDC exchanges under the decision: ${kdc.length}`)
    for (const k of kdc) {
      assert.equal(k.name, 'saslgate.kdc.exchange')
      assert.match(String(k.attributes['saslgate.kdc']), /^127\.0\.0\.1:\d+$/)
      assert.ok(['udp', 'tcp'].includes(String(k.attributes['network.transport'])))
      assert.equal(k.attributes['saslgate.outcome'], 'reply')
      assert.equal(typeof k.attributes['saslgate.attempt'], 'number')
    }
    // Every span of the login shares one trace id.
    const ids = new Set([root, rpc, decide, ...kdc].map((s) => s?.traceId))
    assert.equal(ids.size, 1)
  })

  test('/metrics parses as Prometheus text on service and shim, and counters move', async () => {
    const before = parsePrometheusText(await scrape(svcAdmin))
    const shimBefore = parsePrometheusText(await scrape(shimAdmin))
    assert.equal((await saslauthdCheck(socket, 'bob', BOB)).ok, true)
    assert.equal((await saslauthdCheck(socket, 'bob', BOB)).ok, true)
    assert.equal((await saslauthdCheck(socket, 'bob', WRONG)).ok, false)
    const afterText = await scrape(svcAdmin)
    const after = parsePrometheusText(afterText)
    const delta = (name: string, labels: Record<string, string>) =>
      sampleSum(after, name, labels) - sampleSum(before, name, labels)
    assert.equal(delta('saslgate_decisions_total', { decision: 'ok', stage: 'kerberos' }), 1)
    assert.equal(delta('saslgate_decisions_total', { decision: 'ok', stage: 'cache' }), 1)
    assert.equal(delta('saslgate_decisions_total', { decision: 'invalid' }), 1)
    assert.equal(delta('saslgate_rpc_requests_total', { method: 'Authenticate', code: 'ok' }), 3)
    assert.ok(delta('saslgate_kdc_exchanges_total', { outcome: 'reply' }) >= 4)
    assert.equal(delta('saslgate_decision_duration_seconds_count', {}), 3)
    assert.ok(after.families.has('saslgate_kdc_breaker_state'), 'breaker states exported')
    assert.equal(sampleSum(after, 'saslgate_kdc_breaker_state', {}), 0, 'every breaker closed')
    const shimAfter = parsePrometheusText(await scrape(shimAdmin))
    assert.equal(
      sampleSum(shimAfter, 'saslgate_shim_upstream_attempts_total', { outcome: 'answer' }) -
        sampleSum(shimBefore, 'saslgate_shim_upstream_attempts_total', { outcome: 'answer' }),
      3,
    )
    // Unauthenticated RPCs are counted, and nothing about users is in the metrics.
    const res = await fetch(`http://127.0.0.1:${rpcPort}/saslgate.v1.AuthService/Authenticate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: 'bob', password: Buffer.from(RPC_PW).toString('base64') }),
    })
    errorBodies.push(await res.text())
    assert.equal(res.status, 401)
    const final = await scrape(svcAdmin)
    assert.ok(
      sampleSum(parsePrometheusText(final), 'saslgate_rpc_requests_total', {
        code: 'unauthenticated',
      }) >= 1,
    )
    assert.doesNotMatch(final, /alice|bob|carol/)
  })

  test('secrets appear nowhere: logs, spans, metrics, error bodies (every stage, errors and timeouts)', async () => {
    // Kerberos ok, cache hit, wrong password (KDC), same wrong password (negative cache),
    // unknown user, a storm that blocks carol (guard), an over-long frame (listener), a
    // frozen service (the shim's deadline), and RPC error bodies.
    await saslauthdCheck(socket, 'carol', CAROL)
    await saslauthdCheck(socket, 'carol', CAROL)
    await saslauthdCheck(socket, 'alice', WRONG)
    await saslauthdCheck(socket, 'alice', WRONG)
    await saslauthdCheck(socket, 'nosuchuser', WRONG)
    for (const g of GUESSES) await saslauthdCheck(socket, 'carol', g)
    const blocked = await saslauthdCheck(socket, 'carol', GUESSES[0] as string)
    assert.equal(blocked.ok, false)
    // Each stage below must have run, or the scan would prove nothing about it.
    type Logged = { reason: string; stage: string; detail?: string }
    const decisions = (p: SaslgateProcess) =>
      p
        .output()
        .split('\n')
        .filter((l) => l.includes('"msg":"decision"'))
        .map((l) => JSON.parse(l) as Logged)
    // A child's log line reaches us a little after its answer: wait for it (bounded).
    const logged = async (p: SaslgateProcess, from: number, match: (d: Logged) => boolean) => {
      for (let i = 0; i < 60; i++) {
        if (decisions(p).slice(from).some(match)) return true
        await new Promise((r) => setTimeout(r, 50))
      }
      return false
    }
    assert.ok(
      await logged(svc, 0, (d) => d.stage === 'guard' && /^guard_/.test(d.reason)),
      'the guard answered (carol blocked)',
    )
    // An over-long password field: the listener answers NO without the pipeline.
    let overLongReply = Buffer.alloc(0)
    await new Promise<void>((resolve) => {
      const c = connect(socket)
      c.on('data', (d: Buffer) => {
        overLongReply = Buffer.concat([overLongReply, d])
      })
      c.on('connect', () => {
        const frame = encodeRequest({ login: 'alice', password: 'x', service: 'imap', realm: '' })
        c.write(
          Buffer.concat([
            frame.subarray(0, 4),
            Buffer.from([0x04, 0x00]),
            Buffer.from(`${ALICE}${'y'.repeat(1100)}`),
          ]),
        )
      })
      c.on('close', () => resolve())
      c.on('error', () => resolve())
      setTimeout(() => c.destroy(), 3000)
    })
    assert.equal(overLongReply.subarray(2, 4).toString(), 'NO', 'the over-long frame got a NO')
    assert.ok(
      await logged(shim, 0, (d) => d.stage === 'decode' && d.reason === 'malformed_request'),
      'the shim listener refused the over-long frame itself',
    )
    // RPC error bodies carrying secrets in the request.
    const bodies: Array<[string, number]> = [
      [
        JSON.stringify({
          login: 'x'.repeat(300),
          password: Buffer.from(RPC_PW).toString('base64'),
        }),
        400,
      ],
      // Not base64 for protobuf's `bytes`, but base64url-valid: decoded, checked, refused.
      [JSON.stringify({ login: 'alice', password: RPC_PW }), 200],
      [`{"login":"alice","password":"${RPC_PW}`, 400],
    ]
    for (const [body, status] of bodies) {
      const res = await fetch(`http://127.0.0.1:${rpcPort}/saslgate.v1.AuthService/Authenticate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body,
      })
      const text = await res.text()
      errorBodies.push(text)
      assert.equal(res.status, status, text)
      if (status === 200) assert.deepEqual(JSON.parse(text), { decision: 'DECISION_INVALID' })
    }
    // A frozen service: the shim answers NO at its deadline.
    const shimDecisionsBefore = decisions(shim).length
    process.kill(svc.pid, 'SIGSTOP')
    try {
      const frozen = await saslauthdCheck(socket, 'alice', TIMEOUT_PW)
      assert.equal(frozen.ok, false)
      // At the shim's deadline (700 ms), not at once: the service was asked and was silent.
      assert.ok(frozen.latencyMs >= 650, `frozen service answered after ${frozen.latencyMs} ms`)
    } finally {
      process.kill(svc.pid, 'SIGCONT')
    }
    assert.ok(
      await logged(
        shim,
        shimDecisionsBefore,
        (d) => d.stage === 'upstream' && d.reason === 'upstream_unavailable',
      ),
      `the shim's deadline answered: ${JSON.stringify(decisions(shim).slice(shimDecisionsBefore))}`,
    )
    await new Promise((res) => setTimeout(res, 1500)) // exports flush (100 ms spans, 500 ms metrics)
    const emitted = [
      svc.output(),
      shim.output(),
      await scrape(svcAdmin),
      await scrape(shimAdmin),
      receiver.allBodies().toString('latin1'),
      ...errorBodies,
    ].join('\n')
    assert.ok(receiver.spans.length > 10, 'spans were exported')
    assert.match(svc.output(), /"msg":"decision"/, 'decision lines were logged')
    for (const secret of SECRETS) {
      assert.ok(!emitted.includes(secret), `a secret (${secret.slice(0, 10)}...) was emitted`)
      const b64 = Buffer.from(secret).toString('base64').replace(/=+$/, '')
      assert.ok(!emitted.includes(b64), 'a secret was emitted in base64')
    }
    for (const s of SECRETS) assert.ok(!receiver.contains(s))
    // Cache keys are HMAC-SHA256 values (32 bytes): no 256-bit value in any text output,
    // exported OTLP bodies (spans and metrics) included.
    assert.doesNotMatch(emitted, /\b[0-9a-fA-F]{64}\b/)
    assert.doesNotMatch(emitted, /sgs1\./)
  })
})
