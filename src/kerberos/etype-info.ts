/**
 * Reads what a KDC reply says about string-to-key before libkrb5 sees it: the kind of
 * reply, a KRB-ERROR's error code, and the PA-ETYPE-INFO2 (enctype, salt, s2kparams) of
 * a KRB-ERROR's e-data or a KDC-REP's padata (RFC 4120 §5.2.7.5, §5.4.2, §5.9.1).
 *
 * The iteration count in that reply is unauthenticated, and libkrb5 1.20 accepts up to
 * 0xFFFFFF: `checkS2kSafety` refuses absurd counts. The parse is an over-approximation of
 * what libkrb5 could read: every PA-ETYPE-INFO2 and every entry is reported, fields may
 * come in any order, unknown fields are skipped; padata we cannot read is flagged
 * (`padataMalformed`) so the check fails closed.
 */
import { SaslgateError } from '../errors.js'
import {
  type DerElement,
  DerError,
  explicitInner,
  INT32,
  readElement,
  readGeneralString,
  readInteger,
  readOctetString,
  sequenceItems,
  TagClass,
} from './der.js'
import { S2K_DEFAULT_ITERATIONS, s2kCeiling } from './enctypes.js'

/** PA-DATA types this module reads (RFC 4120 §7.5.2, RFC 6113). */
export const PaDataType = {
  encTimestamp: 2,
  pwSalt: 3,
  eTypeInfo: 11,
  eTypeInfo2: 19,
  fxCookie: 133,
  spake: 151,
} as const

/** KRB-ERROR codes that matter to the string-to-key path. */
export const KrbErrorCode = {
  preauthFailed: 24,
  preauthRequired: 25,
  morePreauthDataRequired: 91,
} as const

/** One ETYPE-INFO2-ENTRY. `salt` is the KerberosString's raw bytes. */
export interface ETypeInfo2Entry {
  etype: number
  salt?: Buffer
  s2kparams?: Buffer
}

/** Alias with the other common spelling. */
export type EtypeInfo2Entry = ETypeInfo2Entry

/** One ETYPE-INFO-ENTRY (the old PA-ETYPE-INFO: no s2kparams, salt is an OCTET STRING). */
export interface ETypeInfoEntry {
  etype: number
  salt?: Buffer
}

/** What the padata of a reply said about string-to-key. */
export interface PadataSummary {
  /** Entries of every PA-ETYPE-INFO2, in order. */
  eTypeInfo2?: ETypeInfo2Entry[]
  /** Entries of every readable PA-ETYPE-INFO, in order. */
  eTypeInfo?: ETypeInfoEntry[]
  /** The first PA-PW-SALT's bytes. */
  pwSalt?: Buffer
  /** PA-FX-COOKIE present (RFC 6113). */
  hasCookie?: boolean
  /** Every padata-type seen, in order. */
  paTypes?: number[]
  /**
   * The e-data / padata or a PA-ETYPE-INFO2 in it could not be read: libkrb5 might still
   * read something from it, so `checkS2kSafety` refuses the reply.
   */
  padataMalformed?: boolean
}

export type KdcReplyInfo =
  | ({ kind: 'krb-error'; errorCode: number } & PadataSummary)
  | ({ kind: 'as-rep' | 'tgs-rep' } & PadataSummary)
  | { kind: 'unknown'; eTypeInfo2?: undefined; padataMalformed?: undefined }

/** First identifier octet (APPLICATION n, constructed) -> kind and msg-type. */
const KINDS: ReadonlyMap<number, { kind: 'krb-error' | 'as-rep' | 'tgs-rep'; msgType: number }> =
  new Map([
    [0x7e, { kind: 'krb-error', msgType: 30 }],
    [0x6b, { kind: 'as-rep', msgType: 11 }],
    [0x6d, { kind: 'tgs-rep', msgType: 13 }],
  ])

/**
 * Classifies a KDC reply (without the TCP length prefix). Returns `{kind: 'unknown'}` when
 * the first octet is not a KRB-ERROR, AS-REP or TGS-REP tag (libkrb5 will not read it as a
 * reply either). Throws `SASLGATE_ERR_KDC_BAD_REPLY` when it carries such a tag but its
 * outer structure is malformed (strict DER, trailing bytes, wrong pvno or msg-type, a
 * KRB-ERROR without error-code).
 */
export function inspectKdcReply(reply: Buffer): KdcReplyInfo {
  const expected = reply.length > 0 ? KINDS.get(reply[0]!) : undefined
  if (!expected) return { kind: 'unknown' }
  try {
    const outer = readElement(reply, 0)
    if (outer.end !== reply.length) throw new DerError('trailing bytes', outer.end)
    const seq = explicitInnerAny(reply, outer)
    const fields = contextFields(sequenceItems(reply, seq, 'KDC reply SEQUENCE'))
    const pvno = fields.get(0)
    const msgType = fields.get(1)
    if (!pvno || readInteger(reply, explicitInner(reply, pvno)) !== 5) {
      throw new DerError('pvno is not 5', seq.start)
    }
    if (!msgType || readInteger(reply, explicitInner(reply, msgType)) !== expected.msgType) {
      throw new DerError('wrong msg-type', seq.start)
    }
    if (expected.kind === 'krb-error') {
      const code = fields.get(6)
      if (!code) throw new DerError('KRB-ERROR without error-code', seq.start)
      const errorCode = readInteger(reply, explicitInner(reply, code), INT32)
      const eData = fields.get(12)
      if (!eData) return { kind: 'krb-error', errorCode }
      const bytes = readOctetString(reply, explicitInner(reply, eData))
      // An empty e-data is no e-data (libkrb5 does not decode it either).
      if (bytes.length === 0) return { kind: 'krb-error', errorCode }
      return { kind: 'krb-error', errorCode, ...readMethodData(bytes) }
    }
    const padata = fields.get(2)
    if (!padata) return { kind: expected.kind }
    return { kind: expected.kind, ...readPadataSequence(reply, () => explicitInner(reply, padata)) }
  } catch (err) {
    throw new SaslgateError('SASLGATE_ERR_KDC_BAD_REPLY', `malformed ${expected.kind}`, {
      cause: err,
    })
  }
}

/** The one element inside an APPLICATION-tagged (explicit) wrapper. */
function explicitInnerAny(buf: Buffer, el: DerElement): DerElement {
  const inner = readElement(buf, el.contentStart, el.end)
  if (inner.end !== el.end)
    throw new DerError('trailing bytes inside the APPLICATION tag', inner.end)
  return inner
}

/** SEQUENCE fields by context tag number; any order, duplicates refused. */
function contextFields(items: DerElement[]): Map<number, DerElement> {
  const fields = new Map<number, DerElement>()
  for (const item of items) {
    if (item.cls !== TagClass.context || !item.constructed) {
      throw new DerError('expected an explicit context tag', item.start)
    }
    if (fields.has(item.tagNumber)) throw new DerError('duplicate field', item.start)
    fields.set(item.tagNumber, item)
  }
  return fields
}

/** METHOD-DATA in a KRB-ERROR's e-data (its own DER encoding inside an OCTET STRING). */
function readMethodData(eData: Buffer): PadataSummary {
  return readPadataSequence(eData, () => {
    const el = readElement(eData, 0)
    if (el.end !== eData.length) throw new DerError('trailing bytes after METHOD-DATA', el.end)
    return el
  })
}

/** SEQUENCE OF PA-DATA; failures to read it become `padataMalformed`. */
function readPadataSequence(buf: Buffer, locate: () => DerElement): PadataSummary {
  const out: PadataSummary = { paTypes: [] }
  try {
    const seq = locate()
    for (const item of sequenceItems(buf, seq, 'PA-DATA')) {
      const fields = contextFields(sequenceItems(buf, item, 'PA-DATA'))
      const typeField = fields.get(1)
      const valueField = fields.get(2)
      if (!typeField || !valueField) throw new DerError('PA-DATA without type or value', item.start)
      const type = readInteger(buf, explicitInner(buf, typeField), INT32)
      const value = readOctetString(buf, explicitInner(buf, valueField))
      out.paTypes!.push(type)
      addPadata(out, type, value)
    }
  } catch (err) {
    if (!(err instanceof DerError)) throw err
    out.padataMalformed = true
  }
  return out
}

function addPadata(out: PadataSummary, type: number, value: Buffer): void {
  switch (type) {
    case PaDataType.eTypeInfo2:
      // Not caught here: an unreadable ETYPE-INFO2 flags the whole padata.
      out.eTypeInfo2 = [...(out.eTypeInfo2 ?? []), ...readETypeInfo2(value)]
      return
    case PaDataType.eTypeInfo:
      try {
        out.eTypeInfo = [...(out.eTypeInfo ?? []), ...readETypeInfo(value)]
      } catch (err) {
        // The old form carries no s2kparams: an unreadable one cannot make libkrb5 slow.
        if (!(err instanceof DerError)) throw err
      }
      return
    case PaDataType.pwSalt:
      out.pwSalt ??= value
      return
    case PaDataType.fxCookie:
      out.hasCookie = true
      return
    default:
      return
  }
}

/** ETYPE-INFO2 ::= SEQUENCE SIZE (1..MAX) OF ETYPE-INFO2-ENTRY */
export function readETypeInfo2(value: Buffer): ETypeInfo2Entry[] {
  const seq = readElement(value, 0)
  if (seq.end !== value.length) throw new DerError('trailing bytes after ETYPE-INFO2', seq.end)
  return sequenceItems(value, seq, 'ETYPE-INFO2').map((item) => {
    const fields = contextFields(sequenceItems(value, item, 'ETYPE-INFO2-ENTRY'))
    const etype = fields.get(0)
    if (!etype) throw new DerError('ETYPE-INFO2-ENTRY without etype', item.start)
    const entry: ETypeInfo2Entry = { etype: readInteger(value, explicitInner(value, etype), INT32) }
    const salt = fields.get(1)
    if (salt) entry.salt = readGeneralString(value, explicitInner(value, salt))
    const params = fields.get(2)
    if (params) entry.s2kparams = readOctetString(value, explicitInner(value, params))
    return entry
  })
}

/** ETYPE-INFO ::= SEQUENCE OF ETYPE-INFO-ENTRY (salt is an OCTET STRING here). */
export function readETypeInfo(value: Buffer): ETypeInfoEntry[] {
  const seq = readElement(value, 0)
  if (seq.end !== value.length) throw new DerError('trailing bytes after ETYPE-INFO', seq.end)
  return sequenceItems(value, seq, 'ETYPE-INFO').map((item) => {
    const fields = contextFields(sequenceItems(value, item, 'ETYPE-INFO-ENTRY'))
    const etype = fields.get(0)
    if (!etype) throw new DerError('ETYPE-INFO-ENTRY without etype', item.start)
    const entry: ETypeInfoEntry = { etype: readInteger(value, explicitInner(value, etype), INT32) }
    const salt = fields.get(1)
    if (salt) entry.salt = readOctetString(value, explicitInner(value, salt))
    return entry
  })
}

export { S2K_DEFAULT_ITERATIONS } from './enctypes.js'

/**
 * The PBKDF2 iteration count an entry asks for: the default when `s2kparams` is absent or
 * empty, 2^32 for a count of 0 (RFC 3962), `undefined` for enctypes without an iteration
 * count (their string-to-key cost is fixed). Throws `SASLGATE_ERR_UNSAFE_S2K` when the
 * s2kparams is not 4 bytes.
 */
export function s2kIterations(etype: number, s2kparams?: Buffer): number | undefined {
  const def = S2K_DEFAULT_ITERATIONS.get(etype)
  if (def === undefined) return undefined
  if (s2kparams === undefined || s2kparams.length === 0) return def
  if (s2kparams.length !== 4) {
    throw new SaslgateError('SASLGATE_ERR_UNSAFE_S2K', `malformed s2kparams for enctype ${etype}`)
  }
  const count = s2kparams.readUInt32BE(0)
  return count === 0 ? 2 ** 32 : count
}

export type S2kSafety =
  | { ok: true }
  | {
      ok: false
      reason: 'too_many_iterations' | 'too_few_iterations' | 'bad_s2kparams' | 'malformed_padata'
      etype?: number
      iterations?: number
    }

/**
 * Whether libkrb5 (or our own string-to-key) may act on this reply's string-to-key
 * parameters. Refuses counts above the enctype's ceiling (`s2kCeiling`: 4x its default, or
 * `maxIterations` for every enctype when > 0), counts below the enctype's default (libkrb5
 * refuses them too, so deriving such a key ourselves would be weaker than MIT), malformed
 * s2kparams, and padata that could not be read (fail closed).
 */
export function checkS2kSafety(info: KdcReplyInfo, maxIterations = 0): S2kSafety {
  if (!Number.isSafeInteger(maxIterations) || maxIterations < 0) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', 'maxIterations must be an integer >= 0')
  }
  if (info.padataMalformed) return { ok: false, reason: 'malformed_padata' }
  for (const entry of info.eTypeInfo2 ?? []) {
    let iterations: number | undefined
    try {
      iterations = s2kIterations(entry.etype, entry.s2kparams)
    } catch {
      return { ok: false, reason: 'bad_s2kparams', etype: entry.etype }
    }
    if (iterations === undefined) continue
    if (iterations > s2kCeiling(entry.etype, maxIterations)!) {
      return { ok: false, reason: 'too_many_iterations', etype: entry.etype, iterations }
    }
    if (iterations < S2K_DEFAULT_ITERATIONS.get(entry.etype)!) {
      return { ok: false, reason: 'too_few_iterations', etype: entry.etype, iterations }
    }
  }
  return { ok: true }
}

/** The string-to-key parameters libkrb5 would pick from a reply for an allow-list. */
export interface S2kChoice {
  etype: number
  /** Undefined: the principal's default salt. */
  salt?: Buffer
  s2kparams?: Buffer
}

export type EnctypeCheck =
  | { ok: true; choice: S2kChoice }
  | {
      ok: false
      reason: 'no_allowed_enctype' | 'ambiguous_etype_info'
      /** The enctypes the reply offered (for the log line). */
      offered: number[]
    }

/**
 * What libkrb5 (preauth2.c `k5_get_etype_info`, 1.20) would use from this reply with
 * `allowed` as its request list: the first PA-ETYPE-INFO2 (else the first PA-ETYPE-INFO),
 * the entry of the first allowed enctype in `allowed` order; with neither, `allowed[0]`
 * and the PA-PW-SALT if any. Refused: a hint that offers none of `allowed` (a spoofed
 * rc4-only or des3-only PREAUTH_REQUIRED is a downgrade attempt), and more than one
 * PA-ETYPE-INFO2 or PA-ETYPE-INFO (no KDC sends two; which one counts is a parser detail).
 */
export function checkEnctypes(info: KdcReplyInfo, allowed: readonly number[]): EnctypeCheck {
  if (allowed.length === 0) throw new SaslgateError('SASLGATE_ERR_CONFIG', 'no enctype allowed')
  if (info.kind === 'unknown') return { ok: true, choice: { etype: allowed[0]! } }
  const count = (t: number) => (info.paTypes ?? []).filter((x) => x === t).length
  const hint: ReadonlyArray<{ etype: number; salt?: Buffer; s2kparams?: Buffer }> | undefined =
    info.eTypeInfo2 ?? info.eTypeInfo
  if (count(PaDataType.eTypeInfo2) > 1 || count(PaDataType.eTypeInfo) > 1) {
    return { ok: false, reason: 'ambiguous_etype_info', offered: (hint ?? []).map((e) => e.etype) }
  }
  if (hint === undefined || hint.length === 0) {
    // An MIT KDC that holds no key of a requested enctype for the principal (say, rc4 only)
    // sends PREAUTH_REQUIRED with no hint and offers neither PA-ENC-TIMESTAMP nor SPAKE:
    // nothing libkrb5 could use, so say so instead of failing inside libkrb5.
    const offered = info.paTypes ?? []
    if (
      info.kind === 'krb-error' &&
      info.errorCode === KrbErrorCode.preauthRequired &&
      info.pwSalt === undefined &&
      !offered.includes(PaDataType.encTimestamp) &&
      !offered.includes(PaDataType.spake)
    ) {
      return { ok: false, reason: 'no_allowed_enctype', offered: [] }
    }
    return info.pwSalt === undefined
      ? { ok: true, choice: { etype: allowed[0]! } }
      : { ok: true, choice: { etype: allowed[0]!, salt: info.pwSalt } }
  }
  for (const etype of allowed) {
    const e = hint.find((x) => x.etype === etype)
    if (e === undefined) continue
    const choice: S2kChoice = { etype }
    if (e.salt !== undefined) choice.salt = e.salt
    if (e.s2kparams !== undefined) choice.s2kparams = e.s2kparams
    return { ok: true, choice }
  }
  return { ok: false, reason: 'no_allowed_enctype', offered: hint.map((e) => e.etype) }
}
