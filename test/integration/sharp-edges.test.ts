/**
 * Start-up errors an operator meets, with a real realm and `saslgate serve` as a child: each
 * names the option or path, says why and what to set, exits with its code, prints no stack.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { socketPathError } from '../../src/saslauthd/socket-file.js'
import { OTEL_OFF, runBounded, singleHostArgs } from '../../src/testing/deployment.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { SASLGATE_BIN } from '../../src/testing/saslgate-process.js'

let realm: Realm
let dir: string

before(async () => {
  realm = await startRealm({ users: [] })
  dir = await mkdtemp(join(tmpdir(), 'saslgate-edges-'))
})

after(async () => {
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

const serve = (socket: string, args: string[] = []) =>
  runBounded(process.execPath, [SASLGATE_BIN, ...singleHostArgs(realm, socket, args)], {
    env: { PATH: process.env.PATH ?? '', ...realm.env, ...OTEL_OFF },
    timeoutMs: 20_000,
  })

function assertClean(stderr: string) {
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace')
}

describe('start-up errors say why', () => {
  test('a socket in a directory that does not exist: ENOENT, the directory, how to create it; exit 73', async () => {
    const socket = join(dir, 'missing', 'mux')
    const r = await serve(socket)
    assert.equal(r.code, 73, r.stderr)
    assert.ok(
      r.stderr.includes(
        `saslgate: cannot listen on ${socket}: ENOENT: the directory ${join(dir, 'missing')} does not exist: create it`,
      ),
      r.stderr,
    )
    assert.match(r.stderr, /RuntimeDirectory=/)
    assertClean(r.stderr)
  })

  test('a realm name with a space: the option and the rule, before any KDC look-up; exit 78', async () => {
    const r = await serve(join(dir, 'mux1'), ['--set', 'realm.default=bad realm'])
    assert.equal(r.code, 78, r.stderr)
    assert.match(
      r.stderr,
      /^saslgate: config option realm\.default: "BAD REALM" is not a realm name \(no spaces/m,
    )
    assert.doesNotMatch(r.stderr, /defaultRealm|no KDC for realm/)
    assertClean(r.stderr)
  })

  test('a bad realm in realm.allowed or realm.domainRealms: named as the operator wrote it', async () => {
    // TGS mode: the verify principal names its realm, which AS mode refuses for other realms first.
    const tgs = ['--set', 'kerberos.serviceTicketVia=tgs']
    const a = await serve(join(dir, 'mux2'), [...tgs, '--set', `realm.allowed=${realm.name},A@B`])
    assert.equal(a.code, 78, a.stderr)
    assert.match(a.stderr, /config option realm\.allowed: "A@B": a realm name has no spaces/)
    const d = await serve(join(dir, 'mux3'), [
      ...tgs,
      '--set',
      'realm.domainRealms=example.org=X/Y',
    ])
    assert.equal(d.code, 78, d.stderr)
    assert.match(d.stderr, /config option realm\.domainRealms: "example\.org=X\/Y": a realm name/)
    for (const r of [a, d]) {
      assert.doesNotMatch(r.stderr, /realms\[|defaultRealm|domainRealms\[/)
      assertClean(r.stderr)
    }
  })
})

describe('socketPathError hints (one module)', () => {
  const err = (code: string) => Object.assign(new Error(code), { code })
  test('permission, read-only file system, too long a path, a file where the directory should be', () => {
    assert.match(
      socketPathError('cannot listen on /etc/hostname/mux', '/etc/hostname/mux', err('EACCES'))
        .message,
      /ENOTDIR: a component of \/etc\/hostname is not a directory/,
    )
    assert.match(
      socketPathError('cannot listen on /run/mux', '/run/mux', err('EPERM')).message,
      /^cannot listen on \/run\/mux: EPERM: this process .*may not create files in \/run: run as its owner or a member of its group/,
    )
    assert.match(
      socketPathError('cannot listen on /srv/mux', '/srv/mux', err('EROFS')).message,
      /EROFS: \/srv is on a read-only file system \(systemd ProtectSystem=strict: list it in ReadWritePaths=/,
    )
    const long = `/tmp/${'x'.repeat(120)}`
    assert.match(
      socketPathError(`cannot listen on ${long}`, long, err('EINVAL')).message,
      /limited to 107 bytes/,
    )
  })
})
