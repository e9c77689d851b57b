/**
 * A tiny DNS server on 127.0.0.1 (UDP) for resolver tests: answers A queries from a table,
 * NXDOMAIN for other names, after a settable delay, or not at all (`blackhole`).
 *
 * Plain async code, no test-framework imports.
 */
import { createSocket } from 'node:dgram'
import net from 'node:net'
import { SaslgateError } from '../errors.js'

export interface FakeDns {
  /** `127.0.0.1:port`, for `Resolver.setServers` / the transport's `dns.servers`. */
  readonly server: string
  /** name (lowercase) -> IPv4 address. */
  readonly records: Map<string, string>
  /** Queries received, by name. */
  readonly queries: string[]
  delayMs: number
  blackhole: boolean
  close(): Promise<void>
}

/** The QNAME of a DNS query and where the question ends, or undefined. */
function question(msg: Buffer): { name: string; end: number } | undefined {
  let at = 12
  const labels: string[] = []
  while (at < msg.length) {
    const len = msg[at] ?? 0
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: at + 5 }
    if (len > 63 || at + 1 + len > msg.length) return undefined
    labels.push(msg.toString('latin1', at + 1, at + 1 + len))
    at += 1 + len
  }
  return undefined
}

function answer(query: Buffer, q: { end: number }, qtype: number, ip: string | undefined): Buffer {
  const head = Buffer.from(query.subarray(0, 12))
  const rcode = ip === undefined ? 3 : 0 // NXDOMAIN when the name is unknown
  head.writeUInt16BE(0x8180 | rcode, 2) // response, recursion desired + available
  head.writeUInt16BE(1, 4)
  head.writeUInt16BE(ip !== undefined && qtype === 1 ? 1 : 0, 6)
  head.writeUInt32BE(0, 8)
  const parts = [head, query.subarray(12, q.end)]
  if (ip !== undefined && qtype === 1) {
    const rr = Buffer.alloc(16)
    rr.writeUInt16BE(0xc00c, 0) // pointer to the question's name
    rr.writeUInt16BE(1, 2) // A
    rr.writeUInt16BE(1, 4) // IN
    rr.writeUInt32BE(60, 6) // TTL
    rr.writeUInt16BE(4, 10)
    for (const [i, octet] of ip.split('.').entries()) rr[12 + i] = Number(octet)
    parts.push(rr)
  }
  return Buffer.concat(parts)
}

/** Starts the fake on a free UDP port of 127.0.0.1. */
export async function startFakeDns(records: Record<string, string> = {}): Promise<FakeDns> {
  for (const ip of Object.values(records)) {
    if (net.isIP(ip) !== 4) {
      throw new SaslgateError('SASLGATE_ERR_TEST_REALM', `fake DNS: ${ip} is not IPv4`)
    }
  }
  const socket = createSocket('udp4')
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject)
      resolve()
    })
  })
  const timers = new Set<NodeJS.Timeout>()
  let closed = false
  const fake: FakeDns = {
    server: `127.0.0.1:${socket.address().port}`,
    records: new Map(Object.entries(records).map(([k, v]) => [k.toLowerCase(), v])),
    queries: [],
    delayMs: 0,
    blackhole: false,
    close: async () => {
      if (closed) return
      closed = true
      for (const t of timers) clearTimeout(t)
      await new Promise<void>((r) => socket.close(() => r()))
    },
  }
  socket.on('message', (msg, rinfo) => {
    const q = question(msg)
    if (q === undefined || q.end > msg.length) return
    fake.queries.push(q.name)
    if (fake.blackhole) return
    const reply = answer(msg, q, msg.readUInt16BE(q.end - 4), fake.records.get(q.name))
    const t = setTimeout(() => {
      timers.delete(t)
      if (!closed) socket.send(reply, rinfo.port, rinfo.address)
    }, fake.delayMs)
    timers.add(t)
  })
  return fake
}
