#!/usr/bin/env node
// Runs the test suites with Node's own test runner (TypeScript through tsx).
// usage: node scripts/run-tests.js [unit|integration|deploy|FILE...]
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

function find(dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...find(p))
    else if (name.endsWith('.test.ts')) out.push(p)
  }
  return out.sort()
}

const args = process.argv.slice(2)
let files
if (args.length === 0)
  files = [...find('test/unit'), ...find('test/integration'), ...find('test/deploy')]
else if (args.length === 1 && ['unit', 'integration', 'deploy'].includes(args[0]))
  files = find(`test/${args[0]}`)
else files = args

const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=240000', ...files],
  { stdio: 'inherit' },
)
process.exit(r.status ?? 1)
