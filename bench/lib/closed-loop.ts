/**
 * A closed-loop saslauthd load in this process: `clients` workers, each sending the good
 * password of a random user (`<user>-Bench-Secret`) over a new connection, for `seconds`.
 */
import { saslauthdCheck } from '../../src/storm/saslauthd-client.js'
import { type LatencySummary, seededRandom, summarize } from '../../src/storm/stats.js'

export interface LoopResult {
  requests: number
  perSecond: number
  failures: number
  latency: LatencySummary
}

export const benchPassword = (user: string) => `${user}-Bench-Secret`

export async function closedLoop(
  socket: string,
  users: readonly string[],
  seconds: number,
  clients: number,
): Promise<LoopResult> {
  const rand = seededRandom(7)
  const lat: number[] = []
  let failures = 0
  const t0 = performance.now()
  const end = t0 + seconds * 1000
  const worker = async () => {
    for (let i = 0; i < 1_000_000 && performance.now() < end; i++) {
      const u = users[Math.floor(rand() * users.length)] as string
      const r = await saslauthdCheck(socket, u, benchPassword(u), { timeoutMs: 5000 })
      if (!r.ok) failures++
      lat.push(r.latencyMs)
    }
  }
  await Promise.all(Array.from({ length: clients }, worker))
  const elapsed = (performance.now() - t0) / 1000
  return {
    requests: lat.length,
    perSecond: Math.round(lat.length / elapsed),
    failures,
    latency: summarize(lat),
  }
}

/** One login per user through `socket`, so later requests are verdict-cache hits. */
export async function warm(socket: string, users: readonly string[]): Promise<void> {
  for (const u of users) {
    const r = await saslauthdCheck(socket, u, benchPassword(u))
    if (!r.ok) throw new Error(`warm-up failed for ${u}: ${r.reply}`)
  }
}
