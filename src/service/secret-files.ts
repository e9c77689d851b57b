/**
 * Secrets come from files, never from flags or environment values: bearer tokens and PEM
 * material. Every failure is a configuration error naming the option.
 */
import { readFileSync } from 'node:fs'
import { SaslgateError } from '../errors.js'

/** Shortest bearer token accepted: 32 characters (e.g. `openssl rand -hex 16`). */
export const MIN_TOKEN_CHARS = 32

function configError(option: string, message: string): SaslgateError {
  return new SaslgateError('SASLGATE_ERR_CONFIG', `config option ${option}: ${message}`)
}

/** Reads a whole file that the option names; the message names the option, never the content. */
export function readSecretFile(option: string, path: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw configError(option, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`)
  }
}

/**
 * The tokens in a token file: one per line; blank lines and `#` comments are skipped so a
 * file can hold the old and the new token during a rotation.
 */
export function readTokenFile(option: string, path: string): string[] {
  const text = readSecretFile(option, path).toString('utf8')
  const tokens: string[] = []
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    if (line.length < MIN_TOKEN_CHARS)
      throw configError(
        option,
        `the token on line ${index + 1} of ${path} is shorter than ${MIN_TOKEN_CHARS} characters`,
      )
    if (!/^[\x21-\x7e]+$/.test(line))
      throw configError(
        option,
        `the token on line ${index + 1} of ${path} has characters an HTTP header cannot carry`,
      )
    tokens.push(line)
  })
  if (tokens.length === 0) throw configError(option, `${path} holds no token`)
  return tokens
}

/** Reads a PEM file and checks it looks like PEM (a clear error beats a TLS stack trace). */
export function readPemFile(option: string, path: string): Buffer {
  const pem = readSecretFile(option, path)
  if (!pem.includes('-----BEGIN ')) throw configError(option, `${path} is not a PEM file`)
  return pem
}
