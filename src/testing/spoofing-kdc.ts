/**
 * A spoofing KDC for verdict tests: a UDP proxy on 127.0.0.1 in front of a real KDC that,
 * request by request, relays, relays a modified reply, or answers a forged KRB-ERROR of its
 * own (optionally still sending the request on, as a forger racing the real KDC would).
 * Plus the forgeries: a KRB-ERROR with any code and time, an AS-REP whose outer client name
 * or encrypted part was altered.
 *
 * Plain async code, no test-framework imports. UDP only: nothing listens on its TCP port.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram'
import { children, explicitInner, readElement, TagClass, UniversalTag } from '../kerberos/der.js'
import { encodeKrbError } from './krb-messages.js'

/** What the proxy does with one request. */
export type SpoofPlan =
  /** Relay to the real KDC and its reply back, through `rewrite` when given. */
  | { kind: 'forward'; rewrite?: (reply: Buffer) => Buffer }
  /**
   * Answer `reply` at once. `forward`: the request still reaches the real KDC (which may
   * count it), and the real reply is dropped.
   */
  | { kind: 'answer'; reply: Buffer; forward?: boolean }

export interface SpoofingKdc {
  readonly host: string
  readonly port: number
  /** `127.0.0.1:port`, as the transport names it. */
  readonly kdc: string
  /** Requests received, and how many reached the real KDC. */
  readonly requests: number
  readonly forwarded: number
  /** Decides request `n` (0-based, counted over the proxy's life). Settable. */
  plan: (request: Buffer, n: number) => SpoofPlan
  close(): Promise<void>
}

export const FORWARD: SpoofPlan = { kind: 'forward' }

export async function startSpoofingKdc(target: {
  host: string
  port: number
}): Promise<SpoofingKdc> {
  const server = createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.bind(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const upstreams = new Set<UdpSocket>()
  let closed = false
  const port = server.address().port
  const state = {
    requests: 0,
    forwarded: 0,
    plan: (() => FORWARD) as SpoofingKdc['plan'],
  }
  const forward = (msg: Buffer, onReply: ((reply: Buffer) => void) | undefined) => {
    state.forwarded++
    const up = createSocket('udp4')
    upstreams.add(up)
    const done = () => {
      if (upstreams.delete(up)) up.close()
    }
    const idle = setTimeout(done, 10_000)
    idle.unref()
    up.on('error', done)
    up.on('message', (reply) => {
      clearTimeout(idle)
      done()
      if (!closed) onReply?.(reply)
    })
    up.send(msg, target.port, target.host)
  }
  server.on('message', (msg: Buffer, client: RemoteInfo) => {
    const n = state.requests++
    if (closed) return
    const plan = state.plan(msg, n)
    const reply = (bytes: Buffer) => {
      if (!closed) server.send(bytes, client.port, client.address)
    }
    if (plan.kind === 'answer') {
      reply(plan.reply)
      if (plan.forward) forward(msg, undefined)
      return
    }
    forward(msg, (r) => reply(plan.rewrite ? plan.rewrite(r) : r))
  })
  return {
    host: '127.0.0.1',
    port,
    kdc: `127.0.0.1:${port}`,
    get requests() {
      return state.requests
    },
    get forwarded() {
      return state.forwarded
    },
    get plan() {
      return state.plan
    },
    set plan(p) {
      state.plan = p
    },
    close: async () => {
      if (closed) return
      closed = true
      for (const up of upstreams) up.close()
      upstreams.clear()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

// -- forgeries ----------------------------------------------------------------------------------

/** A well-formed, unauthenticated KRB-ERROR (what anyone on the path can send). */
export function forgeKrbError(code: number, realm: string, options: { stime?: Date } = {}): Buffer {
  return encodeKrbError({
    errorCode: code,
    realm,
    ...(options.stime !== undefined ? { stimeMs: options.stime.getTime() } : {}),
  })
}

/** The [n] field of the AS-REP/TGS-REP SEQUENCE in `reply`, or undefined. */
function repField(reply: Buffer, n: number) {
  const outer = readElement(reply, 0)
  const seq = readElement(reply, outer.contentStart, outer.end)
  for (const field of children(reply, seq)) {
    if (field.cls === TagClass.context && field.tagNumber === n) return field
  }
  return undefined
}

/**
 * The AS-REP with the last octet of its outer client name changed (`alice` -> `alicd`):
 * the encrypted part still decrypts, but the reply no longer matches the request.
 */
export function alterAsRepClient(reply: Buffer): Buffer {
  const out = Buffer.from(reply)
  const cname = repField(out, 4)
  if (!cname) return out
  const name = explicitInner(out, cname) // PrincipalName SEQUENCE
  let last: { end: number } | undefined
  for (const f of children(out, name)) {
    if (f.tagNumber !== 1) continue
    for (const s of children(out, explicitInner(out, f))) {
      if (s.tagNumber === UniversalTag.generalString && s.end > s.contentStart) last = s
    }
  }
  if (last) out[last.end - 1] = (out[last.end - 1] ?? 0) ^ 0x01
  return out
}

/** The AS-REP with one octet of its encrypted part's cipher flipped: it fails integrity. */
export function corruptAsRepEncPart(reply: Buffer): Buffer {
  const out = Buffer.from(reply)
  const encPart = repField(out, 6)
  if (!encPart) return out
  const seq = explicitInner(out, encPart) // EncryptedData
  for (const f of children(out, seq)) {
    if (f.tagNumber === 2) {
      const cipher = explicitInner(out, f)
      const at = cipher.contentStart + Math.floor((cipher.end - cipher.contentStart) / 2)
      out[at] = (out[at] ?? 0) ^ 0x55
    }
  }
  return out
}

/** The message type of a KDC request or reply (10 AS-REQ, 11 AS-REP, 30 KRB-ERROR ...). */
export function messageType(msg: Buffer): number | undefined {
  try {
    const outer = readElement(msg, 0)
    return outer.cls === TagClass.application ? outer.tagNumber : undefined
  } catch {
    return undefined
  }
}
