/**
 * Tiny, bounds-checked look at a KDC reply: is it a Kerberos reply at all (KRB-ERROR,
 * AS-REP, TGS-REP), and which error code does a KRB-ERROR carry. No decryption, no
 * allocation beyond the result: the transport uses it to drop garbage datagrams and to
 * spot KRB_ERR_RESPONSE_TOO_BIG. libkrb5 does the real parsing.
 */

/** KRB_ERR_RESPONSE_TOO_BIG: the reply does not fit a datagram, retry over TCP. */
export const KRB_ERR_RESPONSE_TOO_BIG = 52

export type KdcReplyKind = 'krb-error' | 'as-rep' | 'tgs-rep'

export interface KdcReplyInfo {
  kind: KdcReplyKind
  /** The KRB-ERROR error-code (only for `krb-error`). */
  errorCode?: number
}

/** Outer DER tag (APPLICATION n, constructed) -> kind and the msg-type it must carry. */
const KINDS: ReadonlyMap<number, { kind: KdcReplyKind; msgType: number }> = new Map([
  [0x7e, { kind: 'krb-error', msgType: 30 }],
  [0x6b, { kind: 'as-rep', msgType: 11 }],
  [0x6d, { kind: 'tgs-rep', msgType: 13 }],
])

interface Tlv {
  tag: number
  /** First content byte. */
  start: number
  /** One past the last content byte. */
  end: number
}

/** Reads one DER TLV at `offset` that must end at or before `limit`. */
function readTlv(buf: Buffer, offset: number, limit: number): Tlv | undefined {
  if (offset + 2 > limit) return undefined
  const tag = buf[offset]!
  if ((tag & 0x1f) === 0x1f) return undefined // multi-byte tags never occur here
  let len = buf[offset + 1]!
  let p = offset + 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0 || n > 4 || p + n > limit) return undefined // indefinite or absurd
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!
  }
  if (p + len > limit) return undefined
  return { tag, start: p, end: p + len }
}

/** A DER INTEGER that fits an Int32, or undefined. */
function readInt32(buf: Buffer, tlv: Tlv): number | undefined {
  if (tlv.tag !== 0x02) return undefined
  const n = tlv.end - tlv.start
  if (n < 1 || n > 4) return undefined
  return buf.readIntBE(tlv.start, n)
}

/** The INTEGER inside a context tag `[n] INTEGER`. */
function readTaggedInt(buf: Buffer, field: Tlv): number | undefined {
  const inner = readTlv(buf, field.start, field.end)
  if (!inner || inner.end !== field.end) return undefined
  return readInt32(buf, inner)
}

/**
 * Classifies `buf` as a Kerberos reply, or returns undefined for anything else (garbage,
 * truncated, trailing bytes, wrong pvno or msg-type).
 */
export function classifyKdcReply(buf: Buffer): KdcReplyInfo | undefined {
  const outer = readTlv(buf, 0, buf.length)
  if (!outer || outer.end !== buf.length) return undefined
  const expected = KINDS.get(outer.tag)
  if (!expected) return undefined
  const seq = readTlv(buf, outer.start, outer.end)
  if (seq?.tag !== 0x30 || seq.end !== outer.end) return undefined

  let pvno: number | undefined
  let msgType: number | undefined
  let errorCode: number | undefined
  let p = seq.start
  // A SEQUENCE of at most a dozen context-tagged fields; bounded by the buffer anyway.
  while (p < seq.end) {
    const field = readTlv(buf, p, seq.end)
    if (!field || (field.tag & 0xe0) !== 0xa0) return undefined
    const n = field.tag & 0x1f
    if (n === 0) pvno = readTaggedInt(buf, field)
    else if (n === 1) msgType = readTaggedInt(buf, field)
    else if (n === 6 && expected.kind === 'krb-error') errorCode = readTaggedInt(buf, field)
    p = field.end
  }
  if (pvno !== 5 || msgType !== expected.msgType) return undefined
  if (expected.kind === 'krb-error') {
    if (errorCode === undefined) return undefined
    return { kind: 'krb-error', errorCode }
  }
  return { kind: expected.kind }
}

/** True when `buf` looks like a KRB-ERROR, AS-REP or TGS-REP. */
export function isKdcReply(buf: Buffer): boolean {
  return classifyKdcReply(buf) !== undefined
}

/** The error-code of a KRB-ERROR, or undefined when `buf` is not one. */
export function krbErrorCode(buf: Buffer): number | undefined {
  return classifyKdcReply(buf)?.errorCode
}
