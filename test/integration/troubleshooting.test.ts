/**
 * Troubleshooting one user with real processes: `saslgate serve` logs a hashed principal and
 * (with `log.syslog`) an auth-facility line per decision; `saslgate principal-hash` computes
 * the same label from the same key file, so an operator can grep for a user.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { saslauthdCheck } from '../../src/storm/saslauthd-client.js'
import { OTEL_OFF, realmUsers, runBounded, startSingleHost } from '../../src/testing/deployment.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { SASLGATE_BIN, type SaslgateProcess } from '../../src/testing/saslgate-process.js'

const ALICE = 'alice-Trouble-123'
const WRONG = 'wrong-Trouble-456'

let realm: Realm
let dir: string
let keyFile: string
const gates: SaslgateProcess[] = []

before(async () => {
  realm = await startRealm({ users: realmUsers({ alice: ALICE }) })
  dir = await mkdtemp(join(tmpdir(), 'saslgate-trouble-'))
  keyFile = join(dir, 'principal.key')
  writeFileSync(keyFile, randomBytes(32), { mode: 0o600 })
})

after(async () => {
  for (const g of gates) await g.stop()
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

const principalHash = (args: string[]) =>
  runBounded(process.execPath, [SASLGATE_BIN, 'principal-hash', ...args], {
    env: { PATH: process.env.PATH ?? '', ...realm.env, ...OTEL_OFF },
    timeoutMs: 20_000,
  })

describe('troubleshooting a user', () => {
  test('principal-hash gives the label the decision lines and syslog lines carry', async () => {
    const socket = join(dir, 'mux')
    const gate = await startSingleHost({
      realm,
      socket,
      args: [
        '--set',
        'telemetry.principals=hash',
        '--set',
        `telemetry.principalKeyFile=${keyFile}`,
        '--set',
        'log.syslog=true',
      ],
      keepAllOutput: true,
    })
    gates.push(gate)
    assert.match((await saslauthdCheck(socket, 'alice', ALICE)).reply, /^OK/)
    assert.match((await saslauthdCheck(socket, 'alice', WRONG)).reply, /^NO/)

    const r = await principalHash(['--set', `telemetry.principalKeyFile=${keyFile}`, 'alice'])
    assert.equal(r.code, 0, r.stderr)
    const m = /^(h:[0-9a-f]{16}) (\S+)\n$/.exec(r.stdout)
    assert.ok(m, r.stdout)
    const [, label, principal] = m
    assert.equal(principal, realm.principal('alice'))

    const out = gate.output()
    const decisions = out
      .split('\n')
      .filter((l) => l.includes('"msg":"decision"'))
      .map((l) => JSON.parse(l.replace(/^<\d>/, '')) as { principal?: string; decision: string })
    assert.deepEqual(
      decisions.map((d) => [d.decision, d.principal]),
      [
        ['ok', label],
        ['invalid', label],
      ],
    )
    // saslauthd-style auth lines: facility auth (4 << 3), info for OK, notice for a refusal.
    const pid = gate.pid
    assert.ok(
      out.includes(
        `<38>saslgate[${pid}]: auth success: [user=${label}] [mech=kerberos5] [reason=ok]\n`,
      ),
      out,
    )
    assert.match(
      out,
      new RegExp(
        `<37>saslgate\\[${pid}\\]: auth failure: \\[user=${label}\\] \\[mech=kerberos5\\] \\[reason=\\w+\\]\\n`,
      ),
    )
    assert.doesNotMatch(out, new RegExp(`${ALICE}|${WRONG}|alice@`))
  })

  test('principal-hash: a mail-domain login maps like a login; no key file is a config error', async () => {
    const a = await principalHash([
      '--set',
      `telemetry.principalKeyFile=${keyFile}`,
      'alice',
      `alice@${realm.name}`,
    ])
    assert.equal(a.code, 0, a.stderr)
    const [first, second] = a.stdout.trim().split('\n')
    assert.equal(first, second, 'alice and alice@REALM are one principal, one label')

    const other = join(dir, 'other.key')
    writeFileSync(other, randomBytes(32), { mode: 0o600 })
    const b = await principalHash(['--set', `telemetry.principalKeyFile=${other}`, 'alice'])
    assert.notEqual(b.stdout.split(' ')[0], first?.split(' ')[0], 'another key, another label')

    const none = await principalHash(['alice'])
    assert.equal(none.code, 78)
    assert.match(none.stderr, /telemetry\.principalKeyFile: not set/)
    assert.equal(none.stdout, '')
  })
})
