/** Debian programs the integration tests drive, found where Debian puts them. */
import { accessSync, constants } from 'node:fs'

function executable(...paths: string[]): string | undefined {
  return paths.find((p) => {
    try {
      accessSync(p, constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/** `testsaslauthd` from sasl2-bin, or undefined when it is not installed. */
export const TESTSASLAUTHD = executable('/usr/sbin/testsaslauthd', '/usr/bin/testsaslauthd')
