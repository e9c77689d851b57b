import { isIP } from 'node:net'
import { SaslgateError } from '../errors.js'

/** `HOST:PORT`, `[v6]:PORT`; the error names the option. */
export function parseListen(option: string, value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value.trim())
  const port = Number(m?.[3])
  if (m === null || !Number.isInteger(port) || port > 65_535)
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `config option ${option}: expected HOST:PORT (e.g. 0.0.0.0:8443 or [::1]:8443), got "${value}"`,
    )
  return { host: (m[1] ?? m[2]) as string, port }
}

/**
 * True for a host that can only be reached from this machine: 127.0.0.0/8, ::1 (also as
 * ::ffff:127.x) and the name `localhost`. Decided on the text alone, never by resolving a name
 * (a name that resolves to a loopback address today may not tomorrow): anything else counts
 * as reachable from the network.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h === 'localhost.') return true
  if (isIP(h) === 4) return h.startsWith('127.')
  if (isIP(h) === 6) {
    if (h === '::1' || /^(0{0,4}:){7}0{0,3}1$/.test(h)) return true
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)
    return mapped?.[1]?.startsWith('127.') === true
  }
  return false
}
