/**
 * What the Negotiate acceptor (service) and initiator (shim) share: the `kerberos` npm
 * addon (GSSAPI), loaded on first use, and a bounded wait for calls that cannot be cancelled.
 */
import { createRequire } from 'node:module'
import { SaslgateError } from '../errors.js'

export type KerberosModule = typeof import('kerberos')

let kerberosModule: KerberosModule | undefined

/** The `kerberos` addon, loaded on first use (importing this file loads no native code). */
export function gss(): KerberosModule {
  kerberosModule ??= createRequire(import.meta.url)('kerberos') as KerberosModule
  return kerberosModule
}

export const TIMED_OUT = Symbol('timed out')

/** Waits for `p` at most `ms`; the work behind `p` goes on (it cannot be cancelled). */
export function within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

export function positiveInt(value: number, option: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', `${option}: a positive integer`)
  }
  return value
}
