/**
 * Issue 22, blocker 3: a keytab saslgate cannot use stops the start. A missing keytab, one this
 * process may not read (root 0600, saslgate run as another user with setpriv), and one without
 * the verify principal's key: `serve` (single host and service) exits 78 naming the file and the
 * errno or the principal, before any socket or port is opened; `verify` exits 78 too, never the
 * wrong-password code 1, and a stale key (rekeyed principal) is a configuration failure as well.
 * Real processes against a real MIT KDC.
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdtempSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  OTEL_OFF,
  realmUsers,
  runBounded,
  singleHostArgs,
  writeTokenFile,
} from '../../src/testing/deployment.js'
import { freePort } from '../../src/testing/ports.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { SASLGATE_BIN as BIN } from '../../src/testing/saslgate-process.js'
import { letOtherUsersIn } from '../support/other-user.js'

const ALICE = 'alice-Keytab-Pass-1'
const WRONG = 'alice-wrong-Guess-2'
const EX_CONFIG = 78

let realm: Realm
let dir: string
const children = new Set<ChildProcess>()

before(async () => {
  letOtherUsersIn() // saslgate runs as nobody from this checkout
  realm = await startRealm({ users: realmUsers({ alice: ALICE }) })
  // Readable by the unprivileged user the EACCES test runs saslgate as.
  dir = mkdtempSync(join(tmpdir(), 'saslgate-keytab-start-'))
  chmodSync(dir, 0o755)
})

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

const baseEnv = (extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  ...realm.env,
  ...OTEL_OFF,
  ...extra,
})

/** `saslgate ARGS` to its end (bounded), optionally as another user, with a password on stdin. */
function saslgate(
  args: string[],
  env: Record<string, string>,
  options: { asUser?: string; stdin?: string } = {},
) {
  const argv = [BIN, ...args]
  const [file, fileArgs] =
    options.asUser === undefined
      ? [process.execPath, argv]
      : [
          'setpriv',
          [
            `--reuid=${options.asUser}`,
            '--regid=nogroup',
            '--clear-groups',
            process.execPath,
            ...argv,
          ],
        ]
  return runBounded(file, fileArgs, {
    env,
    timeoutMs: 30_000,
    children,
    ...(options.stdin !== undefined ? { input: options.stdin } : {}),
  })
}

const verifyArgs = (extra: string[] = []) => [
  'verify',
  '--principal',
  'alice',
  '--set',
  `kerberos.verifyPrincipal=${realm.servicePrincipal}`,
  ...extra,
]

function assertConfigExit(
  r: { code: number | null; stdout: string; stderr: string },
  ...patterns: RegExp[]
) {
  const out = r.stdout + r.stderr
  assert.equal(r.code, EX_CONFIG, out)
  for (const p of patterns) assert.match(r.stderr, p, out)
  assert.doesNotMatch(out, /saslgate ready/)
  assert.doesNotMatch(out, /\n\s+at .+:\d+:\d+/, 'no stack trace')
  for (const secret of [ALICE, WRONG]) assert.ok(!out.includes(secret), 'a password was printed')
}

describe('a keytab saslgate cannot use stops the start (exit 78)', () => {
  test('the realm keytab works: verify right password 0, wrong password 1', async () => {
    const ok = await saslgate(verifyArgs(), baseEnv(), { stdin: ALICE })
    assert.equal(ok.code, 0, ok.stdout + ok.stderr)
    const bad = await saslgate(verifyArgs(), baseEnv(), { stdin: WRONG })
    assert.equal(bad.code, 1, bad.stdout + bad.stderr)
  })

  test('missing keytab: serve (single host and service) and verify exit 78 naming path and ENOENT', async () => {
    const missing = join(dir, 'no-such.keytab')
    const env = baseEnv({ KRB5_KTNAME: `FILE:${missing}` })
    const socket = join(dir, 'mux-missing')
    const single = await saslgate(singleHostArgs(realm, socket), env)
    assertConfigExit(single, new RegExp(`keytab ${missing} \\(KRB5_KTNAME\\)`), /ENOENT/)
    assert.ok(!existsSync(socket), 'no socket was created')

    const port = await freePort()
    const token = writeTokenFile(dir, 'k'.repeat(40))
    const service = await saslgate(
      [
        'serve',
        '--listen',
        `127.0.0.1:${port}`,
        '--token-file',
        token,
        '--set',
        `kerberos.verifyPrincipal=${realm.servicePrincipal}`,
        '--set',
        `kerberos.keytab=${missing}`,
      ],
      baseEnv(),
    )
    assertConfigExit(service, new RegExp(`keytab ${missing} \\(kerberos\\.keytab\\)`), /ENOENT/)

    const verify = await saslgate(verifyArgs(), env, { stdin: ALICE })
    assertConfigExit(verify, new RegExp(`keytab ${missing}`), /ENOENT/)
  })

  test('root 0600 keytab, saslgate run as nobody: exit 78 naming path, EACCES and the uid', async () => {
    const keytab = join(dir, 'root-only.keytab')
    copyFileSync(realm.keytabPath, keytab)
    chmodSync(keytab, 0o600)
    // The realm's files are root 0700: a copy of krb5.conf the unprivileged user can read.
    const conf = join(dir, 'krb5.conf')
    copyFileSync(realm.krb5ConfPath, conf)
    chmodSync(conf, 0o644)
    const env = baseEnv({ KRB5_CONFIG: conf, KRB5_KTNAME: `FILE:${keytab}` })
    const socket = join(dir, 'mux-eacces')
    const single = await saslgate(singleHostArgs(realm, socket), env, { asUser: 'nobody' })
    assertConfigExit(
      single,
      new RegExp(`keytab ${keytab}`),
      /EACCES \(permission denied \(saslgate runs as uid 65534/,
      /chmod 0640/,
    )
    assert.ok(!existsSync(socket), 'no socket was created')
    const verify = await saslgate(verifyArgs(), env, { asUser: 'nobody', stdin: ALICE })
    assertConfigExit(verify, new RegExp(`keytab ${keytab}`), /EACCES/)
  })

  test('verify principal not in the keytab: exit 78 naming it and what the keytab holds', async () => {
    const absent = `host/not-in-keytab.test@${realm.name}`
    const socket = join(dir, 'mux-principal')
    const single = await saslgate(
      [...singleHostArgs(realm, socket), '--set', `kerberos.verifyPrincipal=${absent}`],
      baseEnv(),
    )
    const holds = new RegExp(
      `has no key for ${absent.replace(/[./]/g, '\\$&')} \\(it holds: ${realm.servicePrincipal.replace(/[./]/g, '\\$&')}`,
    )
    assertConfigExit(single, holds)
    assert.ok(!existsSync(socket), 'no socket was created')
    // an allowed second realm needs its verify principal too (unqualified: one per realm)
    const other = await saslgate(
      ['serve', '--saslauthd-socket', socket, '--set', 'realm.allowed=OTHER.TEST'],
      baseEnv({ SASLGATE_KERBEROS_VERIFY_PRINCIPAL: 'host/saslgate.test' }),
    )
    assertConfigExit(other, /has no key for host\/saslgate\.test@OTHER\.TEST/)
    const verify = await saslgate(
      ['verify', '--principal', 'alice', '--set', `kerberos.verifyPrincipal=${absent}`],
      baseEnv(),
      { stdin: ALICE },
    )
    assertConfigExit(verify, holds)
  })

  test('a stale key (principal rekeyed after the export): verify exits 78, not 1', async () => {
    const name = 'host/stale.test'
    const keytab = join(dir, 'stale.keytab')
    await realm.kadmin(`addprinc -randkey ${name}`)
    await realm.kadmin(`ktadd -k ${keytab} ${name}`)
    await realm.kadmin(`cpw -randkey ${name}`) // the KDC's key moves on; the keytab's does not
    const r = await saslgate(
      ['verify', '--principal', 'alice', '--set', `kerberos.verifyPrincipal=${name}`],
      baseEnv({ KRB5_KTNAME: `FILE:${keytab}` }),
      { stdin: ALICE },
    )
    assertConfigExit(
      r,
      new RegExp(`configuration: the ticket for ${name.replace('.', '\\.')}@${realm.name}`),
      /export the current key again/,
    )
    assert.match(r.stdout, /^invalid \(verify_failed\)/)
  })
})
