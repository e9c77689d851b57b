/**
 * The README's options table is what `saslgate options` prints from the config schema (the one
 * place each default is stated): a new option, a changed default or doc line shows here until
 * the table is regenerated (`node bin/saslgate.js options`, pasted over the table).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const HEADER = '| option | environment | default | meaning |'

test("the README's options table is the schema's, as `saslgate options` prints it", () => {
  const generated = execFileSync(process.execPath, ['bin/saslgate.js', 'options'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  })
    .trim()
    .split('\n')
  const readme = readFileSync(`${ROOT}README.md`, 'utf8').split('\n')
  const start = readme.indexOf(HEADER)
  assert.ok(start >= 0, 'the README has an options table')
  let end = start
  while (end < readme.length && readme[end]?.startsWith('|')) end++
  assert.ok(generated.length > 20, 'saslgate options printed a table')
  assert.deepEqual(readme.slice(start, end), generated)
})
