/**
 * Child process for test/integration/negotiate.test.ts: GSSAPI state (KRB5_* variables, the
 * MEMORY ccache) is process-wide, so the initiator runs here with its own. Reads a JSON job from
 * argv[2], makes `count` tokens with NegotiateInitiator, prints one JSON line and exits. After a
 * timeout the GSSAPI call lingers on a pool thread and Node cannot exit until it returns, so the
 * parent kills this process once it has the line.
 *
 * Job: { service, count, timeoutMs?, principal?, mech?, clientKeytab?, ccache?, krb5Config? }
 * Output: { tokens: string[], ms: number[] } or { error: { code, message } }
 */
import { writeSync } from 'node:fs'
import { isSaslgateError } from '../../src/errors.js'
import { NegotiateInitiator } from '../../src/shim/negotiate-initiator.js'

interface Job {
  service: string
  count: number
  timeoutMs?: number
  principal?: string
  mech?: 'spnego' | 'krb5'
  clientKeytab?: string
  ccache?: string
  krb5Config?: string
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as Job
  const { service, count, ...rest } = job
  const initiator = new NegotiateInitiator({ service, ...rest })
  const tokens: string[] = []
  const ms: number[] = []
  try {
    for (let i = 0; i < Math.min(count, 1000); i++) {
      const t0 = performance.now()
      tokens.push(await initiator.token())
      ms.push(performance.now() - t0)
    }
    writeSync(1, `${JSON.stringify({ tokens, ms })}\n`)
  } catch (err) {
    const code = isSaslgateError(err) ? err.code : 'unknown'
    const message = err instanceof Error ? err.message : String(err)
    writeSync(1, `${JSON.stringify({ error: { code, message }, tokens, ms })}\n`)
  } finally {
    await initiator.close()
  }
  process.exit(0)
}

void main()
