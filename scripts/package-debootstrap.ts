/**
 * The .deb of scripts/package installed into a fresh Debian 12 root and run there (issue 22):
 * `scripts/test-package-debootstrap [--deb FILE] [--cache DIR] [--keep]`.
 *
 * A minbase bookworm root is made once with debootstrap from this machine's Debian mirror and
 * cached (`.cache/debootstrap-bookworm/base`); every run copies it, so each install starts from
 * a root that never saw saslgate. In the copy (chroot, with its own /proc): `dpkg -i` then
 * `apt-get -f install` (Debian's libraries only, the downloads kept in a cache dir), the checks
 * of what postinst made (user, groups, modes, the keytab warning), `saslgate --version`, and
 * `saslgate verify` as the unit's user against a real MIT realm started on the host (the chroot
 * shares the network namespace, so its KDCs on 127.0.0.1 are reachable; the chroot gets the
 * realm's krb5.conf and keytab). Then `dpkg -r`: the config stays.
 *
 * Every check is reported with what was seen; the command exits 1 when one fails. The test in
 * test/deploy/package-debootstrap.test.ts runs the same function.
 */
import { type ChildProcess, spawnSync } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { runBounded } from '../src/testing/deployment.js'
import { type Realm, startRealm } from '../src/testing/realm.js'

const ROOT_DIR = fileURLToPath(new URL('../', import.meta.url)).replace(/\/$/, '')
const SUITE = 'bookworm'
const CHROOT_PATH = '/usr/sbin:/usr/bin:/sbin:/bin'
/** Marker written last: a base without it is half made (an interrupted debootstrap). */
const BASE_MARKER = '.saslgate-base-complete'
// Test passwords of the throw-away realm (never logged: only exit codes and reply words are).
const ALICE = 'alice-Deb-Pass-1'
const WRONG = 'alice-wrong-Guess-2'

export interface PackageTestOptions {
  /** The .deb; default: the newest build/package/saslgate_*.deb, built first if there is none. */
  deb?: string
  /** Cache of the base root and apt's downloads (default `.cache/debootstrap-bookworm`). */
  cacheDir?: string
  /** Debian mirror for debootstrap (default: the one this machine's apt uses). */
  mirror?: string
  /** Keep the run's root afterwards (else removed when every check passed). */
  keep?: boolean
  log?: (line: string) => void
}

export interface Check {
  name: string
  ok: boolean
  detail: string
}

export interface PackageTestReport {
  deb: string
  version: string
  /** True when the base root came from the cache (no debootstrap this run). */
  baseFromCache: boolean
  seconds: { base: number; copy: number; install: number; total: number }
  checks: Check[]
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

const live = new Set<ChildProcess>()

/** FILE ARGS to its end within timeoutMs (then SIGKILL), stdin from `input`. */
function run(
  file: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  const { input, timeoutMs = 120_000, env = process.env } = options
  return runBounded(file, args, { env, timeoutMs, children: live, input: input ?? '' })
}

/** The Debian mirror this machine's apt uses (deb822 .sources first, then sources.list). */
export function hostMirror(): string {
  const dir = '/etc/apt/sources.list.d'
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.sources'))
        .map((f) => join(dir, f))
    : []
  for (const f of files) {
    for (const stanza of readFileSync(f, 'utf8').split(/\n\s*\n/)) {
      const uris = /^URIs:\s*(\S+)/m.exec(stanza)?.[1]
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? []
      if (uris !== undefined && suites.includes(SUITE)) return uris
    }
  }
  if (existsSync('/etc/apt/sources.list')) {
    for (const line of readFileSync('/etc/apt/sources.list', 'utf8').split('\n')) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/.exec(line)
      if (m?.[1] !== undefined) return m[1]
    }
  }
  throw new Error('no bookworm mirror in /etc/apt: pass --mirror URL (or SASLGATE_DEBIAN_MIRROR)')
}

/** Mount points at or under `dir`, deepest first (from this process's mountinfo). */
function mountsUnder(dir: string): string[] {
  const prefix = `${resolve(dir)}/`
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === resolve(dir) || m.startsWith(prefix))
    .sort((a, b) => b.length - a.length)
}

async function unmountAll(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) await run('umount', ['--lazy', m], { timeoutMs: 30_000 })
  const left = mountsUnder(dir)
  if (left.length > 0) throw new Error(`still mounted, not removing ${dir}: ${left.join(', ')}`)
}

/**
 * Unmounts what this run mounted if the process ends early (a test runner's timeout sends
 * SIGTERM; a plain exit too): a /proc left mounted in .cache would outlive the run.
 */
function unmountOnExit(dir: string): () => void {
  const sync = () => {
    for (const m of mountsUnder(dir)) spawnSync('umount', ['--lazy', m], { timeout: 10_000 })
  }
  const onSignal = (signal: NodeJS.Signals) => {
    sync()
    process.kill(process.pid, signal)
  }
  process.on('exit', sync)
  process.once('SIGTERM', onSignal)
  process.once('SIGINT', onSignal)
  return () => {
    process.off('exit', sync)
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
  }
}

/** rm -rf, never through a mount point (a bind-mounted /dev or /proc would be the host's). */
async function removeRoot(dir: string): Promise<void> {
  if (!existsSync(dir)) return
  await unmountAll(dir)
  const r = await run('rm', ['-rf', '--one-file-system', dir], { timeoutMs: 300_000 })
  if (r.code !== 0) throw new Error(`rm -rf ${dir}: ${r.stderr.trim()}`)
}

/** COMMAND in the chroot, with a clean environment (plus `env`). */
function inRoot(
  root: string,
  command: readonly string[],
  options: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<Run> {
  const vars = Object.entries({
    PATH: CHROOT_PATH,
    LANG: 'C.UTF-8',
    DEBIAN_FRONTEND: 'noninteractive',
    ...options.env,
  }).map(([k, v]) => `${k}=${v}`)
  // `env` is the command's (after env -i), not chroot's own environment.
  const { input, timeoutMs } = options
  return run('chroot', [root, '/usr/bin/env', '-i', ...vars, ...command], { input, timeoutMs })
}

// No fsync per file (as debootstrap installs too): the same install, much faster on a busy
// disk; only a crash in the middle would differ, and the root is thrown away.
const UNSAFE_IO = '--force-unsafe-io'
const APT = [
  'apt-get',
  '-q',
  '-y',
  '-o',
  'Acquire::Check-Valid-Until=false',
  '-o',
  'Acquire::Retries=2',
  '-o',
  `Dpkg::Options::=${UNSAFE_IO}`,
]

/** The cached minbase root, made now if missing. Resolves to true when it came from the cache. */
async function ensureBase(cacheDir: string, mirror: string, log: (s: string) => void) {
  const base = join(cacheDir, 'base')
  if (existsSync(join(base, BASE_MARKER))) return true
  const tmp = join(cacheDir, 'base.tmp')
  await removeRoot(tmp)
  await removeRoot(base)
  mkdirSync(cacheDir, { recursive: true })
  log(`debootstrap --variant=minbase ${SUITE} from ${mirror} (first run only)`)
  const r = await run('debootstrap', ['--variant=minbase', SUITE, tmp, mirror], {
    timeoutMs: 30 * 60_000,
  })
  if (r.code !== 0) throw new Error(`debootstrap failed (${r.code}): ${r.stderr.slice(-2000)}`)
  // apt's lists once, in the base: runs then only fetch the few packages the .deb depends on.
  copyFileSync('/etc/resolv.conf', join(tmp, 'etc/resolv.conf'))
  const u = await inRoot(tmp, [...APT, 'update'], { timeoutMs: 10 * 60_000 })
  if (u.code !== 0) throw new Error(`apt-get update in the base failed: ${u.stderr.slice(-2000)}`)
  writeFileSync(join(tmp, BASE_MARKER), `${new Date().toISOString()} ${mirror}\n`)
  renameSync(tmp, base)
  return false
}

/** The newest build/package/saslgate_*.deb, if it is newer than everything that goes into it. */
export function freshDeb(): string | undefined {
  const built = newestDeb()
  return built !== undefined && statSync(built).mtimeMs >= newestInput() ? built : undefined
}

function newestDeb(): string | undefined {
  const dir = join(ROOT_DIR, 'build/package')
  if (!existsSync(dir)) return undefined
  const debs = readdirSync(dir)
    .filter((f) => /^saslgate_.*\.deb$/.test(f))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)
  return debs[0]
}

/** Newest modification time of what goes into the package (sources, units, scripts, addon). */
function newestInput(): number {
  let newest = 0
  const walk = (p: string) => {
    if (!existsSync(p)) return
    const st = statSync(p)
    if (st.isDirectory()) for (const f of readdirSync(p)) walk(join(p, f))
    else newest = Math.max(newest, st.mtimeMs)
  }
  for (const p of [
    'src',
    'bin',
    'deploy/systemd',
    'scripts/package',
    'scripts/package-debian',
    'package.json',
    'package-lock.json',
    'tsconfig.build.json',
    'native/build/Release/saslgate_krb5.node',
  ])
    walk(join(ROOT_DIR, p))
  return newest
}

/**
 * A copy of `deb` that says it is version `version` (only its control file changes: the data
 * archive is reused as is, so this takes no time): the "new release" of the upgrade check.
 */
async function withVersion(deb: string, version: string, dir: string): Promise<string> {
  const work = join(dir, 'repack')
  rmSync(work, { recursive: true, force: true })
  mkdirSync(join(work, 'control'), { recursive: true })
  const step = async (file: string, args: string[], cwd = work) => {
    const r = await run('sh', ['-c', `cd "$1" && shift && exec "$@"`, 'sh', cwd, file, ...args])
    if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr.trim()}`)
  }
  await step('ar', ['x', deb])
  const controlTar = readdirSync(work).find((f) => f.startsWith('control.tar'))
  const dataTar = readdirSync(work).find((f) => f.startsWith('data.tar'))
  if (controlTar === undefined || dataTar === undefined) throw new Error(`${deb}: not a .deb`)
  await step('tar', ['-xf', join(work, controlTar), '-C', join(work, 'control')])
  const controlPath = join(work, 'control/control')
  const control = readFileSync(controlPath, 'utf8')
  writeFileSync(controlPath, control.replace(/^Version: .*$/m, `Version: ${version}`))
  rmSync(join(work, controlTar))
  await step(
    'tar',
    ['--owner=0', '--group=0', '-cJf', '../control.tar.xz', '.'],
    join(work, 'control'),
  )
  const out = join(dir, `saslgate_${version}.deb`)
  rmSync(out, { force: true })
  await step('ar', ['rc', out, 'debian-binary', 'control.tar.xz', dataTar])
  rmSync(work, { recursive: true, force: true })
  return out
}

async function buildDeb(log: (s: string) => void): Promise<string> {
  log('no build/package/saslgate_*.deb newer than its sources: running scripts/package')
  // The .deb only: the tarball's compression would double the time.
  const r = await run('bash', [join(ROOT_DIR, 'scripts/package'), '--no-tarball'], {
    timeoutMs: 20 * 60_000,
  })
  if (r.code !== 0) throw new Error(`scripts/package failed: ${r.stderr.slice(-2000)}`)
  const deb = r.stdout.split('\n').find((l) => l.endsWith('.deb'))
  if (deb === undefined) throw new Error('scripts/package printed no .deb')
  return deb
}

export async function runPackageTest(options: PackageTestOptions = {}): Promise<PackageTestReport> {
  const log = options.log ?? ((s: string) => process.stderr.write(`package-test: ${s}\n`))
  const t0 = performance.now()
  // The newest built .deb unless something that goes into it changed since: then build again.
  const deb = resolve(options.deb ?? freshDeb() ?? (await buildDeb(log)))
  const cacheDir = resolve(options.cacheDir ?? join(ROOT_DIR, '.cache/debootstrap-bookworm'))
  const mirror = options.mirror ?? process.env.SASLGATE_DEBIAN_MIRROR ?? hostMirror()
  const version = (await run('dpkg-deb', ['-f', deb, 'Version'])).stdout.trim()
  const checks: Check[] = []
  const check = (name: string, ok: boolean, detail: string) => {
    checks.push({ name, ok, detail })
    const at = ((performance.now() - t0) / 1000).toFixed(1)
    log(`${ok ? 'ok  ' : 'FAIL'} [${at} s] ${name}: ${detail}`)
  }

  // What is in the .deb, before installing it.
  const depends = (await run('dpkg-deb', ['-f', deb, 'Depends'])).stdout.trim()
  const names = depends.split(',').map((d) => d.trim().split(/\s/)[0])
  check(
    'Depends: Debian libraries only, no nodejs',
    ['libc6', 'libkrb5-3', 'libgssapi-krb5-2', 'libstdc++6'].every((n) => names.includes(n)) &&
      !names.some((n) => n?.startsWith('nodejs')),
    depends,
  )
  const listing = (await run('dpkg-deb', ['-c', deb], { timeoutMs: 60_000 })).stdout
  const has = (path: string) => listing.includes(` .${path}`)
  const need = [
    '/opt/saslgate/node/bin/node',
    '/opt/saslgate/dist/cli.js',
    '/opt/saslgate/native/build/Release/saslgate_krb5.node',
    '/opt/saslgate/node_modules/kerberos/build/Release/kerberos.node',
    '/opt/saslgate/node_modules/fastify/package.json',
    '/opt/saslgate/bin/saslgate',
    '/lib/systemd/system/saslgate.service',
    '/lib/systemd/system/saslgate-shim.service',
  ]
  // devDependencies of package.json must not be there (npm ci --omit=dev).
  const dev = ['typescript', 'tsx', '@biomejs/biome', 'fast-check', 'node-gyp']
  check(
    'contents: runtime, dist, addon, production node_modules only',
    need.every(has) && !dev.some((d) => has(`/opt/saslgate/node_modules/${d}/package.json`)),
    `missing: ${need.filter((p) => !has(p)).join(', ') || 'none'}; dev packages: ${dev.filter((d) => has(`/opt/saslgate/node_modules/${d}/package.json`)).join(', ') || 'none'}`,
  )

  const baseFromCache = await ensureBase(cacheDir, mirror, log)
  const tBase = performance.now()
  const root = join(cacheDir, 'run')
  const archives = join(cacheDir, 'apt-archives')
  let realm: Realm | undefined
  let passed = false
  let copySeconds = 0
  const forget = unmountOnExit(root)
  try {
    await removeRoot(root)
    const tCopy = performance.now()
    const cp = await run('cp', ['-a', join(cacheDir, 'base'), root], { timeoutMs: 300_000 })
    copySeconds = (performance.now() - tCopy) / 1000
    if (cp.code !== 0) throw new Error(`cp -a of the base failed: ${cp.stderr}`)
    mkdirSync(join(archives, 'partial'), { recursive: true })
    const mounts: [string[], string][] = [
      [['-t', 'proc', 'proc'], 'proc'],
      [['--bind', archives], 'var/cache/apt/archives'],
    ]
    for (const [args, at] of mounts) {
      const m = await run('mount', [...args, join(root, at)], { timeoutMs: 30_000 })
      if (m.code !== 0) throw new Error(`mount ${at}: ${m.stderr.trim()}`)
    }
    copyFileSync('/etc/resolv.conf', join(root, 'etc/resolv.conf'))

    // A fresh Debian 12 root: no Node at all (the package must bring its own).
    const node = await inRoot(root, ['sh', '-c', 'command -v node nodejs || echo none'])
    check('fresh root has no node', node.stdout.trim() === 'none', node.stdout.trim())

    // The host's realm, its krb5.conf and its keytab, the keytab as `ktadd` leaves it
    // (root 0600): postinst must warn and name the fix, and verify must say configuration.
    const host = await startRealm({ users: [{ name: 'alice', password: ALICE }] })
    realm = host
    copyFileSync(host.krb5ConfPath, join(root, 'etc/krb5.conf'))
    mkdirSync(join(root, 'etc/saslgate'), { recursive: true, mode: 0o755 })
    copyFileSync(host.keytabPath, join(root, 'etc/saslgate/krb5.keytab'))
    await inRoot(root, ['chmod', '0600', '/etc/saslgate/krb5.keytab'])
    copyFileSync(deb, join(root, 'tmp/saslgate.deb'))

    const tInstall0 = performance.now()
    const dpkg = await inRoot(root, ['dpkg', UNSAFE_IO, '-i', '/tmp/saslgate.deb'], {
      timeoutMs: 300_000,
    })
    let apt = await inRoot(root, [...APT, '--no-install-recommends', '-f', 'install'], {
      timeoutMs: 600_000,
    })
    if (apt.code !== 0) {
      // The cached lists may name files the mirror has replaced since: refresh once.
      log('apt-get -f install failed; apt-get update and again')
      await inRoot(root, [...APT, 'update'], { timeoutMs: 600_000 })
      apt = await inRoot(root, [...APT, '--no-install-recommends', '-f', 'install'], {
        timeoutMs: 600_000,
      })
    }
    const installSeconds = (performance.now() - tInstall0) / 1000
    check(
      'dpkg -i + apt-get -f install',
      apt.code === 0,
      `dpkg -i exit ${dpkg.code} (missing Depends expected), apt-get exit ${apt.code}${apt.code === 0 ? '' : `: ${apt.stderr.slice(-800)}`}`,
    )
    const status = await inRoot(root, [
      'dpkg-query',
      '-W',
      '-f',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not JavaScript
      '${Status} ${Version}',
      'saslgate',
    ])
    check(
      'installed and configured',
      status.stdout === `install ok installed ${version}`,
      status.stdout,
    )
    const installOutput = `${dpkg.stdout}${dpkg.stderr}${apt.stdout}${apt.stderr}`

    const ver = await inRoot(root, ['saslgate', '--version'])
    const upstream = version.replace(/~/g, '-')
    check(
      'saslgate --version',
      ver.code === 0 && new RegExp(`^saslgate ${upstream} \\(node v\\d+\\.`).test(ver.stdout),
      `exit ${ver.code}: ${ver.stdout.trim()}`,
    )
    const link = await inRoot(root, ['readlink', '/usr/bin/saslgate'])
    check(
      '/usr/bin/saslgate -> /opt/saslgate/bin/saslgate',
      link.stdout.trim() === '/opt/saslgate/bin/saslgate',
      link.stdout.trim(),
    )

    // What postinst made.
    const pw = (await inRoot(root, ['getent', 'passwd', 'saslgate'])).stdout.trim().split(':')
    check(
      'system user saslgate',
      pw.length === 7 &&
        Number(pw[2]) < 1000 &&
        pw[5] === '/nonexistent' &&
        pw[6] === '/usr/sbin/nologin',
      pw.join(':'),
    )
    const groups = (await inRoot(root, ['id', '-nG', 'saslgate'])).stdout.trim().split(/\s+/)
    check(
      'saslgate in groups saslgate and sasl',
      groups.includes('saslgate') && groups.includes('sasl'),
      groups.join(' '),
    )
    const modes = await inRoot(root, [
      'stat',
      '-c',
      '%n %U:%G %a',
      '/etc/saslgate',
      '/etc/saslgate/saslgate.env',
      '/etc/saslgate/saslgate-shim.env',
    ])
    check(
      '/etc/saslgate root:saslgate 0750, env files 0640',
      modes.stdout.trim() ===
        [
          '/etc/saslgate root:saslgate 750',
          '/etc/saslgate/saslgate.env root:saslgate 640',
          '/etc/saslgate/saslgate-shim.env root:saslgate 640',
        ].join('\n'),
      modes.stdout.trim().replace(/\n/g, '; '),
    )
    const conffiles = await inRoot(root, ['cat', '/var/lib/dpkg/info/saslgate.conffiles'])
    check(
      'env examples are conffiles',
      conffiles.stdout.includes('/etc/saslgate/saslgate.env') &&
        conffiles.stdout.includes('/etc/saslgate/saslgate-shim.env'),
      conffiles.stdout.trim().replace(/\n/g, ' '),
    )
    const units = await inRoot(root, [
      'grep',
      '-h',
      '^ExecStart=',
      '/lib/systemd/system/saslgate.service',
      '/lib/systemd/system/saslgate-shim.service',
    ])
    check(
      'units start the bundled runtime',
      units.code === 0 &&
        units.stdout
          .split('\n')
          .filter((l) => l.startsWith('ExecStart=/opt/saslgate/bin/saslgate ')).length === 2,
      units.stdout.trim().replace(/\n/g, '; '),
    )
    const fix = 'chgrp saslgate /etc/saslgate/krb5.keytab && chmod 0640 /etc/saslgate/krb5.keytab'
    check(
      'postinst warns about a root 0600 keytab, naming the fix',
      installOutput.includes(fix),
      installOutput
        .split('\n')
        .filter((l) => l.includes('saslgate: warning'))
        .join(' | ') || '(no warning)',
    )

    // saslgate verify as the unit's user with the unit's settings (as docs/migration.md runs it).
    const verify = (password: string) =>
      inRoot(
        root,
        [
          'sh',
          '-c',
          'set -a; . /etc/saslgate/saslgate.env; set +a; exec setpriv --reuid=saslgate --regid=saslgate --init-groups saslgate verify --principal alice',
        ],
        {
          input: `${password}\n`,
          timeoutMs: 60_000,
          env: {
            KRB5_KTNAME: '/etc/saslgate/krb5.keytab',
            KRB5_CONFIG: '/etc/krb5.conf',
            SASLGATE_KERBEROS_VERIFY_PRINCIPAL: host.servicePrincipal,
          },
        },
      )
    const unreadable = await verify(ALICE)
    check(
      'verify with the unreadable keytab: exit 78 naming it',
      unreadable.code === 78 && unreadable.stderr.includes('/etc/saslgate/krb5.keytab'),
      `exit ${unreadable.code}: ${unreadable.stderr.trim().slice(0, 300)}`,
    )

    await inRoot(root, ['chgrp', 'saslgate', '/etc/saslgate/krb5.keytab'])
    await inRoot(root, ['chmod', '0640', '/etc/saslgate/krb5.keytab'])
    const again = await inRoot(root, ['/var/lib/dpkg/info/saslgate.postinst', 'configure'])
    check(
      'postinst quiet once the keytab is root:saslgate 0640',
      again.code === 0 && !`${again.stdout}${again.stderr}`.includes('warning'),
      `exit ${again.code} ${`${again.stdout}${again.stderr}`.trim() || '(nothing said)'}`,
    )

    const before = await host.kdcRequestCount()
    const ok = await verify(ALICE)
    const after = await host.kdcRequestCount()
    check(
      'verify alice (right password) against the host realm: exit 0',
      ok.code === 0 &&
        ok.stdout.startsWith(`ok (ok) ${host.principal('alice')} `) &&
        after > before,
      `exit ${ok.code}: ${ok.stdout.trim()}; the host KDC saw ${after - before} requests`,
    )
    const bad = await verify(WRONG)
    check(
      'verify alice (wrong password): exit 1',
      bad.code === 1 && bad.stdout.startsWith('invalid '),
      `exit ${bad.code}: ${bad.stdout.trim()}`,
    )

    // docs/operations.md's upgrade and rollback: dpkg -i of a newer .deb, then of the old one.
    // An operator's edit of a conffile survives both; the keytab and the user stay; the old
    // version verifies again. (No systemd here: postinst's try-restart is not exercised.)
    const next = await withVersion(deb, `${version}+upgradetest1`, cacheDir)
    copyFileSync(next, join(root, 'tmp/saslgate-next.deb'))
    rmSync(next)
    const EDIT = '# edited by the operator before the upgrade'
    await inRoot(root, ['sh', '-c', `echo '${EDIT}' >> /etc/saslgate/saslgate.env`])
    const dpkgNoPrompt = ['dpkg', UNSAFE_IO, '--force-confdef', '--force-confold', '-i']
    const up = await inRoot(root, [...dpkgNoPrompt, '/tmp/saslgate-next.deb'], {
      timeoutMs: 300_000,
    })
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not JavaScript
    const upStatus = await inRoot(root, ['dpkg-query', '-W', '-f', '${Version}', 'saslgate'])
    const down = await inRoot(root, [...dpkgNoPrompt, '/tmp/saslgate.deb'], { timeoutMs: 300_000 })
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not JavaScript
    const downStatus = await inRoot(root, ['dpkg-query', '-W', '-f', '${Version}', 'saslgate'])
    const kept = await inRoot(root, ['grep', '-c', `^${EDIT}$`, '/etc/saslgate/saslgate.env'])
    const afterRollback = await verify(ALICE)
    check(
      'upgrade then rollback with dpkg -i: versions follow, conffile edit and keytab kept',
      up.code === 0 &&
        upStatus.stdout === `${version}+upgradetest1` &&
        down.code === 0 &&
        downStatus.stdout === version &&
        kept.stdout.trim() === '1' &&
        afterRollback.code === 0,
      `upgrade exit ${up.code} -> ${upStatus.stdout}; rollback exit ${down.code} -> ${downStatus.stdout}; ` +
        `edited line kept ${kept.stdout.trim()}x; verify after rollback exit ${afterRollback.code}`,
    )

    // Removal keeps the config and the user.
    const rm = await inRoot(root, ['dpkg', UNSAFE_IO, '-r', 'saslgate'], { timeoutMs: 120_000 })
    const left = await inRoot(root, [
      'sh',
      '-c',
      'for p in /opt/saslgate /usr/bin/saslgate /etc/saslgate/saslgate.env /etc/saslgate/krb5.keytab; do if [ -e "$p" ]; then echo "$p present"; else echo "$p gone"; fi; done; getent passwd saslgate >/dev/null && echo "user kept"',
    ])
    check(
      'dpkg -r: program gone, config, keytab and user kept',
      rm.code === 0 &&
        left.stdout.trim() ===
          [
            '/opt/saslgate gone',
            '/usr/bin/saslgate gone',
            '/etc/saslgate/saslgate.env present',
            '/etc/saslgate/krb5.keytab present',
            'user kept',
          ].join('\n'),
      `exit ${rm.code}; ${left.stdout.trim().replace(/\n/g, '; ')}`,
    )
    passed = checks.every((c) => c.ok)
    const total = (performance.now() - t0) / 1000
    return {
      deb,
      version,
      baseFromCache,
      seconds: { base: (tBase - t0) / 1000, copy: copySeconds, install: installSeconds, total },
      checks,
    }
  } finally {
    for (const c of live) c.kill('SIGKILL')
    await realm?.close()
    await unmountAll(root)
    forget()
    if (passed && options.keep !== true) await removeRoot(root)
  }
}

async function main(argv: string[]): Promise<number> {
  const options: PackageTestOptions = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--deb') options.deb = value()
    else if (a === '--cache') options.cacheDir = value()
    else if (a === '--mirror') options.mirror = value()
    else if (a === '--keep') options.keep = true
    else {
      process.stderr.write(
        'usage: scripts/test-package-debootstrap [--deb FILE] [--cache DIR] [--mirror URL] [--keep]\n',
      )
      return 64
    }
  }
  const report = await runPackageTest(options)
  const failed = report.checks.filter((c) => !c.ok)
  process.stdout.write(
    `${report.deb}: ${report.checks.length - failed.length}/${report.checks.length} checks passed; ` +
      `base ${report.baseFromCache ? 'cached' : 'made by debootstrap'} in ${report.seconds.base.toFixed(1)} s, ` +
      `copy ${report.seconds.copy.toFixed(1)} s, install ${report.seconds.install.toFixed(1)} s, total ${report.seconds.total.toFixed(1)} s\n`,
  )
  return failed.length === 0 ? 0 : 1
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`package-test: ${(err as Error)?.stack ?? String(err)}\n`)
      process.exit(1)
    },
  )
}
