/**
 * Best-effort cleanup if the process exits without close() (e.g. a crashed test run): test-realm
 * KDC processes are SIGKILLed and their temp dirs removed. The KDCs also get PR_SET_PDEATHSIG
 * through setpriv, which covers a killed parent.
 */
import type { ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'

export const liveChildren = new Set<ChildProcess>()
export const liveDirs = new Set<string>()
let exitHookInstalled = false

export function track(child?: ChildProcess, dir?: string): void {
  if (child !== undefined) liveChildren.add(child)
  if (dir !== undefined) liveDirs.add(dir)
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const c of liveChildren) {
      if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
        try {
          process.kill(c.pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
    }
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true })
  })
}
