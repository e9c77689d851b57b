/**
 * String-to-key cost in node:crypto: aes256-cts-hmac-sha1-96 (etype 18) at 4096
 * iterations (MIT's default), sync and async, and derivations per second with 1..4
 * derivations in flight (libuv's thread pool has UV_THREADPOOL_SIZE threads, default 4).
 *
 * usage: node --import tsx bench/string-to-key.ts [--etype 18] [--iterations 4096] [--seconds 2]
 */
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { deriveKey, deriveKeySync } from '../src/kerberos/string-to-key.js'

const { values } = parseArgs({
  options: {
    etype: { type: 'string', default: '18' },
    iterations: { type: 'string', default: '4096' },
    seconds: { type: 'string', default: '2' },
  },
})
const etype = Number(values.etype)
const iterations = Number(values.iterations)
const seconds = Number(values.seconds)
const MAX_OPS = 1_000_000

const input = (i: number) => ({
  etype,
  password: Buffer.from(`password-${i}`),
  salt: Buffer.from('EXAMPLE.COMalice'),
  iterations,
})

function out(line: string): void {
  process.stdout.write(`${line}\n`)
}

/** Runs `op` back to back for `seconds` (at most MAX_OPS times); ms per op. */
function timeSync(op: (i: number) => void): { ms: number; n: number } {
  const start = performance.now()
  const until = start + seconds * 1000
  let n = 0
  while (performance.now() < until && n < MAX_OPS) op(n++)
  return { ms: (performance.now() - start) / n, n }
}

/** `concurrency` loops each awaiting one derivation after another, for `seconds`. */
async function throughput(concurrency: number): Promise<{ perSecond: number; n: number }> {
  const start = performance.now()
  const until = start + seconds * 1000
  let n = 0
  const loop = async () => {
    while (performance.now() < until && n < MAX_OPS) await deriveKey(input(n++))
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  return { perSecond: (n * 1000) / (performance.now() - start), n }
}

async function main(): Promise<void> {
  out(
    `node ${process.version}, ${availableParallelism()} CPUs, UV_THREADPOOL_SIZE=${
      process.env.UV_THREADPOOL_SIZE ?? '4 (default)'
    }, etype ${etype}, ${iterations} iterations, ${seconds} s per figure`,
  )
  // Warm up OpenSSL and the thread pool.
  for (let i = 0; i < 20; i++) deriveKeySync(input(i))
  await Promise.all(Array.from({ length: 8 }, (_, i) => deriveKey(input(i))))

  const sync = timeSync((i) => deriveKeySync(input(i)))
  out(`sync  (deriveKeySync, blocks the loop): ${sync.ms.toFixed(3)} ms/derivation (n=${sync.n})`)

  const one = await throughput(1)
  out(
    `async (deriveKey, one at a time):        ${(1000 / one.perSecond).toFixed(3)} ms/derivation (n=${one.n})`,
  )
  for (const c of [1, 2, 3, 4]) {
    const r = await throughput(c)
    out(`async, ${c} in flight: ${r.perSecond.toFixed(0)} derivations/s (n=${r.n})`)
  }
}

await main()
