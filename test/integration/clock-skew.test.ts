/**
 * Clock skew between saslgate and the KDC, measured: `saslgate verify` under libfaketime
 * (Debian package faketime) against a real MIT KDC on the real clock. What decides is libkrb5's
 * `clockskew` (300 s) applied by krb5_rd_req on saslgate's own clock (not the KDC's: see
 * SECURITY.md) to a ticket that lives `ticketLifetimeS` (300 s): a right password verifies
 * while saslgate's clock is at most 5 min behind and at most ~10 min ahead; beyond, every
 * right password fails (verify exit 78 naming the clock), while a wrong one stays invalid
 * (the KDC decides it on its own clock; MIT's client retries a pre-authentication refused
 * for skew with the KDC's time). The offsets are far from the edges: no timing decides.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { OTEL_OFF } from '../../src/testing/deployment.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { SASLGATE_BIN } from '../../src/testing/saslgate-process.js'
import { needs } from '../support/requires.js'

const FAKETIME = '/usr/bin/faketime'
const skip = needs(!existsSync(FAKETIME) && 'faketime is not installed (Debian package faketime)')
const RIGHT = 'alice-Skew-1234'
const WRONG = 'wrong-Skew-5678'

let realm: Realm
before(async () => {
  if (skip === false) realm = await startRealm({ users: [{ name: 'alice', password: RIGHT }] })
})
after(async () => {
  await realm?.close()
})

function verifyAt(offset: string, password: string) {
  const r = spawnSync(
    FAKETIME,
    [
      '-f',
      offset,
      process.execPath,
      SASLGATE_BIN,
      'verify',
      '--principal',
      'alice',
      '--set',
      `kerberos.verifyPrincipal=${realm.servicePrincipal}`,
    ],
    {
      env: { PATH: process.env.PATH ?? '', ...realm.env, ...OTEL_OFF },
      input: `${password}\n`,
      encoding: 'utf8',
      timeout: 30_000,
    },
  )
  return { code: r.status, out: r.stdout, err: r.stderr }
}

describe('clock skew between saslgate and the KDC (faketime)', { skip }, () => {
  for (const offset of ['+0', '-4m', '+4m', '+8m']) {
    test(`saslgate's clock ${offset}: right password ok, wrong invalid`, () => {
      const ok = verifyAt(offset, RIGHT)
      assert.equal(ok.code, 0, ok.out + ok.err)
      assert.match(ok.out, /^ok \(ok\)/)
      const bad = verifyAt(offset, WRONG)
      assert.equal(bad.code, 1, bad.out + bad.err)
    })
  }
  for (const [offset, words] of [
    ['-10m', 'not yet valid'],
    ['-3h', 'not yet valid'],
    ['+3h', 'expired'],
    ['+30d', 'expired'],
  ] as const) {
    test(`saslgate's clock ${offset}: every right password fails, named as a clock problem (exit 78); wrong stays invalid`, () => {
      const ok = verifyAt(offset, RIGHT)
      assert.equal(ok.code, 78, ok.out + ok.err)
      assert.match(ok.err, new RegExp(`is ${words} on this host's clock .*fix time sync`))
      const bad = verifyAt(offset, WRONG)
      assert.equal(bad.code, 1, bad.out + bad.err)
    })
  }
})
