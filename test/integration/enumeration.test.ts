/**
 * No user enumeration, by reply or by timing, through the saslauthd socket of single-host
 * mode against a real MIT KDC.
 *
 * Over ENUM_TRIES tries each (1,000 unless the variable lowers it for a quick local run),
 * "unknown user" and "real user, wrong password" must give byte-identical replies, and
 * latencies that pass the rule in test/support/enumeration-rule.ts: neither Kolmogorov-Smirnov
 * nor Mann-Whitney tells them apart at p < 1e-4 (six p-values per run: Bonferroni), and the
 * median paired difference is shown within +-1 ms (so a noisy machine cannot pass by hiding
 * a shift in variance). Requests of the two kinds come in pairs, back to back in a random
 * order, so drift hits both alike; each is a new connection, like libsasl2.
 *
 * Timing is equal by construction (src/pipeline/refusal-hold.ts): both kinds of KDC refusal
 * are written when one timer, armed when the check starts, fires. The false-failure rate of
 * this rule, replayed on resamples of recorded runs quiet and loaded, is in
 * bench/enumeration-false-failure.ts (ENUM_RECORD=DIR makes this test record its samples).
 *
 *   - warm verdict cache: the same wrong password again and again (answered from the
 *     negative cache after the first try);
 *   - cold verdict cache: what an enumerating attacker does, one guess per name: every try
 *     a different principal (1,000 real users with random keys vs 1,000 unknown names of the
 *     same length) and a different password, so each one goes to the KDC;
 *   - one name, many passwords: distinct passwords against one real and one unknown name
 *     (the per-principal guard's budget and backoff take over after a few).
 */
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, type TestContext, test } from 'node:test'
import { decodeReply, encodeRequest } from '../../src/saslauthd/codec.js'
import { seededRandom } from '../../src/storm/stats.js'
import { OTEL_OFF, startSingleHost } from '../../src/testing/deployment.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import type { SaslgateProcess } from '../../src/testing/saslgate-process.js'
import { decide } from '../support/enumeration-rule.js'

const TRIES = Number(process.env.ENUM_TRIES ?? 1000)
const WARMUP = 100
const TEST_TIMEOUT_MS = 15 * 60_000
/** A directory to record each comparison's samples in (JSON), for the false-failure bench. */
const RECORD = process.env.ENUM_RECORD

let realm: Realm
let dir: string
let gate: SaslgateProcess
let socket: string

/** Real users `bulk0001`... (random keys, pre-authentication required), 8 characters. */
const realName = (i: number) => `bulk${String(i).padStart(4, '0')}`
/** Unknown names of the same length. */
const unknownName = (i: number) => `nosu${String(i).padStart(4, '0')}`

before(async () => {
  realm = await startRealm({
    users: [{ name: 'alice', password: 'Enum-alice-pw-1' }],
    randomKeyUsers: TRIES + WARMUP,
  })
  dir = await mkdtemp(join(tmpdir(), 'saslgate-enum-'))
  socket = join(dir, 'mux')
  gate = await startSingleHost({ realm, socket, env: OTEL_OFF })
})

after(async () => {
  await gate?.stop(5000)
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

/** One request on a new connection; the reply's bytes and the time to the whole reply. */
function ask(login: string, password: string): Promise<{ reply: Buffer; ms: number }> {
  const frame = encodeRequest({ login, password, service: 'imap', realm: '' })
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const s = connect(socket)
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`no reply for ${login} within 5 s`))
    }, 5000)
    s.on('connect', () => s.write(frame))
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      const r = decodeReply(buf)
      if (r.status === 'reply') {
        const ms = performance.now() - t0
        clearTimeout(timer)
        s.destroy()
        resolve({ reply: buf.subarray(0, r.bytes), ms })
      }
    })
    s.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

interface Pair {
  unknown: { login: string; password: string }
  wrong: { login: string; password: string }
}

interface Comparison {
  unknownMs: number[]
  wrongMs: number[]
  replies: Set<string>
}

/** Runs the pairs, alternating the order of the two kinds at random. */
async function compare(pairs: Pair[], seed: number): Promise<Comparison> {
  const rand = seededRandom(seed)
  const out: Comparison = { unknownMs: [], wrongMs: [], replies: new Set() }
  for (const p of pairs) {
    const order = rand() < 0.5 ? (['unknown', 'wrong'] as const) : (['wrong', 'unknown'] as const)
    for (const kind of order) {
      const r = await ask(p[kind].login, p[kind].password)
      out.replies.add(r.reply.toString('hex'))
      ;(kind === 'unknown' ? out.unknownMs : out.wrongMs).push(r.ms)
    }
  }
  return out
}

async function verdict(t: TestContext, label: string, c: Comparison): Promise<void> {
  const outcome = decide(c.unknownMs, c.wrongMs)
  const line = `${label}: ${outcome.summary}`
  t.diagnostic(line)
  if (RECORD !== undefined) {
    await mkdir(RECORD, { recursive: true })
    const file = join(RECORD, `${label}-${Date.now()}-${process.pid}.json`)
    await writeFile(file, JSON.stringify({ label, unknownMs: c.unknownMs, wrongMs: c.wrongMs }))
  }
  assert.equal(c.replies.size, 1, `${label}: replies differ: ${[...c.replies].join(' vs ')}`)
  const [only] = [...c.replies]
  assert.equal(
    Buffer.from(only as string, 'hex')
      .subarray(2)
      .toString(),
    'NO authentication failed',
  )
  assert.ok(outcome.pass, `timing tells them apart (${outcome.failures.join('; ')}): ${line}`)
}

describe(`no enumeration: unknown user vs wrong password, ${TRIES} tries each`, () => {
  before(async () => {
    // JIT and connection paths warm, on names and passwords no measured try uses.
    for (let i = 0; i < 50; i++) {
      await ask(unknownName(9000 + i), `warm-up-${i}`)
      await ask('alice', `warm-up-${i}`)
    }
  })

  // Each refusal waits for its hold (about 1.25x the slowest recent wrong password): on a
  // loaded host 1,000 pairs take minutes, more than the runner's default test timeout.
  test('warm verdict cache (the same wrong password again and again)', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const pair: Pair = {
      unknown: { login: unknownName(9999), password: 'Repeated-guess-1' },
      wrong: { login: realName(1), password: 'Repeated-guess-1' },
    }
    for (let i = 0; i < WARMUP; i++) await compare([pair], i) // first tries hit the KDC
    await verdict(
      t,
      'warm',
      await compare(
        Array.from({ length: TRIES }, () => pair),
        1,
      ),
    )
  })

  test('cold verdict cache (one guess per name, every password different)', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const pairs = (from: number, n: number, tag: string): Pair[] =>
      Array.from({ length: n }, (_, i) => ({
        unknown: { login: unknownName(from + i), password: `Cold-${tag}-${from + i}-x` },
        wrong: { login: realName(from + i), password: `Cold-${tag}-${from + i}-y` },
      }))
    await compare(pairs(TRIES + 1, WARMUP - 1, 'w'), 2) // warm-up names, not measured
    await verdict(t, 'cold', await compare(pairs(2, TRIES - 1, 'm'), 3))
  })

  test('one name, many passwords (the guard takes over after a few)', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const pairs = Array.from({ length: TRIES }, (_, i) => ({
      unknown: { login: unknownName(9998), password: `Guess-${i}-x` },
      wrong: { login: 'alice', password: `Guess-${i}-y` },
    }))
    await verdict(t, 'guarded', await compare(pairs, 4))
  })
})
