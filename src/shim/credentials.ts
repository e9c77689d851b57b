/**
 * What the shim presents to the service besides its client certificate: a static bearer
 * token from `shim.tokenFile`, or nothing (mTLS only). Negotiate session tokens live in
 * session-credentials.ts.
 */
import { readTokenFile } from '../service/secret-files.js'
import type { CallerCredentials } from './remote-authenticator.js'

export function tokenCredentials(option: string, path: string): CallerCredentials {
  const [token] = readTokenFile(option, path)
  const header = `Bearer ${token}`
  return { authorization: async () => header }
}

export const noCredentials: CallerCredentials = { authorization: async () => undefined }
