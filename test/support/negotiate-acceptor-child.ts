/**
 * Child process for test/integration/negotiate.test.ts: an acceptor whose GSSAPI call hangs (its
 * replay cache is a FIFO nobody writes), to show accept() answers at its deadline anyway. Prints
 * one JSON line with writeSync, then exits; the hung pool thread keeps Node from exiting, so the
 * parent kills this process once it has the line.
 *
 * Job (argv[2]): { keytab, rcacheName, tokens: [a, b], timeoutMs, allow }
 */
import { writeSync } from 'node:fs'
import { NegotiateAcceptor } from '../../src/service/negotiate.js'

interface Job {
  keytab: string
  rcacheName: string
  tokens: [string, string]
  timeoutMs: number
  allow: string[]
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as Job
  process.env.KRB5RCACHENAME = job.rcacheName
  const acceptor = new NegotiateAcceptor({
    allow: job.allow,
    keytab: job.keytab,
    timeoutMs: job.timeoutMs,
    maxInFlight: 1,
  })
  const t0 = performance.now()
  const first = await acceptor.accept(job.tokens[0])
  const firstMs = performance.now() - t0
  const inFlightAfter = acceptor.inFlight
  const second = await acceptor.accept(job.tokens[1])
  writeSync(1, `${JSON.stringify({ first, firstMs, second, inFlightAfter })}\n`)
  await acceptor.close()
  process.exit(0)
}

void main()
