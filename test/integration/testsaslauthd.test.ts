/**
 * Wire compatibility with a client no one here wrote: Debian's `testsaslauthd` (sasl2-bin,
 * cyrus-sasl 2.1.x), talking to the listener over a real unix socket. The authenticator is
 * a fake; this checks the bytes, not Kerberos.
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import type { Authenticator, AuthRequest, AuthResult } from '../../src/authenticator.js'
import {
  type SaslauthdDecisionEvent,
  SaslauthdListener,
  type SaslauthdListenerOptions,
} from '../../src/saslauthd/listener.js'
import { type BoundedRun, runBounded } from '../../src/testing/deployment.js'
import { TESTSASLAUTHD } from '../support/binaries.js'
import { NEEDS_TESTSASLAUTHD } from '../support/requires.js'

const dir = mkdtempSync(join(tmpdir(), 'saslgate-tsa-'))
const children = new Set<ChildProcess>()
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})
let seq = 0

/** Accepts alice/"s3cret pässword" (any realm); `hang` never answers. */
class FakeAuthenticator implements Authenticator {
  readonly requests: Array<Omit<AuthRequest, 'signal'>> = []
  authenticate(req: AuthRequest): Promise<AuthResult> {
    const { signal: _signal, ...rest } = req
    this.requests.push({ ...rest, password: Buffer.from(req.password) })
    if (req.login === 'hang') return new Promise(() => {})
    if (req.login === 'alice' && req.password.toString('utf8') === 's3cret pässword') {
      return Promise.resolve({ decision: 'ok', reason: 'ok', stage: 'kerberos' })
    }
    const reason = req.login === 'alice' ? 'bad_password' : 'unknown_principal'
    return Promise.resolve({ decision: 'invalid', reason, stage: 'kerberos' })
  }
  async close(): Promise<void> {}
}

/** Runs testsaslauthd with a hard time bound; the child is killed by PID on timeout. */
function testsaslauthd(args: string[], timeoutMs = 15_000): Promise<BoundedRun> {
  return runBounded(TESTSASLAUTHD!, args, { timeoutMs, children })
}

async function start(
  t: { after: (fn: () => unknown) => void },
  opts: Partial<SaslauthdListenerOptions> = {},
) {
  const socketPath = join(dir, `mux${++seq}`)
  const auth = new FakeAuthenticator()
  const events: SaslauthdDecisionEvent[] = []
  const listener = new SaslauthdListener({
    socketPath,
    authenticator: auth,
    onDecision: (e) => events.push(e),
    ...opts,
  })
  t.after(() => listener.close())
  await listener.listen()
  return { listener, auth, socketPath, events }
}

const PASSWORD = 's3cret pässword'

// Every test here runs testsaslauthd: skipped without it, naming why; a failure in CI.
describe('testsaslauthd (sasl2-bin) against the listener', { skip: NEEDS_TESTSASLAUTHD }, () => {
  test('good password: exit 0 and OK; the authenticator got the exact fields', async (t) => {
    const s = await start(t)
    const r = await testsaslauthd(['-u', 'alice', '-p', PASSWORD, '-s', 'imap', '-f', s.socketPath])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /^0: OK/)
    assert.equal(s.auth.requests.length, 1)
    const req = s.auth.requests[0]!
    assert.equal(req.login, 'alice')
    assert.deepStrictEqual(req.password, Buffer.from(PASSWORD, 'utf8'))
    assert.equal(req.service, 'imap')
    assert.equal(req.realm, '')
    assert.equal(req.clientAddress, undefined)
    assert.equal(s.events[0]!.fieldCount, 4)
  })

  test('wrong password and unknown user: non-zero exit, NO, identical output', async (t) => {
    const s = await start(t)
    const bad = await testsaslauthd([
      '-u',
      'alice',
      '-p',
      'wrong',
      '-s',
      'imap',
      '-f',
      s.socketPath,
    ])
    const unknown = await testsaslauthd(['-u', 'mallory', '-p', PASSWORD, '-f', s.socketPath])
    for (const r of [bad, unknown]) {
      assert.notEqual(r.code, 0)
      assert.match(r.stdout, /^0: NO/)
    }
    // testsaslauthd, like libsasl2, prints its own text for any NO: only `OK` matters.
    assert.equal(bad.stdout, unknown.stdout)
    assert.deepStrictEqual(
      s.events.map((e) => e.reason),
      ['bad_password', 'unknown_principal'],
    )
  })

  test('a realm (-r) reaches the authenticator as the realm field', async (t) => {
    const s = await start(t)
    const r = await testsaslauthd([
      '-u',
      'alice',
      '-p',
      PASSWORD,
      '-s',
      'smtp',
      '-r',
      'EXAMPLE.ORG',
      '-f',
      s.socketPath,
    ])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    const req = s.auth.requests[0]!
    assert.equal(req.realm, 'EXAMPLE.ORG')
    assert.equal(req.service, 'smtp')
  })

  test('testsaslauthd sends user@domain as is (splitting is Cyrus, not the protocol)', async (t) => {
    const s = await start(t)
    const r = await testsaslauthd(['-u', 'Alice@Example.org', '-p', 'x', '-f', s.socketPath])
    assert.notEqual(r.code, 0)
    assert.equal(s.auth.requests[0]!.login, 'Alice@Example.org')
    assert.equal(s.auth.requests[0]!.realm, '')
  })

  test('works with fields=4 and fields=auto; fields=5 answers NO at the read timeout', async (t) => {
    for (const fields of ['4', 'auto'] as const) {
      const s = await start(t, { fields })
      const r = await testsaslauthd(['-u', 'alice', '-p', PASSWORD, '-f', s.socketPath])
      assert.equal(r.code, 0, `${fields}: ${r.stdout}${r.stderr}`)
    }
    const s5 = await start(t, { fields: '5', readTimeoutMs: 300 })
    const r = await testsaslauthd(['-u', 'alice', '-p', PASSWORD, '-f', s5.socketPath])
    assert.notEqual(r.code, 0)
    assert.match(r.stdout, /^0: NO/)
    assert.equal(s5.auth.requests.length, 0)
    assert.equal(s5.events[0]!.detail, 'read_timeout')
  })

  test('a hung authenticator: testsaslauthd gets NO at the deadline instead of hanging', async (t) => {
    const s = await start(t, { answerDeadlineMs: 500 })
    const r = await testsaslauthd(['-u', 'hang', '-p', 'x', '-f', s.socketPath])
    assert.notEqual(r.code, 0)
    assert.match(r.stdout, /^0: NO/)
    assert.equal(s.events[0]!.reason, 'deadline')
    assert.equal(s.events.length, 1)
    // The listener's deadline answered (the reason above), not testsaslauthd giving up: a
    // loose ceiling (process start included), a few times the deadline and far from the
    // 15 s run bound.
    assert.notEqual(r.code, null, 'testsaslauthd exited by itself')
    assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 2000, `after ${r.elapsedMs} ms`)
  })

  test('repeated requests (-R 5): one connection each, all answered', async (t) => {
    const s = await start(t)
    const r = await testsaslauthd(['-u', 'alice', '-p', PASSWORD, '-R', '5', '-f', s.socketPath])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.equal(r.stdout.match(/OK/g)?.length, 5)
    assert.equal(s.auth.requests.length, 5)
    assert.equal(s.listener.stats().accepted, 5)
  })
})
