/**
 * The readiness probe's request: a minimal AS-REQ (RFC 4120 5.4.1) for the verify principal
 * itself, asking for a TGT, without pre-authentication and without any secret. Any Kerberos
 * reply to it (PREAUTH_REQUIRED, an AS-REP we never decrypt, an error) proves that a KDC of
 * the realm answers; the reply is classified by kdc-message.ts and then dropped.
 *
 * Why the verify principal: it exists in every working deployment (the keytab check at start
 * makes sure of that), so the probe adds no "unknown client" lines to the KDC's log, and it
 * names no user.
 */
import { randomInt } from 'node:crypto'

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

function tlv(id: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([id]), length(body.length), body])
}

const seq = (...items: Buffer[]) => tlv(0x30, ...items)
const ctx = (n: number, inner: Buffer) => tlv(0xa0 | n, inner)
const kstring = (s: string) => tlv(0x1b, Buffer.from(s, 'utf8'))

/** Non-negative INTEGER (nonce, enctypes, name types all are). */
function uint(v: number): Buffer {
  const bytes: number[] = []
  let x = v
  do {
    bytes.unshift(x & 0xff)
    x = Math.floor(x / 256)
  } while (x > 0)
  if ((bytes[0] ?? 0) & 0x80) bytes.unshift(0)
  return tlv(0x02, Buffer.from(bytes))
}

function time(ms: number): Buffer {
  const iso = new Date(ms).toISOString()
  return tlv(0x18, Buffer.from(`${iso.slice(0, 19).replace(/[-T:]/g, '')}Z`, 'latin1'))
}

/** KRB5_NT_PRINCIPAL and KRB5_NT_SRV_INST. */
const NT_PRINCIPAL = 1
const NT_SRV_INST = 2

function principalName(type: number, components: readonly string[]): Buffer {
  return seq(ctx(0, uint(type)), ctx(1, seq(...components.map(kstring))))
}

export interface ProbeRequestOptions {
  /** The client, `name[/instance]` without the realm (the verify principal). */
  client: string
  realm: string
  /** Enctype numbers to offer, in order (the configured allow-list). */
  enctypes: readonly number[]
  now?: number
}

/** Encodes the probe AS-REQ. A fresh random nonce each time. */
export function encodeProbeAsReq(o: ProbeRequestOptions): Buffer {
  const now = o.now ?? Date.now()
  const body = seq(
    ctx(0, tlv(0x03, Buffer.from([0, 0, 0, 0, 0]))), // kdc-options: none
    ctx(1, principalName(NT_PRINCIPAL, o.client.split('/'))),
    ctx(2, kstring(o.realm)),
    ctx(3, principalName(NT_SRV_INST, ['krbtgt', o.realm])),
    ctx(5, time(now + 5 * 60_000)),
    ctx(7, uint(randomInt(1, 0x7fffffff))),
    ctx(8, seq(...o.enctypes.map(uint))),
  )
  // [APPLICATION 10] AS-REQ: pvno 5, msg-type 10, req-body.
  return tlv(0x6a, seq(ctx(1, uint(5)), ctx(2, uint(10)), ctx(4, body)))
}
