/**
 * Issue 22, small sharp edges: SIGHUP does not kill `serve` or `shim` (ignored with a log line
 * saying reload is not supported), and a live process on the saslauthd socket stops the start
 * with exit 73, the code the systemd units' RestartPreventExitStatus lists, and a hint to stop
 * saslauthd. Real processes, a real KDC, real unix sockets.
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { connect, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import {
  OTEL_OFF,
  realmUsers,
  runBounded,
  singleHostArgs,
  startShim,
  startSingleHost,
  writeTokenFile,
} from '../../src/testing/deployment.js'
import { freePort } from '../../src/testing/ports.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { SASLGATE_BIN as BIN, type SaslgateProcess } from '../../src/testing/saslgate-process.js'
import { TESTSASLAUTHD } from '../support/binaries.js'

const ALICE = 'alice-Signals-Pass-1'
const EX_SOCKET_IN_USE = 73
const UNITS = fileURLToPath(new URL('../../deploy/systemd/', import.meta.url))

let realm: Realm
let dir: string
const gates: SaslgateProcess[] = []
const children = new Set<ChildProcess>()
const servers: Server[] = []

before(async () => {
  realm = await startRealm({ users: realmUsers({ alice: ALICE }) })
  dir = mkdtempSync(join(tmpdir(), 'saslgate-signals-'))
})

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const g of gates) await g.stop()
  for (const s of servers) s.close()
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

const token = () => writeTokenFile(dir, 't'.repeat(40))

/** Waits (bounded) until the child's output contains `text`. */
async function waitFor(gate: SaslgateProcess, text: string): Promise<void> {
  for (let i = 0; i < 200 && !gate.output().includes(text); i++) await sleep(25)
}

/** A process answering on `path` the way a running saslauthd would (accepts, then closes). */
async function liveSocket(path: string): Promise<void> {
  const server = createServer((c) => c.end())
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(path, resolve))
}

describe('SIGHUP is ignored with a log line', () => {
  test('serve (single host): still answers after SIGHUP, then SIGTERM exits 0', async () => {
    const socket = join(dir, 'hup-serve')
    const gate = await startSingleHost({ realm, socket })
    gates.push(gate)
    gate.child.kill('SIGHUP')
    await waitFor(gate, 'SIGHUP ignored')
    assert.match(gate.output(), /"signal":"SIGHUP".*cannot reload its configuration yet/)
    assert.equal(gate.child.exitCode, null, 'still running')
    assert.equal(gate.child.signalCode, null, 'not killed by SIGHUP')
    if (TESTSASLAUTHD !== undefined) {
      const r = spawnSync(TESTSASLAUTHD, ['-u', 'alice', '-p', ALICE, '-s', 'imap', '-f', socket], {
        encoding: 'utf8',
        timeout: 15_000,
      })
      assert.match(r.stdout, /^0: OK/, r.stdout + r.stderr)
    }
    assert.deepEqual(await gate.stop(), { code: 0, signal: null })
  })

  test('shim: still running after SIGHUP, then SIGTERM exits 0', async () => {
    const gate = await startShim({
      socket: join(dir, 'hup-shim'),
      upstream: `http://127.0.0.1:${await freePort()}`,
      tokenFile: token(),
    })
    gates.push(gate)
    gate.child.kill('SIGHUP')
    await waitFor(gate, 'SIGHUP ignored')
    assert.match(gate.output(), /SIGHUP ignored/)
    assert.equal(gate.child.signalCode, null, 'not killed by SIGHUP')
    assert.deepEqual(await gate.stop(), { code: 0, signal: null })
  })
})

describe('a live socket at start: exit 73 with a hint, listed in RestartPreventExitStatus', () => {
  test('the units do not restart on exit 73', () => {
    for (const unit of ['saslgate.service', 'saslgate-shim.service']) {
      const line = readFileSync(join(UNITS, unit), 'utf8').match(/^RestartPreventExitStatus=(.*)$/m)
      assert.ok(line?.[1]?.split(/\s+/).includes(String(EX_SOCKET_IN_USE)), unit)
    }
  })

  for (const role of ['serve', 'shim'] as const) {
    test(`${role}: exits 73 naming the socket and saslauthd, leaves the other process alone`, async () => {
      const socket = join(dir, `live-${role}`)
      await liveSocket(socket)
      const args =
        role === 'serve'
          ? singleHostArgs(realm, socket)
          : [
              'shim',
              '--socket',
              socket,
              '--upstream',
              `http://127.0.0.1:${await freePort()}`,
              '--token-file',
              token(),
            ]
      const r = await runBounded(process.execPath, [BIN, ...args], {
        env: { PATH: process.env.PATH, ...realm.env, ...OTEL_OFF },
        timeoutMs: 30_000,
        children,
      })
      assert.equal(r.code, EX_SOCKET_IN_USE, r.stdout + r.stderr)
      assert.match(r.stderr, new RegExp(`another process answers on ${socket}`))
      assert.match(r.stderr, /systemctl stop saslauthd && systemctl mask saslauthd/)
      assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at .+:\d+:\d+/, 'no stack trace')
      // the live listener still has its socket
      await new Promise<void>((resolve, reject) => {
        const c = connect(socket, () => {
          c.destroy()
          resolve()
        })
        c.once('error', reject)
      })
    })
  }
})
