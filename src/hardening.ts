/**
 * Core dumps off for a process that holds passwords: the addon sets RLIMIT_CORE to 0 (soft
 * and hard) and PR_SET_DUMPABLE to 0 when it is loaded (native/src/hardening.cc); this loads
 * it at the start of `serve` and `shim`, before any secret is read, and logs what holds.
 * The systemd units add LimitCORE=0 for whatever runs before Node loads the addon.
 */
import type { Logger } from 'pino'
import { type CoreDumpState, krb5 } from './kerberos/native.js'

/** True when no core file can be written and no same-uid process may ptrace this one. */
export function coreDumpsOff(s: CoreDumpState): boolean {
  return s.dumpable === 0 && s.softLimit === 0 && s.hardLimit === 0
}

/** Loads the addon (which turns core dumps off) and logs the result; never throws. */
export function disableCoreDumps(logger: Pick<Logger, 'info' | 'warn'>): CoreDumpState | undefined {
  let state: CoreDumpState
  try {
    state = krb5().coreDumps
  } catch (err) {
    logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      'core dumps: the addon could not be loaded, so this process may dump core (run it with LimitCORE=0 or ulimit -c 0)',
    )
    return undefined
  }
  if (coreDumpsOff(state))
    logger.info({ dumpable: 0, coreLimit: 0 }, 'core dumps off (RLIMIT_CORE 0, PR_SET_DUMPABLE 0)')
  else logger.warn({ ...state }, 'core dumps could not be turned off')
  return state
}
