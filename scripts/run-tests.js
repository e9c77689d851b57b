#!/usr/bin/env node
// Runs the test suites with Node's own test runner (TypeScript through tsx).
// usage: node scripts/run-tests.js [unit|deploy|integration|FILE...]
// (deploy: the Helm chart rendered by tools/helm-render, built by scripts/build-helm-render.sh)
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
const FOLDERS = ['unit', 'deploy', 'integration']
if (args.length === 0) files = FOLDERS.flatMap((f) => find(`test/${f}`))
else if (args.length === 1 && FOLDERS.includes(args[0])) files = find(`test/${args[0]}`)
else files = args

// --test-timeout applies to each file as a whole: the enumeration test holds 6,000 refusals
// (minutes on a loaded host), so files get 10 minutes.
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=600000', ...files],
  { stdio: 'inherit' },
)
process.exit(r.status ?? 1)
