/**
 * `/readyz` means "can serve" (src/service/readiness.ts), shown with real processes: a real
 * MIT KDC that is running or stopped, `saslgate serve --saslauthd-socket` with its admin
 * listener, real logins through the socket. The cause is asserted (the reason text, the log
 * line, which KDC state), never a duration.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { saslauthdCheck } from '../../src/storm/saslauthd-client.js'
import { OTEL_OFF, realmUsers, startSingleHost } from '../../src/testing/deployment.js'
import { freePort } from '../../src/testing/ports.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { SASLGATE_BIN, type SaslgateProcess } from '../../src/testing/saslgate-process.js'

const ALICE = 'alice-Ready-1234'

let realm: Realm
let dir: string
let seq = 0
const gates: SaslgateProcess[] = []

before(async () => {
  realm = await startRealm({ users: realmUsers({ alice: ALICE }) })
  dir = await mkdtemp(join(tmpdir(), 'saslgate-readiness-'))
})

after(async () => {
  for (const g of gates) await g.stop()
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

async function gate(
  args: string[] = [],
): Promise<{ proc: SaslgateProcess; admin: number; socket: string }> {
  const admin = await freePort()
  const socket = join(dir, `mux${++seq}`)
  const proc = await startSingleHost({
    realm,
    socket,
    args: [
      '--set',
      `service.adminListen=127.0.0.1:${admin}`,
      '--set',
      'kerberos.udpAttemptTimeoutMs=200',
      '--set',
      'pipeline.deadlineMs=1500',
      ...args,
    ],
  })
  gates.push(proc)
  return { proc, admin, socket }
}

async function readyz(
  port: number,
): Promise<{ status: number; body: { status: string; reason?: string } }> {
  const r = await fetch(`http://127.0.0.1:${port}/readyz`)
  return { status: r.status, body: (await r.json()) as { status: string; reason?: string } }
}

/** Polls /readyz (each call may start a probe) until `want` or 15 s. */
async function readyzUntil(port: number, want: number) {
  const until = Date.now() + 15_000
  for (;;) {
    const r = await readyz(port)
    if (r.status === want || Date.now() > until) return r
    await sleep(200)
  }
}

describe('/readyz means "can serve"', () => {
  test('a KDC that answers: ready at once, with no login yet (the start probe heard it)', async () => {
    const g = await gate()
    const r = await readyz(g.admin)
    assert.equal(r.status, 200)
    assert.deepEqual(r.body, { status: 'ready' })
    assert.match(g.proc.output(), /a KDC of the default realm answers: ready/)
  })

  test('every KDC stopped and nothing cached: not ready, named; ready again once the KDC is back', async () => {
    await realm.stopKdc(0)
    try {
      const g = await gate(['--set', 'service.readyKdcWindowMs=1000'])
      const r = await readyz(g.admin)
      assert.equal(r.status, 503)
      assert.equal(r.body.status, 'not ready')
      // Which words depends on whether the start probe's failures opened the breaker yet.
      assert.match(
        r.body.reason ?? '',
        new RegExp(
          `no KDC of ${realm.name} has answered yet|every KDC breaker of ${realm.name} is open`,
        ),
      )
      assert.match(g.proc.output(), /no KDC of the default realm answers: not ready/)
      // Honest: the process that says "not ready" does refuse a right password.
      const login = await saslauthdCheck(g.socket, 'alice', ALICE)
      assert.match(login.reply, /^NO/)
      await realm.startKdc(0)
      // No login in between: only the probe that /readyz starts can have heard the KDC.
      const back = await readyzUntil(g.admin, 200)
      assert.equal(back.status, 200, JSON.stringify(back.body))
    } finally {
      await realm.startKdc(0)
    }
  })

  test('offline mode: ready through an outage only with a known-good user cached', async () => {
    const g = await gate([
      '--set',
      'service.readyKdcWindowMs=1000',
      '--set',
      'pipeline.offlineMaxStalenessMs=3600000',
    ])
    const ok = await saslauthdCheck(g.socket, 'alice', ALICE)
    assert.match(ok.reply, /^OK/)
    await realm.stopKdc(0)
    try {
      // Past the window the KDC's last answer no longer counts; the cached OK does.
      await sleep(1200)
      const r = await readyz(g.admin)
      assert.equal(r.status, 200, JSON.stringify(r.body))
      // A fresh process in the same outage has nobody to let in: not ready.
      const cold = await gate([
        '--set',
        'service.readyKdcWindowMs=1000',
        '--set',
        'pipeline.offlineMaxStalenessMs=3600000',
      ])
      const c = await readyz(cold.admin)
      assert.equal(c.status, 503, JSON.stringify(c.body))
    } finally {
      await realm.startKdc(0)
    }
  })
})

describe('a verify principal the KDC does not know', () => {
  // In the keytab (the start-time check passes) but deleted from the KDC afterwards.
  const GONE = 'host/gone.saslgate.test'
  let keytab: string
  let goneArgs: string[]
  before(async () => {
    keytab = join(dir, 'gone.keytab')
    await realm.kadmin(`addprinc -randkey ${GONE}`)
    await realm.kadmin(`ktadd -k ${keytab} ${GONE}`)
    await realm.kadmin(`delprinc -force ${GONE}`)
    goneArgs = ['--set', `kerberos.verifyPrincipal=${GONE}`, '--set', `kerberos.keytab=${keytab}`]
  })

  test('serve: not ready, the principal named in /readyz and in an error line', async () => {
    const g = await gate(goneArgs)
    const r = await readyz(g.admin)
    assert.equal(r.status, 503)
    assert.equal(
      r.body.reason,
      `the KDC does not know ${GONE}@${realm.name} (every check would fail)`,
    )
    assert.match(g.proc.output(), new RegExp(`the KDC does not know the verify principal ${GONE}@`))
  })

  test('verify: names the principal and what to do, exit 78 (configuration), not 2', async () => {
    const v = spawnSync(
      process.execPath,
      [SASLGATE_BIN, 'verify', '--principal', 'alice', ...goneArgs],
      {
        env: { PATH: process.env.PATH ?? '', ...realm.env, ...OTEL_OFF },
        input: `${ALICE}\n`,
        encoding: 'utf8',
        timeout: 20_000,
      },
    )
    assert.equal(v.status, 78, v.stdout + v.stderr)
    assert.match(v.stdout, /unavailable \(verify_principal_unknown\)/)
    assert.match(
      v.stderr,
      new RegExp(
        `the KDC does not know the verify principal ${GONE}@${realm.name.replace('.', '\\.')} \\(S_PRINCIPAL_UNKNOWN\\): create it \\(kadmin addprinc -randkey`,
      ),
    )
  })
})
