#!/usr/bin/env node
// Entry point: loads the compiled CLI, or the TypeScript sources through tsx in a checkout.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const dist = new URL('../dist/cli.js', import.meta.url)
if (existsSync(fileURLToPath(dist))) {
  await import(dist.href)
} else {
  await import('tsx/esm')
  await import(new URL('../src/cli.ts', import.meta.url).href)
}
