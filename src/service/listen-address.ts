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
