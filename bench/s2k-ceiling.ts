/**
 * What one spoofed PREAUTH_REQUIRED can cost: libkrb5's own string-to-key (the addon's
 * `usePassword`, what runs for enctypes node:crypto does not derive or with
 * kerberos.deriveKeys off) and node:crypto's, at the enctype's default count, at the
 * per-enctype ceiling (4x) and at the old global ceiling (100,000). Median of `--runs`.
 *
 * usage: node --import tsx bench/s2k-ceiling.ts [--runs 15]
 */
import { parseArgs } from 'node:util'
import { S2K_DEFAULT_ITERATIONS, s2kCeiling } from '../src/kerberos/enctypes.js'
import { krb5 } from '../src/kerberos/native.js'
import { deriveKey } from '../src/kerberos/string-to-key.js'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } })
const runs = Number(values.runs)
const OLD_GLOBAL = 100_000

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function libkrb5Ms(etype: number, iterations: number): Promise<number> {
  const { Session } = krb5()
  const params = Buffer.alloc(4)
  params.writeUInt32BE(iterations)
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const s = new Session({
      client: 'alice@EXAMPLE.COM',
      server: 'host/bench@EXAMPLE.COM',
      asService: true,
      enctypes: [etype],
    })
    const t0 = performance.now()
    const r = await s.usePassword(etype, Buffer.from(`password-${i}`), null, params)
    times.push(performance.now() - t0)
    s.close()
    if (r.code !== 0) throw new Error(`usePassword: ${r.message}`)
  }
  return median(times)
}

async function nodeMs(etype: number, iterations: number): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    const key = await deriveKey({
      etype,
      password: Buffer.from(`password-${i}`),
      salt: Buffer.from('EXAMPLE.COMalice'),
      iterations,
    })
    times.push(performance.now() - t0)
    key.fill(0)
  }
  return median(times)
}

async function main(): Promise<void> {
  krb5().configure('')
  process.stdout.write('etype iterations  libkrb5 ms  node:crypto ms\n')
  for (const etype of [18, 20]) {
    const def = S2K_DEFAULT_ITERATIONS.get(etype)!
    for (const n of [def, s2kCeiling(etype)!, OLD_GLOBAL]) {
      const a = await libkrb5Ms(etype, n)
      const b = await nodeMs(etype, n)
      process.stdout.write(
        `${String(etype).padStart(5)} ${String(n).padStart(10)} ${a.toFixed(1).padStart(11)} ${b.toFixed(1).padStart(15)}\n`,
      )
    }
  }
}

await main()
