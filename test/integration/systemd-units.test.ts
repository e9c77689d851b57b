/**
 * The systemd units in deploy/systemd: `systemd-analyze verify` and `security --offline` on
 * copies whose paths point into this checkout (verify checks that ExecStart's binary exists);
 * the hardening, socket directory and restart policy they must keep; the example
 * EnvironmentFiles name only real options; and saslgate.service's own command line and
 * environment, run as is (paths swapped for the test realm's), answering testsaslauthd against
 * a real KDC and stopping cleanly on SIGTERM; and the same command under the unit's User,
 * Group, SupplementaryGroups, UMask, RuntimeDirectory, ProtectSystem, PrivateTmp and
 * NoNewPrivileges (emulated with a mount namespace and setpriv: there is no systemd here),
 * making the socket a group-sasl client can reach and others cannot. Nothing is installed
 * into /etc, no unit is started, no account is created.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
} from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { envName, loadConfig, options } from '../../src/config.js'
import { encodeRequest } from '../../src/saslauthd/codec.js'
import { freePort } from '../../src/testing/ports.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { TESTSASLAUTHD } from '../support/binaries.js'
import { letOtherUsersIn } from '../support/other-user.js'
import { NEEDS_TESTSASLAUTHD, needs } from '../support/requires.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '')
const UNITS = join(ROOT, 'deploy/systemd')
const INSTALL_DIR = '/opt/saslgate'
const NODE = '/usr/bin/node'
const SOCKET = '/run/saslauthd/mux'

const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p))

type Unit = Map<string, Map<string, string[]>>

/** Runs systemd-analyze; fails clearly when the `systemd` package is not installed. */
function analyze(args: string[]): SpawnSyncReturns<string> {
  assert.ok(
    ANALYZE !== undefined,
    'systemd-analyze is missing: install the Debian package `systemd` (scripts/setup.sh)',
  )
  return spawnSync(ANALYZE, args, { encoding: 'utf8', timeout: 60_000 })
}

/** `[Section]` -> key -> every value (repeated keys accumulate, as systemd's lists do). */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map()
  let section = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const s = line.match(/^\[(.+)\]$/)
    if (s !== null) {
      section = s[1]!
      unit.set(section, new Map())
      continue
    }
    const eq = line.indexOf('=')
    assert.ok(eq > 0 && section !== '', `bad unit line: ${line}`)
    const values = unit.get(section)!
    const key = line.slice(0, eq)
    values.set(key, [...(values.get(key) ?? []), line.slice(eq + 1)])
  }
  return unit
}

const read = (name: string) => readFileSync(join(UNITS, name), 'utf8')
const service = (unit: Unit, key: string) => unit.get('Service')?.get(key) ?? []
const one = (unit: Unit, key: string) => {
  const v = service(unit, key)
  assert.equal(v.length, 1, `${key}: ${JSON.stringify(v)}`)
  return v[0]!
}

/** SASLGATE_* settings of an example EnvironmentFile: active ones, and every name mentioned. */
function parseEnvFile(text: string): { active: Record<string, string>; names: string[] } {
  const active: Record<string, string> = {}
  const names: string[] = []
  for (const line of text.split('\n')) {
    const m = line.match(/^(#?)([A-Z][A-Z0-9_]*)=(.*)$/)
    if (m === null) continue
    names.push(m[2]!)
    if (m[1] === '') active[m[2]!] = m[3]!
  }
  return { active, names }
}

const HARDENING: Record<string, string> = {
  NoNewPrivileges: 'yes',
  LimitCORE: '0',
  ProtectSystem: 'strict',
  ProtectHome: 'yes',
  PrivateTmp: 'yes',
  PrivateDevices: 'yes',
  PrivateMounts: 'yes',
  ProtectKernelTunables: 'yes',
  ProtectKernelModules: 'yes',
  ProtectKernelLogs: 'yes',
  ProtectControlGroups: 'yes',
  ProtectClock: 'yes',
  ProtectHostname: 'yes',
  ProtectProc: 'invisible',
  RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6',
  RestrictNamespaces: 'yes',
  RestrictRealtime: 'yes',
  RestrictSUIDSGID: 'yes',
  LockPersonality: 'yes',
  RemoveIPC: 'yes',
  CapabilityBoundingSet: '',
  AmbientCapabilities: '',
  SystemCallArchitectures: 'native',
  SystemCallFilter: '@system-service',
  UMask: '0077',
}

const units = [
  {
    file: 'saslgate-shim.service',
    env: 'saslgate-shim.env',
    command: ['shim', '--socket', SOCKET],
  },
  {
    file: 'saslgate.service',
    env: 'saslgate.env',
    command: ['serve', '--saslauthd-socket', SOCKET],
  },
]

describe('systemd units', () => {
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'saslgate-units-'))
    for (const u of units) {
      // verify checks that ExecStart's binary exists: point it into this checkout
      const text = read(u.file).replaceAll(INSTALL_DIR, ROOT).replaceAll(NODE, process.execPath)
      await writeFile(join(dir, u.file), text)
    }
  })

  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('systemd-analyze verify accepts both units without a warning', () => {
    const r = analyze(['verify', ...units.map((u) => join(dir, u.file))])
    // only our units' lines count (the host's own units may warn about themselves)
    const ours = `${r.stdout}${r.stderr}`
      .split('\n')
      .filter((l) => units.some((u) => l.includes(u.file)) || l.includes(dir))
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`)
    assert.deepEqual(ours, [])
  })

  test('systemd-analyze security rates both units 2.0 or better (of 10)', () => {
    for (const u of units) {
      const r = analyze([
        'security',
        '--offline=yes',
        '--threshold=20',
        '--no-pager',
        join(dir, u.file),
      ])
      const overall = `${r.stdout}${r.stderr}`.match(/Overall exposure level for .*/)?.[0]
      assert.equal(r.status, 0, `${u.file}: ${overall ?? r.stderr}`)
    }
  })

  for (const u of units) {
    test(`${u.file}: hardening, socket directory for Cyrus, restart policy, command line`, () => {
      const unit = parseUnit(read(u.file))
      for (const [key, value] of Object.entries(HARDENING))
        assert.deepEqual(service(unit, key), [value], `${u.file}: ${key}=${value}`)
      assert.ok(!service(unit, 'MemoryDenyWriteExecute').includes('yes'), 'V8 needs W+X memory')
      const user = one(unit, 'User')
      assert.ok(user !== 'root' && user !== '0', 'not root')
      assert.equal(one(unit, 'Group'), 'sasl', 'the socket directory belongs to group sasl')
      assert.equal(one(unit, 'RuntimeDirectory'), 'saslauthd')
      assert.equal(one(unit, 'RuntimeDirectoryMode'), '0710')
      assert.equal(one(unit, 'RuntimeDirectoryPreserve'), 'yes')
      assert.equal(one(unit, 'Type'), 'exec')
      assert.equal(one(unit, 'Restart'), 'always')
      // usage, socket in use (saslauthd still running), configuration: see src/cli.ts EXIT
      assert.deepEqual(one(unit, 'RestartPreventExitStatus').split(/\s+/).sort(), [
        '64',
        '73',
        '78',
      ])
      // saslauthd answers the same socket: never both, and its stop comes before our start
      assert.deepEqual(unit.get('Unit')?.get('Conflicts'), ['saslauthd.service'])
      assert.ok(unit.get('Unit')?.get('After')?.[0]?.split(/\s+/).includes('saslauthd.service'))
      assert.match(one(unit, 'TimeoutStopSec'), /^\d+s$/)
      const exec = one(unit, 'ExecStart').split(/\s+/)
      assert.deepEqual(exec, [NODE, `${INSTALL_DIR}/bin/saslgate.js`, ...u.command])
      assert.ok(SOCKET.startsWith(`/run/${one(unit, 'RuntimeDirectory')}/`))
      assert.deepEqual(unit.get('Install')?.get('WantedBy'), ['multi-user.target'])
      assert.ok(unit.get('Unit')?.get('After')?.[0]?.split(/\s+/).includes('network-online.target'))
    })

    test(`${u.env}: every SASLGATE_* name is an option, and the active ones load`, () => {
      const unit = parseUnit(read(u.file))
      const envFile = service(unit, 'EnvironmentFile')[0]!.replace(/^-/, '')
      assert.match(envFile, /^\/etc\/default\/saslgate/)
      const { active, names } = parseEnvFile(read(u.env))
      const known = new Set(options().map(([name]) => envName(name)))
      for (const name of names.filter((n) => n.startsWith('SASLGATE_')))
        assert.ok(known.has(name), `${u.env}: ${name} is not a saslgate option (exit 78)`)
      const config = loadConfig({ env: active, settings: { 'saslauthd.socket': SOCKET } })
      if (u.file === 'saslgate-shim.service') {
        assert.ok(config.shim.upstreams.length > 0, 'the shim example names the service')
        assert.notEqual(config.shim.tokenFile, '', 'the shim example presents a token')
      }
    })
  }
})

describe('saslgate.service run as written, against a real KDC', {
  skip: NEEDS_TESTSASLAUTHD,
}, () => {
  const PASSWORD = 'unit-Pässword-7'
  const WRONG = 'unit-wrong-Guess-8'
  let realm: Realm
  let dir: string
  let child: ChildProcess | undefined

  before(async () => {
    realm = await startRealm({ users: [{ name: 'alice', password: PASSWORD }] })
    dir = await mkdtemp(join(tmpdir(), 'saslgate-unit-run-'))
  })

  after(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null)
      child.kill('SIGKILL')
    await realm?.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  function testsaslauthd(socket: string, password: string) {
    return spawnSync(TESTSASLAUTHD!, ['-u', 'alice', '-p', password, '-s', 'imap', '-f', socket], {
      encoding: 'utf8',
      timeout: 15_000,
    })
  }

  test('ExecStart + Environment= + the example EnvironmentFile answer testsaslauthd, SIGTERM stops it', async () => {
    const unit = parseUnit(read('saslgate.service'))
    const socket = join(dir, 'mux')
    assert.equal(
      parseEnvFile(read('saslgate.env')).active.SASLGATE_SERVICE_ADMIN_LISTEN,
      '127.0.0.1:9090',
      'the single-host example serves /readyz and /metrics on loopback',
    )
    const adminPort = await freePort()
    const argv = one(unit, 'ExecStart')
      .split(/\s+/)
      .map((a) => a.replace(INSTALL_DIR, ROOT).replace(SOCKET, socket))
    assert.equal(argv[0], NODE)
    // Environment= lines, then the EnvironmentFile; the realm stands in for /etc
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' }
    for (const line of service(unit, 'Environment')) {
      const eq = line.indexOf('=')
      env[line.slice(0, eq)] = line.slice(eq + 1)
    }
    assert.deepEqual(Object.keys(env).sort(), ['KRB5_CONFIG', 'KRB5_KTNAME', 'PATH'])
    Object.assign(env, parseEnvFile(read('saslgate.env')).active, {
      KRB5_CONFIG: realm.krb5ConfPath,
      KRB5_KTNAME: realm.keytabPath,
      // the realm's keytab holds host/saslgate.test, not host/<this machine>
      SASLGATE_KERBEROS_VERIFY_PRINCIPAL: realm.servicePrincipal,
      // the example's admin port, moved to a free one (other tests may run beside this one)
      SASLGATE_SERVICE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'none',
    })
    const proc = spawn(process.execPath, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let out = ''
    proc.stdout!.on('data', (d) => {
      out += d
    })
    proc.stderr!.on('data', (d) => {
      out += d
    })
    const exited = new Promise<number | null>((resolve) =>
      proc.once('exit', (code) => resolve(code)),
    )
    const deadline = Date.now() + 20_000
    while (!out.includes('saslgate ready') && proc.exitCode === null && Date.now() < deadline)
      await sleep(50)
    assert.ok(out.includes('saslgate ready'), `not ready: ${out}`)

    const good = testsaslauthd(socket, PASSWORD)
    assert.match(good.stdout, /^0: OK/, good.stdout + good.stderr)
    const bad = testsaslauthd(socket, WRONG)
    assert.match(bad.stdout, /^0: NO/, bad.stdout + bad.stderr)
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`)
    assert.equal(ready.status, 200)
    assert.deepEqual(await ready.json(), { status: 'ready' })
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
    assert.match(metrics, /^saslgate_decisions_total\{/m)

    // systemd stops with SIGTERM and waits TimeoutStopSec
    const stopMs = Number(one(unit, 'TimeoutStopSec').replace(/s$/, '')) * 1000
    const t0 = Date.now()
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), stopMs)
    const code = await exited
    clearTimeout(timer)
    assert.equal(code, 0, out)
    assert.ok(Date.now() - t0 < stopMs)
    assert.ok(!existsSync(socket), 'socket removed on stop')
    for (const secret of [PASSWORD, WRONG]) assert.ok(!out.includes(secret), 'no password in logs')
  })
})

// ---------------------------------------------------------------------------------------------
// The unit's identity and sandbox, emulated without systemd (no PID 1 systemd here): a private
// mount namespace (unshare) where /run/saslauthd is the RuntimeDirectory (made as systemd
// makes it: owner User, group Group, RuntimeDirectoryMode), / is read-only (ProtectSystem=
// strict: only the RuntimeDirectory and the private /tmp stay writable), /tmp is private
// (PrivateTmp=yes); then setpriv drops to User/Group/SupplementaryGroups with
// NoNewPrivileges and no capabilities, and the shell sets UMask before exec'ing ExecStart.

const SASL_GID = groupId('sasl')
/** Stand-ins when the unit's accounts do not exist here (no account is created). */
const STAND_IN_UID = 64990
const STAND_IN_GID = 64991
const NOBODY = 65534

function groupId(name: string): number | undefined {
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`))
  return line === undefined ? undefined : Number(line.split(':')[2])
}

function userId(name: string): number | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`))
  return line === undefined ? undefined : Number(line.split(':')[2])
}

function isolationMissing(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (a mount namespace and setpriv)'
  for (const bin of ['/usr/bin/unshare', '/usr/bin/setpriv'])
    if (!existsSync(bin)) return `${bin} is missing (util-linux)`
  if (SASL_GID === undefined) return 'no sasl group (Debian package sasl2-bin)'
  const probe = spawnSync('/usr/bin/unshare', ['-m', '--propagation', 'private', 'true'])
  if (probe.status !== 0) return `unshare -m does not work here: ${probe.stderr}`
  return false
}

/** One saslauthd request as uid/gid nobody with `groups`: the reply text, or the errno. */
function checkAs(groups: number[], socket: string, password: string): string {
  const frame = encodeRequest({ login: 'alice', password, service: 'imap', realm: '' })
  const script = `
    const s = require('node:net').connect(${JSON.stringify(socket)})
    let buf = Buffer.alloc(0)
    s.on('connect', () => s.end(Buffer.from('${frame.toString('hex')}', 'hex')))
    s.on('data', (d) => { buf = Buffer.concat([buf, d]) })
    s.on('error', (e) => { process.stdout.write(e.code); process.exit(0) })
    s.on('close', () => { process.stdout.write(buf.subarray(2).toString('latin1')); process.exit(0) })
    setTimeout(() => { process.stdout.write('TIMEOUT'); process.exit(0) }, 5000).unref()
  `
  const groupArgs = groups.length > 0 ? [`--groups=${groups.join(',')}`] : ['--clear-groups']
  const r = spawnSync(
    '/usr/bin/setpriv',
    [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, ...groupArgs, process.execPath, '-e', script],
    { encoding: 'utf8', timeout: 10_000, env: { PATH: process.env.PATH } },
  )
  return r.stdout
}

/** A `/proc/<pid>/status` field. */
function status(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`))
  return (line ?? '').slice(field.length + 1).trim()
}

describe('saslgate.service under its User, Group, UMask, RuntimeDirectory and ProtectSystem', {
  skip: needs(isolationMissing()),
}, () => {
  const PASSWORD = 'unit-Sandbox-Pw-9'
  let realm: Realm
  let dir: string
  let child: ChildProcess | undefined

  before(async () => {
    letOtherUsersIn() // the unit's User= runs saslgate from this checkout
    realm = await startRealm({ users: [{ name: 'alice', password: PASSWORD }] })
    dir = await mkdtemp(join(tmpdir(), 'saslgate-unit-sandbox-'))
    chmodSync(dir, 0o755) // nobody (the client) must reach the runtime directory inside
  })

  after(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null)
      child.kill('SIGKILL')
    await realm?.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  test('the socket is made by User:Group as the unit says; a sasl member connects, others cannot', async () => {
    const unit = parseUnit(read('saslgate.service'))
    const uid = userId(one(unit, 'User')) ?? STAND_IN_UID
    const gid = groupId(one(unit, 'Group'))
    assert.equal(gid, SASL_GID, 'Group=sasl')
    const extraGid = groupId(one(unit, 'SupplementaryGroups')) ?? STAND_IN_GID
    const umask = one(unit, 'UMask')
    assert.equal(one(unit, 'ProtectSystem'), 'strict')
    assert.equal(one(unit, 'PrivateTmp'), 'yes')
    assert.equal(one(unit, 'NoNewPrivileges'), 'yes')

    // RuntimeDirectory=saslauthd, as systemd creates it.
    const runtime = join(dir, 'runtime')
    mkdirSync(runtime)
    chownSync(runtime, uid, gid as number)
    chmodSync(runtime, Number.parseInt(one(unit, 'RuntimeDirectoryMode'), 8))
    // PrivateTmp: its own /tmp. The realm's keytab and krb5.conf go there (the unit's
    // /etc/saslgate stands in), the keytab root:<SupplementaryGroups> 0640 as the unit says.
    const privateTmp = join(dir, 'tmp')
    mkdirSync(join(privateTmp, 'etc'), { recursive: true })
    chmodSync(privateTmp, 0o1777)
    copyFileSync(realm.keytabPath, join(privateTmp, 'etc', 'krb5.keytab'))
    chownSync(join(privateTmp, 'etc', 'krb5.keytab'), 0, extraGid)
    chmodSync(join(privateTmp, 'etc', 'krb5.keytab'), 0o640)
    copyFileSync(realm.krb5ConfPath, join(privateTmp, 'etc', 'krb5.conf'))
    chmodSync(join(privateTmp, 'etc', 'krb5.conf'), 0o644)

    // ExecStart as written (the socket path too); only the install directory is this checkout.
    const argv = one(unit, 'ExecStart')
      .split(/\s+/)
      .map((a) => a.replace(INSTALL_DIR, ROOT))
    assert.ok(argv.includes(SOCKET), 'the socket path is the one in the unit')
    const env: Record<string, string> = { PATH: '/usr/bin:/bin' }
    for (const line of service(unit, 'Environment')) {
      const eq = line.indexOf('=')
      env[line.slice(0, eq)] = line.slice(eq + 1)
    }
    Object.assign(env, parseEnvFile(read('saslgate.env')).active, {
      KRB5_CONFIG: '/tmp/etc/krb5.conf',
      KRB5_KTNAME: '/tmp/etc/krb5.keytab',
      SASLGATE_KERBEROS_VERIFY_PRINCIPAL: realm.servicePrincipal,
    })
    // In the namespace: /run is a fresh tmpfs holding the runtime directory, /tmp the private
    // one, then / and /run read-only (bind remounts: the host's mounts are untouched).
    const sandbox = [
      'set -e',
      'mount -t tmpfs -o mode=0755 tmpfs /run',
      'mkdir /run/saslauthd',
      'mount --bind "$1" /run/saslauthd',
      // A checkout under /tmp (a CI clone) stays visible through the private /tmp.
      'if [ -n "$3" ]; then mkdir -p "$2/$3" && mount --bind "/tmp/$3" "$2/$3"; fi',
      'mount --rbind "$2" /tmp',
      'mount -o remount,bind,ro /run',
      'mount -o remount,bind,ro /',
      'shift 3',
      'exec "$@"',
    ].join('\n')
    const proc = spawn(
      '/usr/bin/unshare',
      [
        '-m',
        '--propagation',
        'private',
        '/bin/sh',
        '-c',
        sandbox,
        'sandbox',
        runtime,
        privateTmp,
        ROOT.startsWith('/tmp/') ? ROOT.slice('/tmp/'.length) : '',
        '/usr/bin/setpriv',
        `--reuid=${uid}`,
        `--regid=${gid}`,
        `--groups=${extraGid}`,
        '--no-new-privs',
        '--bounding-set=-all',
        '--inh-caps=-all',
        '/bin/sh',
        '-c',
        `umask ${umask} && exec "$@"`,
        'unit',
        process.execPath,
        ...argv.slice(1),
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    child = proc
    let out = ''
    proc.stdout!.on('data', (d) => {
      out += d
    })
    proc.stderr!.on('data', (d) => {
      out += d
    })
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)))
    const deadline = Date.now() + 30_000
    while (!out.includes('saslgate ready') && proc.exitCode === null && Date.now() < deadline)
      await sleep(50)
    assert.ok(out.includes('saslgate ready'), `not ready: ${out}`)

    // The process is who and what the unit says (every exec kept the PID).
    const pid = proc.pid as number
    assert.equal(status(pid, 'Uid').split(/\s+/)[0], String(uid))
    assert.equal(status(pid, 'Gid').split(/\s+/)[0], String(gid))
    const groups = status(pid, 'Groups').split(/\s+/).map(Number)
    assert.ok(groups.includes(extraGid), `SupplementaryGroups: ${groups}`)
    assert.equal(status(pid, 'Umask'), umask)
    assert.equal(status(pid, 'NoNewPrivs'), '1')
    assert.match(status(pid, 'CapBnd'), /^0+$/)
    const rootMount = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === '/')
    assert.match(
      rootMount ?? '',
      /^\S+ \S+ \S+ \S+ \/ (ro|ro,\S+|\S+,ro|\S+,ro,\S+) /,
      'ProtectSystem',
    )

    // The socket: made by saslgate as User:Group; its mode is saslauthd.socketMode (0777,
    // despite UMask=0077), and the 0710 directory is what keeps non-members out.
    const sock = join(runtime, 'mux')
    const st = statSync(sock)
    assert.ok(st.isSocket())
    assert.equal(st.uid, uid)
    assert.equal(st.gid, gid)
    assert.equal((st.mode & 0o777).toString(8), '777')
    const d = statSync(runtime)
    assert.deepEqual([d.uid, d.gid, (d.mode & 0o777).toString(8)], [uid, gid, '710'])
    assert.equal(checkAs([gid as number], sock, PASSWORD), 'OK', 'a member of group sasl')
    assert.match(checkAs([gid as number], sock, 'unit-wrong-Guess'), /^NO/)
    assert.equal(checkAs([], sock, PASSWORD), 'EACCES', 'not in group sasl')

    const stopMs = Number(one(unit, 'TimeoutStopSec').replace(/s$/, '')) * 1000
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), stopMs)
    const code = await exited
    clearTimeout(timer)
    assert.equal(code, 0, out)
    assert.ok(!existsSync(sock), 'socket removed on stop')
    assert.ok(existsSync(runtime), 'RuntimeDirectoryPreserve: the directory stays')
    assert.ok(!out.includes(PASSWORD), 'no password in logs')
  })
})
