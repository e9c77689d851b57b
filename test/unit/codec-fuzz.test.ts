/**
 * Hostile input, the CI sample: seeded generated frames (src/testing/frame-fuzz.ts) with
 * random read boundaries, through the decoder and through a real SaslauthdListener socket.
 * No throw, no hang, a bounded buffer; a frame is accepted exactly when an independent
 * whole-buffer model of the format accepts it; every malformed frame gets the NO reply and a
 * closed socket and never reaches the authenticator. The million-frame run with memory
 * figures is bench/codec-fuzz.ts.
 *
 * FUZZ_FRAMES and FUZZ_SOCKET_FRAMES raise or lower the counts; FUZZ_SEED picks another
 * sample (a failure names the seed and the frame index, so it can be replayed).
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Authenticator, AuthRequest, AuthResult } from '../../src/authenticator.js'
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  type FieldMode,
  FrameDecoder,
  MAX_FIELD_BYTES,
  MAX_FRAME_BYTES,
} from '../../src/saslauthd/codec.js'
import { SaslauthdListener } from '../../src/saslauthd/listener.js'
import {
  chunksOf,
  createFrameFuzzer,
  exchangeFrame,
  FRAME_KINDS,
  type FrameKind,
  type FuzzFrame,
  referenceDecode,
} from '../../src/testing/frame-fuzz.js'

const FRAMES = Number(process.env.FUZZ_FRAMES ?? 20_000)
const SOCKET_FRAMES = Number(process.env.FUZZ_SOCKET_FRAMES ?? 4_000)
const SEED = Number(process.env.FUZZ_SEED ?? 20261128)
const MODES: FieldMode[] = ['auto', 'auto', '4', '5']
const OK_REPLY = encodeReply('ok')
const NO_REPLY = encodeReply('invalid')

describe('codec fuzz: the decoder', () => {
  test(`${FRAMES} generated frames with random splits: model-exact, no throw, bounded`, (t) => {
    const fuzz = createFrameFuzzer({ seed: SEED, maxFloodBytes: 64 * 1024 })
    const seen = new Map<FrameKind, { n: number; accepted: number }>()
    for (let i = 0; i < FRAMES; i++) {
      const f = fuzz.next()
      const mode = MODES[i % MODES.length] as FieldMode
      const where = `seed ${SEED} frame ${i} (${f.kind}, mode ${mode}, ${f.bytes.length} bytes, cuts ${f.cuts})`
      const d = new FrameDecoder(mode)
      let r = d.result
      try {
        for (const c of chunksOf(f)) {
          r = d.push(c)
          assert.ok(d.bufferedBytes <= MAX_FRAME_BYTES, `${where}: buffered ${d.bufferedBytes}`)
        }
        if (r.status === 'need-more' || r.status === 'maybe-complete') r = d.end()
      } catch (err) {
        assert.fail(`${where}: threw ${String(err)}`)
      }
      assert.ok(r.status === 'frame' || r.status === 'error', `${where}: final ${r.status}`)
      assert.equal(d.bufferedBytes, 0, `${where}: buffer kept after a final result`)
      const model = referenceDecode(f.bytes, mode)
      assert.equal(
        r.status === 'frame',
        model.ok,
        `${where}: decoder ${JSON.stringify(r.status === 'error' ? r : 'frame')} vs model ${model.ok}`,
      )
      if (r.status === 'frame' && model.ok) {
        assert.equal(r.fieldCount, model.fieldCount, where)
        assert.equal(r.frame.login, model.login, where)
        assert.ok(r.frame.login.length > 0 && r.frame.password.length > 0, where)
        assert.ok(Buffer.byteLength(r.frame.login) <= MAX_FIELD_BYTES, where)
        assert.ok(!r.frame.password.includes(0) && !r.frame.login.includes('\0'), where)
      }
      // Chunking never changes the answer.
      assert.deepStrictEqual(r, decodeRequest(f.bytes, mode), `${where}: split changed the result`)
      const s = seen.get(f.kind) ?? { n: 0, accepted: 0 }
      s.n++
      if (r.status === 'frame') s.accepted++
      seen.set(f.kind, s)
    }
    for (const k of FRAME_KINDS) assert.ok((seen.get(k)?.n ?? 0) > 0 || FRAMES < 1000, `no ${k}`)
    // The broken kinds are refused whatever the mode (flipped bytes can stay valid, and a
    // 5-field frame cut right after its 4th field is a valid 4-field frame).
    for (const k of [
      'overlong_field',
      'nul_byte',
      'bad_utf8',
      'empty_login',
      'empty_password',
      'too_many_fields',
      'flood',
    ] as const)
      assert.equal(seen.get(k)?.accepted ?? 0, 0, `${k} accepted`)
    t.diagnostic([...seen].map(([k, s]) => `${k} ${s.n} (${s.accepted} accepted)`).join(', '))
  })
})

/** An authenticator that says OK to everything it is asked: only the decoder stands guard. */
class CountingAuthenticator implements Authenticator {
  calls = 0
  bad: string[] = []
  async authenticate(req: AuthRequest): Promise<AuthResult> {
    this.calls++
    const loginBytes = Buffer.byteLength(req.login)
    if (
      loginBytes === 0 ||
      loginBytes > MAX_FIELD_BYTES ||
      req.login.includes('\0') ||
      req.password.length === 0 ||
      req.password.length > MAX_FIELD_BYTES ||
      req.password.includes(0)
    )
      this.bad.push(`login of ${loginBytes} bytes, password of ${req.password.length}`)
    return { decision: 'ok', reason: 'ok', stage: 'test' }
  }
  async close(): Promise<void> {}
}

function decidableAtACut(f: FuzzFrame): boolean {
  return f.cuts.some((c) => referenceDecode(f.bytes.subarray(0, c), '4').ok)
}

describe('codec fuzz: a real SaslauthdListener socket', () => {
  let dir: string
  let listener: SaslauthdListener
  const auth = new CountingAuthenticator()

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'saslgate-codec-fuzz-'))
    listener = new SaslauthdListener({
      socketPath: join(dir, 'mux'),
      authenticator: auth,
      fields: 'auto',
      readTimeoutMs: 3000,
      answerDeadlineMs: 2000,
    })
    await listener.listen()
  })

  after(async () => {
    await listener?.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test(`${SOCKET_FRAMES} frames: malformed -> NO and a closed socket, never a hang`, async (t) => {
    const fuzz = createFrameFuzzer({ seed: SEED + 1, maxFloodBytes: 256 * 1024 })
    const frames = Array.from({ length: SOCKET_FRAMES }, () => fuzz.next())
    const tally = { ok: 0, no: 0, ambiguous: 0, malformed: 0 }
    let next = 0
    let slowest = 0
    const problems: string[] = []
    const worker = async () => {
      while (next < frames.length) {
        const i = next++
        const f = frames[i] as FuzzFrame
        const x = await exchangeFrame(listener.socketPath, f, 4000)
        slowest = Math.max(slowest, x.ms)
        const where = `seed ${SEED + 1} frame ${i} (${f.kind}, ${f.bytes.length} bytes)`
        if (!x.closedByServer) {
          problems.push(`${where}: no close within 4 s (hang)`)
          continue
        }
        const r = decodeReply(x.reply, true)
        if (r.status !== 'reply' || r.bytes !== x.reply.length) {
          problems.push(
            `${where}: not exactly one reply: ${x.reply.toString('hex')} ${x.error ?? ''}`,
          )
          continue
        }
        const model = referenceDecode(f.bytes, 'auto')
        const isOk = x.reply.equals(OK_REPLY)
        if (!isOk && !x.reply.equals(NO_REPLY)) problems.push(`${where}: odd reply ${r.text}`)
        if (isOk) tally.ok++
        else tally.no++
        if (!model.ok) tally.malformed++
        if (decidableAtACut(f)) {
          // libsasl2 writes a request in one go; a 4-field prefix read alone may be decided
          // after the 1 ms five-field grace, so OK or NO are both right here.
          tally.ambiguous++
          continue
        }
        if (model.ok !== isOk) problems.push(`${where}: model says ${model.ok}, got ${r.text}`)
      }
    }
    const t0 = performance.now()
    await Promise.all(Array.from({ length: 32 }, worker))
    const elapsed = performance.now() - t0
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} problems`)
    assert.deepEqual(auth.bad, [], 'a malformed request reached the authenticator')
    assert.equal(auth.calls, tally.ok, 'every OK came from the authenticator, and only those')
    assert.ok(
      tally.malformed > SOCKET_FRAMES / 3,
      `too few malformed frames: ${JSON.stringify(tally)}`,
    )
    const s = listener.stats()
    assert.equal(s.inFlight, 0)
    t.diagnostic(
      `${SOCKET_FRAMES} frames in ${(elapsed / 1000).toFixed(1)} s (${Math.round((SOCKET_FRAMES / elapsed) * 1000)}/s), ` +
        `slowest ${slowest.toFixed(0)} ms, ${JSON.stringify(tally)}`,
    )
  })
})
