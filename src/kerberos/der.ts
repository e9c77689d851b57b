/**
 * A minimal, strict, bounds-checked DER reader for the few Kerberos structures saslgate
 * reads itself (no dependency). It only ever throws `DerError`
 * (`SASLGATE_ERR_DER`), never reads outside the buffer, and accepts DER only: definite,
 * minimal lengths and minimal tag numbers; BER-only forms (indefinite lengths, long forms
 * for short lengths, constructed strings) are refused. A reader may opt into two BER
 * relaxations with `DerLeniency`: non-minimal lengths and non-minimal INTEGERs.
 */
import { SaslgateError } from '../errors.js'

export const TagClass = {
  universal: 0,
  application: 1,
  context: 2,
  private: 3,
} as const

export type TagClass = (typeof TagClass)[keyof typeof TagClass]

/** Universal tag numbers used by Kerberos. */
export const UniversalTag = {
  integer: 2,
  octetString: 4,
  sequence: 16,
  generalString: 27,
} as const

/** Tag numbers above this are refused (no Kerberos structure comes close). */
export const MAX_TAG_NUMBER = 0x1fffff

export class DerError extends SaslgateError {
  /** Offset in the buffer where the problem was found. */
  readonly offset: number
  constructor(message: string, offset: number) {
    super('SASLGATE_ERR_DER', `${message} at offset ${offset}`)
    this.name = 'DerError'
    this.offset = offset
  }
}

/**
 * The two BER relaxations of strict DER that a reader may opt into to peek at what peers
 * send (kdc-message.ts: KDCs are not all strict DER encoders, and libkrb5 reads both forms).
 * Everything else stays refused, indefinite lengths included.
 */
export interface DerLeniency {
  /** Long-form lengths that are not minimal: `81 05`, `84 00 00 00 05`. */
  nonMinimalLengths?: boolean
  /** INTEGERs with redundant leading `00` / `ff` octets: `02 02 00 05`. */
  nonMinimalIntegers?: boolean
}

/** Strict DER: the default everywhere. */
const STRICT: DerLeniency = {}

/** One TLV: where it is in the buffer and what its tag says. Offsets are absolute. */
export interface DerElement {
  cls: TagClass
  constructed: boolean
  tagNumber: number
  /** Offset of the identifier octet. */
  start: number
  /** Offset of the first content octet. */
  contentStart: number
  /** One past the last content octet (also one past the whole element). */
  end: number
}

/** Reads the TLV at `offset`; it must end at or before `limit`. */
export function readElement(
  buf: Buffer,
  offset: number,
  limit: number = buf.length,
  leniency: DerLeniency = STRICT,
): DerElement {
  if (!Number.isInteger(offset) || offset < 0) throw new DerError('bad offset', 0)
  const end = Math.min(limit, buf.length)
  let p = offset
  if (p >= end) throw new DerError('missing identifier octet', p)
  const id = buf[p++]!
  const cls = (id >> 6) as TagClass
  const constructed = (id & 0x20) !== 0
  let tagNumber = id & 0x1f
  if (tagNumber === 0x1f) {
    // High-tag-number form: base-128, minimal, and only for numbers >= 31.
    tagNumber = 0
    for (let i = 0; ; i++) {
      if (p >= end) throw new DerError('truncated tag number', p)
      const b = buf[p++]!
      if (i === 0 && b === 0x80) throw new DerError('non-minimal tag number', p - 1)
      tagNumber = tagNumber * 128 + (b & 0x7f)
      if (tagNumber > MAX_TAG_NUMBER) throw new DerError('tag number too large', p - 1)
      if ((b & 0x80) === 0) break
    }
    if (tagNumber < 0x1f) throw new DerError('high-tag form for a low tag number', offset)
  }
  if (p >= end) throw new DerError('missing length octet', p)
  const first = buf[p++]!
  let length = first
  if (first === 0x80) throw new DerError('indefinite length', p - 1)
  if (first === 0xff) throw new DerError('reserved length octet', p - 1)
  if (first & 0x80) {
    const n = first & 0x7f
    if (n > 4) throw new DerError('length too large', p - 1)
    if (p + n > end) throw new DerError('truncated length', p)
    const minimal = !leniency.nonMinimalLengths
    if (minimal && buf[p] === 0) throw new DerError('non-minimal length', p)
    length = 0
    for (let i = 0; i < n; i++) length = length * 256 + buf[p++]!
    if (minimal && length < 0x80) throw new DerError('non-minimal length', p - n)
  }
  if (length > end - p) throw new DerError('length past the end', p)
  return { cls, constructed, tagNumber, start: offset, contentStart: p, end: p + length }
}

/** True when `el` has the given class, constructed bit and number. */
export function hasTag(
  el: DerElement,
  cls: TagClass,
  constructed: boolean,
  tagNumber: number,
): boolean {
  return el.cls === cls && el.constructed === constructed && el.tagNumber === tagNumber
}

/** Throws unless `el` has the given tag. */
export function expectTag(
  el: DerElement,
  cls: TagClass,
  constructed: boolean,
  tagNumber: number,
  what: string,
): DerElement {
  if (!hasTag(el, cls, constructed, tagNumber)) throw new DerError(`expected ${what}`, el.start)
  return el
}

/** Iterates the elements inside a constructed element (SEQUENCE, SEQUENCE OF, SET ...). */
export function* children(
  buf: Buffer,
  el: DerElement,
  leniency: DerLeniency = STRICT,
): Generator<DerElement> {
  if (!el.constructed) throw new DerError('expected a constructed element', el.start)
  let p = el.contentStart
  while (p < el.end) {
    const child = readElement(buf, p, el.end, leniency)
    yield child
    p = child.end
  }
}

/** The children of a SEQUENCE (universal 16, constructed) as an array. */
export function sequenceItems(buf: Buffer, el: DerElement, what = 'SEQUENCE'): DerElement[] {
  expectTag(el, TagClass.universal, true, UniversalTag.sequence, what)
  return [...children(buf, el)]
}

/** The single element wrapped by an EXPLICIT tag `[n]` (context class, constructed). */
export function explicitInner(
  buf: Buffer,
  el: DerElement,
  tagNumber?: number,
  leniency: DerLeniency = STRICT,
): DerElement {
  if (el.cls !== TagClass.context || !el.constructed) {
    throw new DerError('expected an explicit context tag', el.start)
  }
  if (tagNumber !== undefined && el.tagNumber !== tagNumber) {
    throw new DerError(`expected [${tagNumber}]`, el.start)
  }
  const inner = readElement(buf, el.contentStart, el.end, leniency)
  if (inner.end !== el.end) throw new DerError('trailing bytes inside an explicit tag', inner.end)
  return inner
}

export interface IntegerBounds {
  min: number
  max: number
}

/** Int32 bounds, as Kerberos uses for enctypes, error codes and padata types. */
export const INT32: IntegerBounds = { min: -0x80000000, max: 0x7fffffff }

/**
 * An INTEGER (minimal two's complement) as a number within `bounds`. Even when lenient,
 * more than 6 content octets are refused.
 */
export function readInteger(
  buf: Buffer,
  el: DerElement,
  bounds: IntegerBounds = INT32,
  leniency: DerLeniency = STRICT,
): number {
  expectTag(el, TagClass.universal, false, UniversalTag.integer, 'INTEGER')
  const n = el.end - el.contentStart
  if (n === 0) throw new DerError('empty INTEGER', el.start)
  if (n > 1 && !leniency.nonMinimalIntegers) {
    const a = buf[el.contentStart]!
    const b = buf[el.contentStart + 1]!
    if ((a === 0 && (b & 0x80) === 0) || (a === 0xff && (b & 0x80) !== 0)) {
      throw new DerError('non-minimal INTEGER', el.contentStart)
    }
  }
  // 6 bytes hold every safe integer's neighbourhood; larger values are out of any bound here
  // (a lenient, non-minimal encoding that long is refused too).
  if (n > 6) throw new DerError('INTEGER out of range', el.start)
  const value = buf.readIntBE(el.contentStart, n)
  if (value < bounds.min || value > bounds.max) throw new DerError('INTEGER out of range', el.start)
  return value
}

/** A primitive OCTET STRING's content (a copy). */
export function readOctetString(buf: Buffer, el: DerElement): Buffer {
  expectTag(el, TagClass.universal, false, UniversalTag.octetString, 'OCTET STRING')
  return Buffer.from(buf.subarray(el.contentStart, el.end))
}

/** A primitive GeneralString (KerberosString) as raw bytes (a copy). */
export function readGeneralString(buf: Buffer, el: DerElement): Buffer {
  expectTag(el, TagClass.universal, false, UniversalTag.generalString, 'GeneralString')
  return Buffer.from(buf.subarray(el.contentStart, el.end))
}

/** A parsed DER tree (for diagnostics and fuzzing): primitives keep their length only. */
export interface DerNode {
  cls: TagClass
  constructed: boolean
  tagNumber: number
  length: number
  children?: DerNode[]
}

/** Nesting deeper than this is refused by `parseTree`. */
export const MAX_TREE_DEPTH = 32

/**
 * Parses `buf` as exactly one DER element, descending into every constructed element.
 * Throws `DerError` on anything malformed, on trailing bytes and past `maxDepth`.
 */
export function parseTree(buf: Buffer, maxDepth: number = MAX_TREE_DEPTH): DerNode {
  const top = readElement(buf, 0)
  if (top.end !== buf.length) throw new DerError('trailing bytes', top.end)
  return toNode(buf, top, 0, maxDepth)
}

function toNode(buf: Buffer, el: DerElement, depth: number, maxDepth: number): DerNode {
  const node: DerNode = {
    cls: el.cls,
    constructed: el.constructed,
    tagNumber: el.tagNumber,
    length: el.end - el.contentStart,
  }
  if (el.constructed) {
    if (depth >= maxDepth) throw new DerError('nesting too deep', el.start)
    node.children = []
    for (const child of children(buf, el))
      node.children.push(toNode(buf, child, depth + 1, maxDepth))
  }
  return node
}
