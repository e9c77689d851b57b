/** CPU time of processes from /proc/PID/stat (utime + stime), for CPU-per-check figures. */
import { readFileSync } from 'node:fs'

/** Clock ticks per second of /proc/PID/stat times (USER_HZ; 100 on Linux x86/arm). */
export const CLOCK_TICKS_PER_S = 100

/** utime + stime of `pid` in ms, or 0 when the process is gone. */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // after "pid (comm) ": state is fields[0], utime is field 14 overall -> index 11
    const ticks = Number(fields[11]) + Number(fields[12])
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS_PER_S : 0
  } catch {
    return 0
  }
}

/** Sum of processCpuMs over `pids`. */
export function totalCpuMs(pids: readonly number[]): number {
  let sum = 0
  for (const pid of pids) sum += processCpuMs(pid)
  return sum
}
