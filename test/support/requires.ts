/**
 * What a test needs from the machine, as a `skip` option. CI installs every real part
 * (.ci/run, scripts/setup.sh), so there a missing part fails the run instead of quietly
 * skipping what it should have tested; elsewhere the test is skipped with the reason named.
 */
import { TESTSASLAUTHD } from './binaries.js'

/** True when running in CI (`CI` set to anything but empty, 0 or false). */
export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.CI?.trim().toLowerCase()
  return v !== undefined && v !== '' && v !== '0' && v !== 'false'
}

/**
 * `missing`: why the part is unusable, or false when it is there. Returns the `skip` option:
 * false (run), or the reason (skip, outside CI). Throws in CI: the test file fails, naming
 * what is missing.
 */
export function needs(
  missing: string | false,
  env: NodeJS.ProcessEnv = process.env,
): string | false {
  if (missing === false) return false
  if (inCi(env)) throw new Error(`${missing}: CI installs every real part, so this is a failure`)
  return missing
}

/** The `skip` option of a test that runs Debian's `testsaslauthd`. */
export const NEEDS_TESTSASLAUTHD = needs(
  TESTSASLAUTHD === undefined && 'testsaslauthd is not installed (Debian package sasl2-bin)',
)
