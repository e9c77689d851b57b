/**
 * Tiny, bounds-checked look at a KDC reply: is it a Kerberos reply at all (KRB-ERROR,
 * AS-REP, TGS-REP), and which error code does a KRB-ERROR carry. No decryption, only the
 * outer fields (read with der.ts): the transport uses it to drop garbage datagrams and to
 * spot KRB_ERR_RESPONSE_TOO_BIG. libkrb5 does the real parsing.
 */
import {
  children,
  type DerElement,
  DerError,
  type DerLeniency,
  explicitInner,
  hasTag,
  INT32,
  readElement,
  readInteger,
  TagClass,
  UniversalTag,
} from './der.js'

/** KRB_ERR_RESPONSE_TOO_BIG: the reply does not fit a datagram, retry over TCP. */
export const KRB_ERR_RESPONSE_TOO_BIG = 52

export type KdcReplyKind = 'krb-error' | 'as-rep' | 'tgs-rep'

export interface KdcReplyInfo {
  kind: KdcReplyKind
  /** The KRB-ERROR error-code (only for `krb-error`). */
  errorCode?: number
}

/** Outer tag number (APPLICATION n, constructed) -> kind and the msg-type it must carry. */
const KINDS: ReadonlyMap<number, { kind: KdcReplyKind; msgType: number }> = new Map([
  [30, { kind: 'krb-error', msgType: 30 }],
  [11, { kind: 'as-rep', msgType: 11 }],
  [13, { kind: 'tgs-rep', msgType: 13 }],
])

/**
 * KDCs are not all strict DER encoders and libkrb5 reads non-minimal lengths and INTEGERs,
 * so this look accepts them too (it only decides whether libkrb5 gets to see a datagram).
 */
const LENIENT: DerLeniency = { nonMinimalLengths: true, nonMinimalIntegers: true }

/** pvno, msg-type and error-code INTEGERs with more content octets are not read. */
const MAX_INTEGER_OCTETS = 4

/** Context tag numbers above this take the multi-octet form: never in a KDC reply. */
const MAX_FIELD_TAG = 30

/**
 * Classifies `buf` as a Kerberos reply, or returns undefined for anything else (garbage,
 * truncated, trailing bytes, wrong pvno or msg-type). Never throws on any bytes; the work
 * is one pass over the outer SEQUENCE's fields.
 */
export function classifyKdcReply(buf: Buffer): KdcReplyInfo | undefined {
  try {
    return classify(buf)
  } catch (err) {
    if (err instanceof DerError) return undefined
    throw err
  }
}

function classify(buf: Buffer): KdcReplyInfo | undefined {
  const outer = readElement(buf, 0, buf.length, LENIENT)
  if (outer.end !== buf.length) return undefined
  if (outer.cls !== TagClass.application || !outer.constructed) return undefined
  const expected = KINDS.get(outer.tagNumber)
  if (!expected) return undefined
  const seq = readElement(buf, outer.contentStart, outer.end, LENIENT)
  if (!hasTag(seq, TagClass.universal, true, UniversalTag.sequence)) return undefined
  if (seq.end !== outer.end) return undefined

  let pvno: number | undefined
  let msgType: number | undefined
  let errorCode: number | undefined
  // A malformed field makes the whole reply unreadable (DerError); an unreadable INTEGER
  // in a field only leaves that value unset (the last occurrence of a field wins).
  for (const field of children(buf, seq, LENIENT)) {
    if (field.cls !== TagClass.context || !field.constructed) return undefined
    if (field.tagNumber > MAX_FIELD_TAG) return undefined
    const n = field.tagNumber
    if (n === 0) pvno = taggedInt32(buf, field)
    else if (n === 1) msgType = taggedInt32(buf, field)
    else if (n === 6 && expected.kind === 'krb-error') errorCode = taggedInt32(buf, field)
  }
  if (pvno !== 5 || msgType !== expected.msgType) return undefined
  if (expected.kind === 'krb-error') {
    if (errorCode === undefined) return undefined
    return { kind: 'krb-error', errorCode }
  }
  return { kind: expected.kind }
}

/** The INTEGER (at most 4 content octets) inside `[n] INTEGER`, or undefined. */
function taggedInt32(buf: Buffer, field: DerElement): number | undefined {
  try {
    const inner = explicitInner(buf, field, undefined, LENIENT)
    if (inner.end - inner.contentStart > MAX_INTEGER_OCTETS) return undefined
    return readInteger(buf, inner, INT32, LENIENT)
  } catch (err) {
    if (err instanceof DerError) return undefined
    throw err
  }
}

/** True when `buf` looks like a KRB-ERROR, AS-REP or TGS-REP. */
export function isKdcReply(buf: Buffer): boolean {
  return classifyKdcReply(buf) !== undefined
}

/** The error-code of a KRB-ERROR, or undefined when `buf` is not one. */
export function krbErrorCode(buf: Buffer): number | undefined {
  return classifyKdcReply(buf)?.errorCode
}
