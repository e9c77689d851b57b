/**
 * Tests that run saslgate as another user (nobody, a unit's User=) need that user to reach this
 * checkout, as it reaches an installed /opt/saslgate. A checkout made in `mktemp -d` is 0700:
 * the child then dies with "Cannot find module .../bin/saslgate.js", which says nothing about
 * what the test is about. `letOtherUsersIn()` makes the checkout's own directory traversable
 * (o+x, nothing readable is added) and throws, naming the directory, when a directory above
 * it keeps others out (that one is not the project's to change).
 */
import { chmodSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export const CHECKOUT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '')

export function letOtherUsersIn(root: string = CHECKOUT): void {
  const mode = statSync(root).mode
  if ((mode & 0o001) === 0) chmodSync(root, (mode & 0o7777) | 0o001)
  for (let dir = dirname(root); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) {
      throw new Error(
        `other users cannot traverse ${dir} (above the checkout ${root}): run the tests from a checkout they can reach`,
      )
    }
    if (dir === '/') break
  }
}
