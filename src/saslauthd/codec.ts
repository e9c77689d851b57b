/**
 * The saslauthd wire protocol, as pure functions and a small incremental decoder.
 *
 * Request: counted strings (2-byte big-endian length, then the bytes, no NUL): login,
 * password, service, realm, and with newer libsasl2 a fifth field, the client address
 * (`ip;port`). Reply: a counted string, `OK` or `NO <text>`. libsasl2 only looks at the
 * `OK` prefix; the NO text never says why (unknown user and wrong password are identical).
 *
 * Nothing here throws on input bytes: the decoder returns a frame or a stable error reason.
 */
import { isUtf8 } from 'node:buffer'
import type { Decision } from '../errors.js'
import { SaslgateError } from '../errors.js'

/** Longest field libsasl2 sends (and that we accept). */
export const MAX_FIELD_BYTES = 256
/** Largest valid request: five fields, each a 2-byte length and at most 256 bytes. */
export const MAX_FRAME_BYTES = 5 * (2 + MAX_FIELD_BYTES)
/** libsasl2 cuts replies at this many bytes; ours are far shorter. */
export const MAX_REPLY_BYTES = 1023

/** How many fields a request has: `4` (libsasl2 2.1.x), `5` (cyrus-sasl master), or detect. */
export type FieldMode = '4' | '5' | 'auto'

export interface SaslauthdFrame {
  login: string
  /** The password bytes exactly as sent (own copy; the decoder keeps no reference). */
  password: Buffer
  service: string
  /** May be empty. */
  realm: string
  /** `ip;port` from 5-field requests; absent for 4-field requests or when sent empty. */
  clientAddress?: string
}

/** Why a request frame was refused. Stable strings: logs and metrics match on them. */
export type FrameErrorReason =
  | 'truncated'
  | 'field_too_long'
  | 'empty_login'
  | 'empty_password'
  | 'nul_byte'
  | 'trailing_garbage'
  | 'too_many_bytes'
  | 'bad_utf8'

export type DecodeResult =
  | { status: 'need-more' }
  /** `auto` mode only: four complete fields and nothing after them yet; a fifth may follow. */
  | { status: 'maybe-complete' }
  | { status: 'frame'; frame: SaslauthdFrame; fieldCount: 4 | 5 }
  | { status: 'error'; reason: FrameErrorReason }

const NEED_MORE: DecodeResult = Object.freeze({ status: 'need-more' })
const MAYBE_COMPLETE: DecodeResult = Object.freeze({ status: 'maybe-complete' })

/**
 * Incremental request decoder. The result of `push` is a function of every byte pushed so
 * far (not of how they were chunked); `end()` says no more bytes will come (EOF, or the
 * five-field grace period ran out) and returns the final result. Errors are absorbing; a
 * frame followed by any further byte becomes `trailing_garbage`. The internal buffer never
 * holds more than MAX_FRAME_BYTES and is wiped once a result is final.
 */
export class FrameDecoder {
  readonly mode: FieldMode
  #buf: Buffer | undefined
  #len = 0
  #pos = 0
  #fields: Buffer[] = []
  #result: DecodeResult = NEED_MORE
  #ended = false

  constructor(mode: FieldMode = 'auto') {
    this.mode = mode
  }

  /** Bytes currently held (never above MAX_FRAME_BYTES). */
  get bufferedBytes(): number {
    return this.#len
  }

  /** The current result without pushing anything. */
  get result(): DecodeResult {
    return this.#result
  }

  push(chunk: Uint8Array): DecodeResult {
    if (chunk.length === 0) return this.#result
    const status = this.#result.status
    if (status === 'error') return this.#result
    if (status === 'frame' || this.#ended) return this.#fail('trailing_garbage')
    const take = Math.min(MAX_FRAME_BYTES - this.#len, chunk.length)
    this.#reserve(this.#len + take)
    this.#buf!.set(chunk.subarray(0, take), this.#len)
    this.#len += take
    const overflow = chunk.length > take
    this.#result = this.#parse()
    if (overflow && this.#result.status !== 'error') {
      // Every field is bounded, so a valid frame always fits: excess bytes follow a frame.
      return this.#fail(this.#result.status === 'need-more' ? 'too_many_bytes' : 'trailing_garbage')
    }
    if (this.#result.status === 'frame') this.#wipe()
    return this.#result
  }

  /** No more bytes will come: a 4-field frame in `auto` mode is final, a partial one truncated. */
  end(): DecodeResult {
    this.#ended = true
    const status = this.#result.status
    if (status === 'frame' || status === 'error') return this.#result
    if (status === 'maybe-complete') {
      this.#result = this.#build(4)
      this.#wipe()
      return this.#result
    }
    return this.#fail('truncated')
  }

  /** Grows the buffer to hold `size` bytes (held connections with a few bytes stay small). */
  #reserve(size: number): void {
    const cap = this.#buf?.length ?? 0
    if (size <= cap) return
    const next = Buffer.alloc(Math.min(MAX_FRAME_BYTES, Math.max(size, 64, cap * 2)))
    if (this.#buf !== undefined) {
      this.#buf.copy(next, 0, 0, this.#len)
      this.#buf.fill(0)
    }
    this.#buf = next
  }

  #fail(reason: FrameErrorReason): DecodeResult {
    this.#result = { status: 'error', reason }
    this.#wipe()
    return this.#result
  }

  #wipe(): void {
    this.#buf?.fill(0)
    this.#buf = undefined
    for (const f of this.#fields) f.fill(0)
    this.#fields = []
    this.#len = 0
    this.#pos = 0
  }

  #parse(): DecodeResult {
    const buf = this.#buf!
    const max = this.mode === '4' ? 4 : 5
    while (this.#fields.length < max) {
      if (this.#fields.length === 4 && this.mode === 'auto' && this.#pos === this.#len) {
        return MAYBE_COMPLETE
      }
      if (this.#len - this.#pos < 2) return NEED_MORE
      const size = buf.readUInt16BE(this.#pos)
      const index = this.#fields.length
      if (size > MAX_FIELD_BYTES) return this.#fail('field_too_long')
      if (size === 0 && index === 0) return this.#fail('empty_login')
      if (size === 0 && index === 1) return this.#fail('empty_password')
      if (this.#len - this.#pos - 2 < size) return NEED_MORE
      const field = buf.subarray(this.#pos + 2, this.#pos + 2 + size)
      if (field.includes(0)) return this.#fail('nul_byte')
      if (index !== 1 && !isUtf8(field)) return this.#fail('bad_utf8')
      this.#fields.push(Buffer.from(field))
      this.#pos += 2 + size
    }
    if (this.#pos !== this.#len) return this.#fail('trailing_garbage')
    return this.#build(this.#fields.length === 5 ? 5 : 4)
  }

  #build(fieldCount: 4 | 5): DecodeResult {
    const [login, password, service, realm, address] = this.#fields as [
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer | undefined,
    ]
    const frame: SaslauthdFrame = {
      login: login.toString('utf8'),
      password: Buffer.from(password),
      service: service.toString('utf8'),
      realm: realm.toString('utf8'),
    }
    if (address !== undefined && address.length > 0) frame.clientAddress = address.toString('utf8')
    return { status: 'frame', frame, fieldCount }
  }
}

/** Decodes one complete request held in `bytes` (convenience for tests and tools). */
export function decodeRequest(bytes: Uint8Array, mode: FieldMode = 'auto'): DecodeResult {
  const decoder = new FrameDecoder(mode)
  const r = decoder.push(bytes)
  return r.status === 'need-more' || r.status === 'maybe-complete' ? decoder.end() : r
}

export interface RequestFields {
  login: string | Uint8Array
  password: string | Uint8Array
  service: string | Uint8Array
  realm?: string | Uint8Array
  /** Sent as a fifth field when given (`ip;port`). */
  clientAddress?: string | Uint8Array
}

function toBytes(v: string | Uint8Array): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v)
}

/** Encodes one counted string. Throws SASLGATE_ERR_FRAME above 65535 bytes (unencodable). */
export function encodeField(value: string | Uint8Array): Buffer {
  const bytes = toBytes(value)
  if (bytes.length > 0xffff) {
    throw new SaslgateError(
      'SASLGATE_ERR_FRAME',
      `field of ${bytes.length} bytes cannot be encoded`,
    )
  }
  const out = Buffer.allocUnsafe(2 + bytes.length)
  out.writeUInt16BE(bytes.length, 0)
  bytes.copy(out, 2)
  return out
}

/**
 * Encodes a request as libsasl2 does (for tests, benchmarks and clients). It does not
 * enforce the 256-byte limit, so tests can build over-long fields on purpose.
 */
export function encodeRequest(fields: RequestFields): Buffer {
  const parts = [fields.login, fields.password, fields.service, fields.realm ?? '']
  if (fields.clientAddress !== undefined) parts.push(fields.clientAddress)
  return Buffer.concat(parts.map(encodeField))
}

/** The NO text for `invalid`: the same bytes whatever the reason. */
export const NO_INVALID_TEXT = 'NO authentication failed'
/** The NO text for `unavailable` (still only `NO`-prefixed: callers look at `OK` only). */
export const NO_UNAVAILABLE_TEXT = 'NO temporarily unavailable'

const REPLIES: Record<Decision, Buffer> = {
  ok: encodeField('OK'),
  invalid: encodeField(NO_INVALID_TEXT),
  unavailable: encodeField(NO_UNAVAILABLE_TEXT),
}

/** The reply bytes for a decision. Anything but exactly `ok` is a NO (fail closed). */
export function encodeReply(decision: Decision): Buffer {
  const reply =
    decision === 'ok'
      ? REPLIES.ok
      : decision === 'unavailable'
        ? REPLIES.unavailable
        : REPLIES.invalid
  return Buffer.from(reply)
}

export type ReplyDecodeResult =
  | { status: 'need-more' }
  | { status: 'reply'; ok: boolean; text: string; bytes: number }
  | { status: 'error'; reason: 'truncated' | 'too_many_bytes' }

/** Parses a reply as libsasl2 does: OK iff the counted text starts with `OK`. */
export function decodeReply(bytes: Uint8Array, ended = false): ReplyDecodeResult {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf.length < 2)
    return ended ? { status: 'error', reason: 'truncated' } : { status: 'need-more' }
  const size = buf.readUInt16BE(0)
  if (size > MAX_REPLY_BYTES) return { status: 'error', reason: 'too_many_bytes' }
  if (buf.length < 2 + size) {
    return ended ? { status: 'error', reason: 'truncated' } : { status: 'need-more' }
  }
  const text = buf.subarray(2, 2 + size).toString('latin1')
  return { status: 'reply', ok: text.startsWith('OK'), text, bytes: 2 + size }
}
