/**
 * Hostile saslauthd request frames for fuzzing the decoder and the listener (the CI sample
 * in test/unit/codec-fuzz.test.ts, the million-frame run in bench/codec-fuzz.ts).
 *
 * A seeded generator (repeatable: a failure names its seed and index) biased towards the
 * edges a parser gets wrong: valid frames of 4 and 5 fields up to the 256-byte limits, and
 * the same frames broken in every way the format allows (flipped bytes, cut short, extra
 * bytes, lengths over the limit or beyond the data, NUL bytes, bad UTF-8, empty login or
 * password, too many fields, plain noise, megabyte floods), each with random split points
 * for the reads.
 *
 * `referenceDecode` is an independent, whole-buffer model of the format (written from the
 * protocol description, not from codec.ts) used as the oracle: does a frame pass or not.
 * Plain code, no test-framework imports.
 */
import { isUtf8 } from 'node:buffer'
import { connect } from 'node:net'
import { setImmediate as tick } from 'node:timers/promises'
import { seededRandom } from '../storm/stats.js'

/** The format's limits (DESIGN.md section 3, stage 1). */
const FIELD_MAX = 256

export type FrameKind =
  | 'valid4'
  | 'valid5'
  | 'flipped'
  | 'truncated'
  | 'trailing'
  | 'overlong_field'
  | 'length_beyond_data'
  | 'nul_byte'
  | 'bad_utf8'
  | 'empty_login'
  | 'empty_password'
  | 'too_many_fields'
  | 'noise'
  | 'flood'

export const FRAME_KINDS: readonly FrameKind[] = [
  'valid4',
  'valid5',
  'flipped',
  'truncated',
  'trailing',
  'overlong_field',
  'length_beyond_data',
  'nul_byte',
  'bad_utf8',
  'empty_login',
  'empty_password',
  'too_many_fields',
  'noise',
  'flood',
]

export interface FuzzFrame {
  kind: FrameKind
  bytes: Buffer
  /** Read boundaries: chunk i is bytes[cuts[i-1] .. cuts[i]). Sorted, inside (0, length). */
  cuts: number[]
}

export interface FrameFuzzer {
  next(): FuzzFrame
}

export interface FrameFuzzerOptions {
  seed: number
  /** Largest flood frame (bytes); floods are rare. */
  maxFloodBytes?: number
  /** Most read boundaries per frame. */
  maxCuts?: number
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@;:/ '
const UTF8_SAMPLES = ['ä', 'ß', 'é', '€', '漢', '🙂', 'ı', 'Ω']

export function createFrameFuzzer(options: FrameFuzzerOptions): FrameFuzzer {
  const rand = seededRandom(options.seed)
  const maxFlood = options.maxFloodBytes ?? 1 << 20
  const maxCuts = options.maxCuts ?? 8
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1))
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T

  /** A length biased to the edges: 0, 1, 255, 256 and random. */
  const edgyLength = (min: number, max: number) => {
    const r = rand()
    if (r < 0.1) return min
    if (r < 0.2) return max
    if (r < 0.25) return Math.max(min, max - 1)
    return int(min, Math.min(max, 40))
  }

  /** Valid UTF-8 text without NUL, at most `maxBytes` bytes. */
  const text = (minBytes: number, maxBytes: number): Buffer => {
    const want = edgyLength(minBytes, maxBytes)
    const parts: Buffer[] = []
    let size = 0
    while (size < want) {
      const s =
        rand() < 0.9 ? (ALPHABET[int(0, ALPHABET.length - 1)] as string) : pick(UTF8_SAMPLES)
      const b = Buffer.from(s)
      if (size + b.length > want) {
        if (size >= minBytes) break
        continue
      }
      parts.push(b)
      size += b.length
    }
    return Buffer.concat(parts)
  }

  /** Password bytes: anything but NUL. */
  const password = (): Buffer => {
    const n = edgyLength(1, FIELD_MAX)
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = int(1, 255)
    return b
  }

  const counted = (field: Buffer): Buffer => {
    const head = Buffer.alloc(2)
    head.writeUInt16BE(field.length, 0)
    return Buffer.concat([head, field])
  }

  const fields4 = (): Buffer[] => [
    text(1, FIELD_MAX),
    password(),
    text(0, FIELD_MAX),
    text(0, FIELD_MAX),
  ]
  const fields5 = (): Buffer[] => [...fields4(), text(0, FIELD_MAX)]
  const frameOf = (fields: Buffer[]) => Buffer.concat(fields.map(counted))
  const validFrame = () => frameOf(rand() < 0.5 ? fields4() : fields5())

  const noise = (max: number) => {
    const b = Buffer.alloc(int(0, max))
    for (let i = 0; i < b.length; i++) b[i] = int(0, 255)
    return b
  }

  const build: Record<FrameKind, () => Buffer> = {
    valid4: () => frameOf(fields4()),
    valid5: () => frameOf(fields5()),
    flipped: () => {
      const b = validFrame()
      for (let k = int(1, 3); k > 0; k--) b[int(0, b.length - 1)] = int(0, 255)
      return b
    },
    truncated: () => {
      const b = validFrame()
      return b.subarray(0, int(0, b.length - 1))
    },
    trailing: () =>
      Buffer.concat([validFrame(), noise(64).length > 0 ? noise(64) : Buffer.from([0])]),
    overlong_field: () => {
      const fields = rand() < 0.5 ? fields4() : fields5()
      const at = int(0, fields.length - 1)
      const size = rand() < 0.5 ? FIELD_MAX + 1 : int(FIELD_MAX + 1, 0xffff)
      const head = Buffer.alloc(2)
      head.writeUInt16BE(size, 0)
      const body = Buffer.alloc(Math.min(size, int(0, 2 * FIELD_MAX)), 0x61)
      return Buffer.concat([...fields.slice(0, at).map(counted), head, body])
    },
    length_beyond_data: () => {
      const fields = fields4()
      const at = int(0, 3)
      const field = fields[at] as Buffer
      const head = Buffer.alloc(2)
      head.writeUInt16BE(Math.min(FIELD_MAX, field.length + int(1, 20)), 0)
      return Buffer.concat([...fields.slice(0, at).map(counted), head, field])
    },
    nul_byte: () => {
      const fields = rand() < 0.5 ? fields4() : fields5()
      const at = int(0, fields.length - 1)
      const f = fields[at] as Buffer
      fields[at] = f.length === 0 ? Buffer.from([0]) : Buffer.from(f)
      ;(fields[at] as Buffer)[int(0, (fields[at] as Buffer).length - 1)] = 0
      return frameOf(fields)
    },
    bad_utf8: () => {
      const fields = rand() < 0.5 ? fields4() : fields5()
      const at = pick([0, 2, 3, ...(fields.length === 5 ? [4] : [])])
      const bad = pick([
        [0xc3, 0x28],
        [0xff],
        [0xe2, 0x82],
        [0xed, 0xa0, 0x80],
        [0xf8, 0x88, 0x80, 0x80, 0x80],
        [0x80],
      ])
      const f = fields[at] as Buffer
      // At the start or the end of the text (character boundaries), within the field limit.
      let room = f.subarray(0, FIELD_MAX - bad.length)
      while (!isUtf8(room)) room = room.subarray(0, room.length - 1) // not inside a character
      fields[at] =
        rand() < 0.5
          ? Buffer.concat([Buffer.from(bad), room])
          : Buffer.concat([room, Buffer.from(bad)])
      return frameOf(fields)
    },
    empty_login: () => {
      const fields = fields4()
      fields[0] = Buffer.alloc(0)
      return frameOf(fields)
    },
    empty_password: () => {
      const fields = fields4()
      fields[1] = Buffer.alloc(0)
      return frameOf(fields)
    },
    too_many_fields: () =>
      frameOf([...fields5(), ...Array.from({ length: int(1, 3) }, () => text(0, 20))]),
    noise: () => noise(rand() < 0.8 ? 64 : 3000),
    flood: () => Buffer.alloc(int(2000, maxFlood), int(0, 255)),
  }

  const weights: Array<[FrameKind, number]> = [
    ['valid4', 14],
    ['valid5', 14],
    ['flipped', 12],
    ['truncated', 10],
    ['trailing', 6],
    ['overlong_field', 6],
    ['length_beyond_data', 5],
    ['nul_byte', 6],
    ['bad_utf8', 6],
    ['empty_login', 3],
    ['empty_password', 3],
    ['too_many_fields', 4],
    ['noise', 10],
    ['flood', 1],
  ]
  const total = weights.reduce((s, [, w]) => s + w, 0)

  return {
    next() {
      let r = rand() * total
      let kind: FrameKind = 'noise'
      for (const [k, w] of weights) {
        r -= w
        if (r < 0) {
          kind = k
          break
        }
      }
      const bytes = build[kind]()
      const cuts = new Set<number>()
      if (bytes.length > 1) {
        for (let n = int(0, maxCuts); n > 0; n--) cuts.add(int(1, bytes.length - 1))
      }
      return { kind, bytes, cuts: [...cuts].sort((a, b) => a - b) }
    },
  }
}

export interface FrameExchange {
  reply: Buffer
  /** The server ended or closed the connection (false: the timeout ended it, a hang). */
  closedByServer: boolean
  /** A socket error code seen on the way (EPIPE/ECONNRESET: the server closed first). */
  error?: string
  ms: number
}

/**
 * Sends `frame` to the unix socket at `path` in its chunks, one event-loop turn apart,
 * half-closes, and reads until the server closes or `timeoutMs` passes.
 */
export function exchangeFrame(
  path: string,
  frame: FuzzFrame,
  timeoutMs: number,
): Promise<FrameExchange> {
  const t0 = performance.now()
  return new Promise((resolve) => {
    const s = connect(path)
    const got: Buffer[] = []
    let error: string | undefined
    let done = false
    const finish = (closedByServer: boolean) => {
      if (done) return
      done = true
      clearTimeout(timer)
      s.destroy()
      resolve({
        reply: Buffer.concat(got),
        closedByServer,
        ...(error !== undefined ? { error } : {}),
        ms: performance.now() - t0,
      })
    }
    const timer = setTimeout(() => finish(false), timeoutMs)
    s.on('data', (d: Buffer) => got.push(d))
    s.on('end', () => finish(true))
    s.on('close', () => finish(true))
    s.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code
    })
    s.on('connect', async () => {
      for (const c of chunksOf(frame)) {
        if (s.destroyed || done) return
        s.write(c)
        await tick()
      }
      if (!s.destroyed) s.end()
    })
  })
}

/** The chunks of a frame at its cut points. */
export function chunksOf(frame: FuzzFrame): Buffer[] {
  const out: Buffer[] = []
  let prev = 0
  for (const c of frame.cuts) {
    out.push(frame.bytes.subarray(prev, c))
    prev = c
  }
  out.push(frame.bytes.subarray(prev))
  return out
}

export type ReferenceVerdict = { ok: true; fieldCount: 4 | 5; login: string } | { ok: false }

/**
 * The oracle: a complete request is 4 or 5 counted fields (2-byte big-endian length), each at
 * most 256 bytes, nothing after them; login and password not empty; no NUL anywhere; login,
 * service, realm and client address valid UTF-8. `fields` says which counts are accepted.
 */
export function referenceDecode(bytes: Uint8Array, fields: '4' | '5' | 'auto'): ReferenceVerdict {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const parsed: Buffer[] = []
  let pos = 0
  while (pos < b.length) {
    if (b.length - pos < 2) return { ok: false }
    const size = b.readUInt16BE(pos)
    if (size > FIELD_MAX || b.length - pos - 2 < size) return { ok: false }
    parsed.push(b.subarray(pos + 2, pos + 2 + size))
    pos += 2 + size
    if (parsed.length > 5) return { ok: false }
  }
  const allowed = fields === '4' ? [4] : fields === '5' ? [5] : [4, 5]
  if (!allowed.includes(parsed.length)) return { ok: false }
  const [login, pw] = parsed as [Buffer, Buffer]
  if (login.length === 0 || pw.length === 0) return { ok: false }
  for (const [i, f] of parsed.entries()) {
    if (f.includes(0)) return { ok: false }
    if (i !== 1 && !isUtf8(f)) return { ok: false }
  }
  return { ok: true, fieldCount: parsed.length as 4 | 5, login: login.toString('utf8') }
}
