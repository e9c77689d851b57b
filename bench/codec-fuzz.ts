/**
 * Codec fuzzing, nightly style (not CI): at least a million generated hostile frames
 * (src/testing/frame-fuzz.ts) with random read boundaries through the saslauthd decoder, and
 * a share of them through a real SaslauthdListener socket. Checks what the CI sample checks
 * (test/unit/codec-fuzz.test.ts): no throw, no hang, decoder result == the independent model,
 * malformed -> NO, a bounded buffer; and reports frames/s and memory (heap after a full GC,
 * RSS) before, during and after.
 *
 *   npx tsx bench/codec-fuzz.ts [--frames N] [--socket-frames N] [--seed S] [--json FILE]
 *
 * Exit 1 on any violation (the first ten are printed with their seed and index).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { Authenticator, AuthResult } from '../src/authenticator.js'
import {
  decodeReply,
  encodeReply,
  type FieldMode,
  FrameDecoder,
  MAX_FRAME_BYTES,
} from '../src/saslauthd/codec.js'
import { SaslauthdListener } from '../src/saslauthd/listener.js'
import {
  chunksOf,
  createFrameFuzzer,
  exchangeFrame,
  referenceDecode,
} from '../src/testing/frame-fuzz.js'

const { values: args } = parseArgs({
  options: {
    frames: { type: 'string', default: '1000000' },
    'socket-frames': { type: 'string', default: '100000' },
    seed: { type: 'string', default: '1' },
    json: { type: 'string' },
  },
})
const FRAMES = Number(args.frames)
const SOCKET_FRAMES = Number(args['socket-frames'])
const SEED = Number(args.seed)

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

interface Memory {
  heapUsedMb: number
  rssMb: number
}
function memory(): Memory {
  gc()
  gc()
  const m = process.memoryUsage()
  const mb = (n: number) => Math.round((n / 1048576) * 10) / 10
  return { heapUsedMb: mb(m.heapUsed), rssMb: mb(m.rss) }
}

const violations: string[] = []
const violation = (s: string) => {
  violations.push(s)
  if (violations.length <= 10) process.stderr.write(`VIOLATION ${s}\n`)
}

function decoderRun(): { frames: number; seconds: number; accepted: number; peakRssMb: number } {
  const fuzz = createFrameFuzzer({ seed: SEED, maxFloodBytes: 256 * 1024 })
  const modes: FieldMode[] = ['auto', 'auto', '4', '5']
  let accepted = 0
  let peakRss = 0
  const t0 = performance.now()
  for (let i = 0; i < FRAMES; i++) {
    const f = fuzz.next()
    const mode = modes[i % modes.length] as FieldMode
    const d = new FrameDecoder(mode)
    let r = d.result
    try {
      for (const c of chunksOf(f)) {
        r = d.push(c)
        if (d.bufferedBytes > MAX_FRAME_BYTES)
          violation(`seed ${SEED} frame ${i}: buffered ${d.bufferedBytes}`)
      }
      if (r.status === 'need-more' || r.status === 'maybe-complete') r = d.end()
    } catch (err) {
      violation(`seed ${SEED} frame ${i} (${f.kind}): threw ${String(err)}`)
      continue
    }
    if (r.status !== 'frame' && r.status !== 'error') violation(`frame ${i}: final ${r.status}`)
    if ((r.status === 'frame') !== referenceDecode(f.bytes, mode).ok)
      violation(`seed ${SEED} frame ${i} (${f.kind}, mode ${mode}): decoder and model disagree`)
    if (r.status === 'frame') {
      accepted++
      r.frame.password.fill(0)
    }
    if (i % 100_000 === 0) {
      peakRss = Math.max(peakRss, process.memoryUsage().rss)
      if (i > 0)
        process.stderr.write(
          `decoder: ${i} frames, ${Math.round(i / ((performance.now() - t0) / 1000))}/s\n`,
        )
    }
  }
  return {
    frames: FRAMES,
    seconds: (performance.now() - t0) / 1000,
    accepted,
    peakRssMb: Math.round((peakRss / 1048576) * 10) / 10,
  }
}

async function socketRun(): Promise<{ frames: number; seconds: number; hangs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'saslgate-bench-fuzz-'))
  const ok: AuthResult = { decision: 'ok', reason: 'ok', stage: 'bench' }
  const auth: Authenticator = { authenticate: async () => ok, close: async () => {} }
  const listener = new SaslauthdListener({
    socketPath: join(dir, 'mux'),
    authenticator: auth,
    readTimeoutMs: 3000,
  })
  await listener.listen()
  const fuzz = createFrameFuzzer({ seed: SEED + 1, maxFloodBytes: 256 * 1024 })
  const OK = encodeReply('ok')
  const NO = encodeReply('invalid')
  let hangs = 0
  let next = 0
  const t0 = performance.now()
  try {
    const worker = async () => {
      while (next < SOCKET_FRAMES) {
        const i = next++
        const f = fuzz.next()
        const x = await exchangeFrame(listener.socketPath, f, 5000)
        if (!x.closedByServer) {
          hangs++
          violation(`socket frame ${i} (${f.kind}): no answer and no close within 5 s`)
          continue
        }
        const r = decodeReply(x.reply, true)
        if (r.status !== 'reply' || (!x.reply.equals(OK) && !x.reply.equals(NO))) {
          violation(`socket frame ${i} (${f.kind}): bad reply ${x.reply.toString('hex')}`)
          continue
        }
        const ambiguous = f.cuts.some((c) => referenceDecode(f.bytes.subarray(0, c), '4').ok)
        if (!ambiguous && referenceDecode(f.bytes, 'auto').ok !== x.reply.equals(OK))
          violation(`socket frame ${i} (${f.kind}): reply ${r.text} disagrees with the model`)
        if (i > 0 && i % 20_000 === 0)
          process.stderr.write(
            `socket: ${i} frames, ${Math.round(i / ((performance.now() - t0) / 1000))}/s\n`,
          )
      }
    }
    await Promise.all(Array.from({ length: 32 }, worker))
  } finally {
    await listener.close()
    rmSync(dir, { recursive: true, force: true })
  }
  return { frames: SOCKET_FRAMES, seconds: (performance.now() - t0) / 1000, hangs }
}

const before = memory()
const decoder = decoderRun()
const afterDecoder = memory()
const socket = SOCKET_FRAMES > 0 ? await socketRun() : undefined
const afterSocket = memory()
const report = {
  seed: SEED,
  node: process.version,
  decoder: {
    ...decoder,
    framesPerS: Math.round(decoder.frames / decoder.seconds),
  },
  socket:
    socket === undefined
      ? undefined
      : { ...socket, framesPerS: Math.round(socket.frames / socket.seconds) },
  memory: { before, afterDecoder, afterSocket },
  violations: violations.length,
}
process.stdout.write(
  `${[
    `codec fuzz, seed ${SEED}, ${process.version}`,
    `decoder: ${decoder.frames} frames in ${decoder.seconds.toFixed(1)} s = ${report.decoder.framesPerS} frames/s (${decoder.accepted} accepted), peak RSS ${decoder.peakRssMb} MB`,
    socket === undefined
      ? 'socket: skipped'
      : `socket: ${socket.frames} frames in ${socket.seconds.toFixed(1)} s = ${report.socket?.framesPerS} frames/s, ${socket.hangs} hangs`,
    `heap after GC: before ${before.heapUsedMb} MB, after the decoder ${afterDecoder.heapUsedMb} MB, after the socket ${afterSocket.heapUsedMb} MB`,
    `RSS: before ${before.rssMb} MB, after the decoder ${afterDecoder.rssMb} MB, after the socket ${afterSocket.rssMb} MB`,
    `violations: ${violations.length}`,
  ].join('\n')}\n`,
)
if (args.json !== undefined) writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`)
process.exitCode = violations.length === 0 ? 0 : 1
