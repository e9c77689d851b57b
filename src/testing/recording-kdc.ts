/**
 * A recording, spoofing KDC on 127.0.0.1 (UDP): it records every request (an AS-REQ is read:
 * its PA-DATA, PA-ENC-TIMESTAMP and enctype list) and answers from a script,
 * or relays to a real KDC and may rewrite the real reply on its way back. It plays the
 * attacker on the network path (or a rogue KDC without keys) in tests of what the client
 * sends and accepts.
 *
 * UDP only: the client under test uses TCP only after KRB_ERR_RESPONSE_TOO_BIG, and a TCP
 * connection here is closed at once (which the test would see as a failed exchange).
 * Test tooling only: the product never imports it.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { type AsReqSummary, readAsReq } from './krb-messages.js'
import { closePair, listenUdpAndTcp } from './ports.js'

/** What to do with one request: a reply, 'relay' (to `upstream`), or 'drop'. */
export type SpoofAction = Buffer | 'relay' | 'drop'

export interface RecordingKdcOptions {
  /** The real KDC to relay to. */
  upstream?: { host: string; port: number }
  /** Decides each request (0-based index among all requests); default 'relay'. */
  answer?: (request: Buffer, index: number) => SpoofAction
  /** Rewrites a relayed reply (the real KDC's) before it goes back to the client. */
  rewriteReply?: (reply: Buffer, request: Buffer) => Buffer
  /** A relayed request whose reply has not come by then is forgotten. */
  upstreamIdleMs?: number
}

export interface RecordedRequest {
  bytes: Buffer
  /** The AS-REQ's PA-DATA and enctypes; undefined for a TGS-REQ or anything else. */
  asReq: AsReqSummary | undefined
}

export interface RecordingKdc {
  readonly host: string
  readonly port: number
  readonly requests: readonly RecordedRequest[]
  /** Replies the rewrite hook changed. */
  readonly rewritten: number
  close(): Promise<void>
}

export const DEFAULT_RECORDING_KDC_OPTIONS = { upstreamIdleMs: 5_000 }

export async function startRecordingKdc(options: RecordingKdcOptions = {}): Promise<RecordingKdc> {
  const requests: RecordedRequest[] = []
  const upstreams = new Map<UdpSocket, NodeJS.Timeout>()
  let rewritten = 0
  let closed = false
  const pair = await listenUdpAndTcp((socket) => socket.destroy())
  const forget = (u: UdpSocket) => {
    const t = upstreams.get(u)
    if (t === undefined) return
    clearTimeout(t)
    upstreams.delete(u)
    u.close()
  }
  const relay = (msg: Buffer, port: number, address: string) => {
    const target = options.upstream
    if (target === undefined) return
    const u = createSocket('udp4')
    const idle = setTimeout(
      () => forget(u),
      options.upstreamIdleMs ?? DEFAULT_RECORDING_KDC_OPTIONS.upstreamIdleMs,
    )
    idle.unref()
    upstreams.set(u, idle)
    u.on('error', () => forget(u))
    u.on('message', (reply) => {
      forget(u)
      if (closed) return
      let out: Buffer = reply
      if (options.rewriteReply !== undefined) {
        out = options.rewriteReply(reply, msg)
        if (!out.equals(reply)) rewritten++
      }
      pair.udp.send(out, port, address)
    })
    u.send(msg, target.port, target.host)
  }
  pair.udp.on('message', (msg, rinfo) => {
    if (closed) return
    const index = requests.length
    requests.push({ bytes: Buffer.from(msg), asReq: readAsReq(msg) })
    const action = options.answer?.(msg, index) ?? 'relay'
    if (action === 'drop') return
    if (action === 'relay') relay(msg, rinfo.port, rinfo.address)
    else pair.udp.send(action, rinfo.port, rinfo.address)
  })
  let closing: Promise<void> | undefined
  return {
    host: pair.host,
    port: pair.port,
    requests,
    get rewritten() {
      return rewritten
    },
    close() {
      closing ??= (async () => {
        closed = true
        for (const u of [...upstreams.keys()]) forget(u)
        await closePair(pair)
      })()
      return closing
    },
  }
}
