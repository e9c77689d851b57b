/**
 * Kerberos messages for spoofing KDCs in tests: a small DER encoder for the KRB-ERRORs a
 * spoofer sends (PREAUTH_REQUIRED with a chosen ETYPE-INFO2), and a reader of what a client
 * sent in an AS-REQ (its PA-DATA, the enctype of its PA-ENC-TIMESTAMP, its enctype list).
 *
 * Test tooling only: the product never imports it.
 */
import {
  type DerElement,
  explicitInner,
  readElement,
  readInteger,
  readOctetString,
  sequenceItems,
  TagClass,
} from '../kerberos/der.js'
import { aesDecrypt, aesEncrypt, KeyUsage } from './krb-crypto.js'

// -- encoding ---------------------------------------------------------------------------------

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

export function tlv(id: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([id]), length(body.length), body])
}

export const derSeq = (...items: Buffer[]) => tlv(0x30, ...items)
export const derCtx = (n: number, inner: Buffer) => tlv(0xa0 | n, inner)
export const derOctets = (b: Buffer) => tlv(0x04, b)
export const derString = (s: string) => tlv(0x1b, Buffer.from(s, 'utf8'))

export function derInt(v: number): Buffer {
  const bytes: number[] = []
  let x = v
  do {
    bytes.unshift(x & 0xff)
    x >>= 8
  } while (x !== 0 && x !== -1)
  if (v >= 0 && (bytes[0]! & 0x80) !== 0) bytes.unshift(0)
  if (v < 0 && (bytes[0]! & 0x80) === 0) bytes.unshift(0xff)
  return tlv(0x02, Buffer.from(bytes))
}

/** KerberosTime: GeneralizedTime `YYYYMMDDHHMMSSZ`. */
export function derTime(ms: number): Buffer {
  const iso = new Date(ms).toISOString() // 2026-12-04T18:38:52.123Z
  return tlv(0x18, Buffer.from(`${iso.slice(0, 19).replace(/[-T:]/g, '')}Z`, 'latin1'))
}

export interface EtypeInfo2Hint {
  etype: number
  salt?: string
  /** Iteration count (4 bytes big-endian s2kparams); absent: the enctype's default. */
  iterations?: number
}

function etypeInfo2(entries: readonly EtypeInfo2Hint[]): Buffer {
  return derSeq(
    ...entries.map((e) => {
      const fields = [derCtx(0, derInt(e.etype))]
      if (e.salt !== undefined) fields.push(derCtx(1, derString(e.salt)))
      if (e.iterations !== undefined) {
        const p = Buffer.alloc(4)
        p.writeUInt32BE(e.iterations)
        fields.push(derCtx(2, derOctets(p)))
      }
      return derSeq(...fields)
    }),
  )
}

const paData = (type: number, value: Buffer) =>
  derSeq(derCtx(1, derInt(type)), derCtx(2, derOctets(value)))

function principalName(nameType: number, components: readonly string[]): Buffer {
  return derSeq(derCtx(0, derInt(nameType)), derCtx(1, derSeq(...components.map(derString))))
}

export interface KrbErrorSpec {
  errorCode: number
  realm: string
  /** The client name's components (`['alice']`). */
  client?: readonly string[]
  /** KDC time; default now. */
  stimeMs?: number
  /** PA-ETYPE-INFO2 entries for the e-data (with PA-ENC-TIMESTAMP offered). */
  etypeInfo2?: readonly EtypeInfo2Hint[]
}

/**
 * A KRB-ERROR as an MIT KDC shapes it; with `etypeInfo2`, its e-data is a METHOD-DATA
 * offering PA-ENC-TIMESTAMP (2) and carrying PA-ETYPE-INFO2 (19).
 */
export function encodeKrbError(spec: KrbErrorSpec): Buffer {
  const fields = [
    derCtx(0, derInt(5)),
    derCtx(1, derInt(30)),
    derCtx(4, derTime(spec.stimeMs ?? Date.now())),
    derCtx(5, derInt(0)),
    derCtx(6, derInt(spec.errorCode)),
  ]
  if (spec.client !== undefined) {
    fields.push(derCtx(7, derString(spec.realm)), derCtx(8, principalName(1, spec.client)))
  }
  fields.push(
    derCtx(9, derString(spec.realm)),
    derCtx(10, principalName(2, ['krbtgt', spec.realm])),
  )
  if (spec.etypeInfo2 !== undefined) {
    const methodData = derSeq(paData(19, etypeInfo2(spec.etypeInfo2)), paData(2, Buffer.alloc(0)))
    fields.push(derCtx(12, derOctets(methodData)))
  }
  return tlv(0x7e, derSeq(...fields))
}

// -- reading an AS-REQ ------------------------------------------------------------------------

export interface AsReqSummary {
  /** padata-type of every PA-DATA, in order. */
  padataTypes: number[]
  /** The enctype of the PA-ENC-TIMESTAMP's EncryptedData, when there is one. */
  encTimestampEtype?: number
  /** Its cipher (key usage 1). */
  encTimestampCipher?: Buffer
  /** The enctypes the client asked for (req-body etype), in order. */
  etypes: number[]
}

function fieldsOf(buf: Buffer, seq: DerElement): Map<number, DerElement> {
  const out = new Map<number, DerElement>()
  for (const f of sequenceItems(buf, seq)) if (f.cls === TagClass.context) out.set(f.tagNumber, f)
  return out
}

/** Reads an AS-REQ ([APPLICATION 10]); undefined for anything else (a TGS-REQ, garbage). */
export function readAsReq(buf: Buffer): AsReqSummary | undefined {
  try {
    const app = readElement(buf, 0)
    if (app.cls !== TagClass.application || app.tagNumber !== 10) return undefined
    const seq = readElement(buf, app.contentStart, app.end)
    const f = fieldsOf(buf, seq)
    const out: AsReqSummary = { padataTypes: [], etypes: [] }
    const padata = f.get(3)
    if (padata !== undefined) {
      for (const pa of sequenceItems(buf, explicitInner(buf, padata))) {
        const pf = fieldsOf(buf, pa)
        const type = readInteger(buf, explicitInner(buf, pf.get(1)!))
        out.padataTypes.push(type)
        if (type === 2) {
          const value = readOctetString(buf, explicitInner(buf, pf.get(2)!))
          const enc = fieldsOf(value, readElement(value, 0))
          out.encTimestampEtype = readInteger(value, explicitInner(value, enc.get(0)!))
          out.encTimestampCipher = readOctetString(value, explicitInner(value, enc.get(2)!))
        }
      }
    }
    const body = fieldsOf(buf, explicitInner(buf, f.get(4)!))
    const etype = body.get(8)
    if (etype !== undefined) {
      for (const e of sequenceItems(buf, explicitInner(buf, etype))) {
        out.etypes.push(readInteger(buf, e))
      }
    }
    return out
  } catch {
    return undefined
  }
}

// -- rewriting an AS-REP ----------------------------------------------------------------------

function shiftTime(buf: Buffer, el: DerElement, deltaMs: number): void {
  const text = buf.toString('latin1', el.contentStart, el.end) // YYYYMMDDHHMMSSZ
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
  if (m === null) throw new Error(`unexpected KerberosTime ${text}`)
  const [, y, mo, d, h, mi, sec] = m.map(Number) as number[]
  const shifted = derTime(Date.UTC(y!, mo! - 1, d!, h!, mi!, sec!) + deltaMs)
  shifted.copy(buf, el.contentStart, 2) // same length: tag and length octets unchanged
}

/**
 * The AS-REP with the authtime, starttime and endtime of its encrypted part (EncASRepPart,
 * under `key`, key usage 3) moved by `deltaMs`; the ticket is left alone. Returns the reply
 * unchanged when it is no AS-REP or `key` does not open it.
 */
export function shiftAsRepTimes(reply: Buffer, key: Buffer, deltaMs: number): Buffer {
  try {
    const app = readElement(reply, 0)
    if (app.cls !== TagClass.application || app.tagNumber !== 11) return reply
    const f = fieldsOf(reply, readElement(reply, app.contentStart, app.end))
    const enc = fieldsOf(reply, explicitInner(reply, f.get(6)!))
    const cipherEl = explicitInner(reply, enc.get(2)!)
    const plain = aesDecrypt(key, KeyUsage.asRepEncPart, readOctetString(reply, cipherEl))
    if (plain === undefined) return reply
    const part = readElement(plain, 0) // [APPLICATION 25] (MIT may use 26)
    const pf = fieldsOf(plain, readElement(plain, part.contentStart, part.end))
    for (const n of [5, 6, 7]) {
      const t = pf.get(n)
      if (t !== undefined) shiftTime(plain, explicitInner(plain, t), deltaMs)
    }
    const out = Buffer.from(reply)
    aesEncrypt(key, KeyUsage.asRepEncPart, plain).copy(out, cipherEl.contentStart)
    return out
  } catch {
    return reply
  }
}
