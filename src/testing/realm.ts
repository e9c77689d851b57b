/**
 * A throw-away MIT Kerberos realm on 127.0.0.1 for tests, benchmarks and the demo.
 *
 * Real Debian tools (`kdb5_util`, `kadmin.local`, `krb5kdc -n`) in a fresh temp dir with its
 * own `krb5.conf` and `kdc.conf`. The KRB5_* variables go to the child processes only; this
 * process's environment and /etc are never touched. Plain async code, no test-framework
 * imports: the demo imports this file too.
 *
 * Measured here (2 cores): 2,000 password principals take ~11 s in one `kadmin.local` (PBKDF2 per
 * key), 2,000 `-randkey` ones ~1.3 s; so large password realms are built once, `kdb5_util dump`ed
 * to a cache dir and `kdb5_util load`ed next time (~0.1 s; the master password is fixed per
 * realm kind, so the dump's keys decrypt under the new stash).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { accessSync, closeSync, constants, openSync, rmSync } from 'node:fs'
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  open,
  readFile,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { SaslgateError } from '../errors.js'
import { freePort } from './ports.js'

export interface RealmUser {
  name: string
  password: string
}

export interface LockoutPolicy {
  maxFailure: number
  failureCountIntervalS: number
  lockoutDurationS: number
}

export interface RealmOptions {
  /** Realm name (upper case). */
  realm?: string
  /** Password principals, created `+requires_preauth`. */
  users?: readonly RealmUser[]
  /** Extra principals `bulk0001`... with random keys (cheap: no string-to-key). */
  randomKeyUsers?: number
  /** Unqualified service principal exported to `realm.keytab`. */
  servicePrincipal?: string
  /** Password principals whose password expired in 2000 (KDC_ERR_KEY_EXP). */
  expiredUsers?: readonly RealmUser[]
  /** Password principals with `-allow_tix` (KDC_ERR_CLIENT_REVOKED). */
  disabledUsers?: readonly RealmUser[]
  /** A lockout policy attached to every user principal (not the service principal). */
  lockout?: LockoutPolicy
  /** More krb5kdc processes serving the same database on other ports. */
  extraKdcs?: number
  /** `supported_enctypes` of the realm (keys of every new principal). */
  enctypes?: string
  /** Master password of the database (fixed so cached dumps load). */
  masterPassword?: string
  /** Use the dump cache: true, false, or undefined = when there are many password principals. */
  cache?: boolean
  cacheMinPasswordUsers?: number
  cacheDir?: string
  /** Bounded wait for a KDC to answer after spawning it. */
  startTimeoutMs?: number
  /** Bounded wait for a KDC to exit after SIGTERM (then SIGKILL). */
  stopTimeoutMs?: number
  /** Timeout of one kdb5_util / kadmin.local / kinit run (batches add a per-principal share). */
  toolTimeoutMs?: number
  toolTimeoutPerPrincipalMs?: number
  /** New ports tried when a KDC cannot bind its port. */
  portClashRetries?: number
  maxTicketLife?: string
}

export const DEFAULT_REALM_OPTIONS = {
  realm: 'SASLGATE.TEST',
  users: [] as readonly RealmUser[],
  randomKeyUsers: 0,
  servicePrincipal: 'host/saslgate.test',
  expiredUsers: [] as readonly RealmUser[],
  disabledUsers: [] as readonly RealmUser[],
  lockout: undefined as LockoutPolicy | undefined,
  extraKdcs: 0,
  enctypes: 'aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal',
  masterPassword: 'saslgate-test-realm-master',
  cache: undefined as boolean | undefined,
  cacheMinPasswordUsers: 50,
  cacheDir: join(tmpdir(), 'saslgate-realm-cache'),
  startTimeoutMs: 10_000,
  stopTimeoutMs: 5_000,
  toolTimeoutMs: 30_000,
  toolTimeoutPerPrincipalMs: 50,
  portClashRetries: 5,
  maxTicketLife: '10h',
}

/** The rogue realm's master password: a different master key from every real test realm. */
export const ROGUE_MASTER_PASSWORD = 'saslgate-rogue-realm-master'

/** Principal used to probe a KDC's readiness; excluded from `kdcRequestCount()`. */
export const PROBE_PRINCIPAL = 'saslgate-kdc-probe'

const HOST = '127.0.0.1'
const CACHE_FORMAT = 'v1'
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$/
const REALM_RE = /^[A-Z0-9][A-Z0-9.-]{0,63}$/
const ENCTYPES_RE = /^[a-z0-9-]+:[a-z0-9]+( [a-z0-9-]+:[a-z0-9]+)*$/
const MAX_PASSWORD_LENGTH = 256
const REQUEST_LINE_RE = /\]\(info\): (?:AS_REQ|TGS_REQ) \(/
const KADMIN_NOISE_RE =
  /^(?:WARNING: )?No policy specified for \S+; (?:defaulting to no|assigning)/i
/** Name of the lockout policy (attached after the keys are set: MIT refuses, under any policy,
 * a password equal to a name component, and test users often have such passwords). */
const LOCKOUT_POLICY = 'saslgate-lockout'

export interface KdcInfo {
  host: string
  port: number
  /** PID of the last krb5kdc started for this slot (0 if never). */
  pid: number
  running: boolean
}

export interface Realm {
  readonly name: string
  readonly dir: string
  readonly kdcs: readonly KdcInfo[]
  readonly krb5ConfPath: string
  readonly kdcConfPath: string
  readonly keytabPath: string
  /** Fully qualified, e.g. `host/saslgate.test@SASLGATE.TEST`. */
  readonly servicePrincipal: string
  /** KRB5_CONFIG, KRB5_KDC_PROFILE, KRB5_KTNAME (and KRB5RCACHEDIR) for child processes. */
  readonly env: Readonly<Record<string, string>>
  /** True when the database came from the dump cache. */
  readonly fromCache: boolean
  /** `name@REALM`. */
  principal(name: string): string
  /** Runs `kadmin.local -q QUERY`; resolves to its stdout. */
  kadmin(query: string): Promise<string>
  addUser(name: string, password: string, options?: { requiresPreauth?: boolean }): Promise<void>
  changePassword(name: string, password: string): Promise<void>
  /** AS_REQ + TGS_REQ lines in every KDC log of this realm (readiness probes excluded). */
  kdcRequestCount(): Promise<number>
  stopKdc(index: number): Promise<void>
  startKdc(index: number): Promise<void>
  close(): Promise<void>
}

type ResolvedOptions = typeof DEFAULT_REALM_OPTIONS

// ---------------------------------------------------------------------------------------------
// Best-effort cleanup if the process exits without close() (e.g. a crashed test run). The KDCs
// also get PR_SET_PDEATHSIG through setpriv, which covers a killed parent.

const liveChildren = new Set<ChildProcess>()
const liveDirs = new Set<string>()
let exitHookInstalled = false

function track(child?: ChildProcess, dir?: string): void {
  if (child !== undefined) liveChildren.add(child)
  if (dir !== undefined) liveDirs.add(dir)
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const c of liveChildren) {
      if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
        try {
          process.kill(c.pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
    }
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true })
  })
}

// ---------------------------------------------------------------------------------------------
// Options

function fail(message: string, cause?: unknown): never {
  throw new SaslgateError('SASLGATE_ERR_TEST_REALM', message, cause === undefined ? {} : { cause })
}

function configError(message: string): never {
  throw new SaslgateError('SASLGATE_ERR_CONFIG', message)
}

function resolveOptions(options: RealmOptions): ResolvedOptions {
  const o: ResolvedOptions = { ...DEFAULT_REALM_OPTIONS }
  for (const [key, value] of Object.entries(options)) {
    if (!(key in DEFAULT_REALM_OPTIONS)) configError(`realm option ${key} is unknown`)
    if (value !== undefined) (o as Record<string, unknown>)[key] = value
  }
  if (!REALM_RE.test(o.realm)) configError('realm option realm must be an upper-case realm name')
  if (!NAME_RE.test(o.servicePrincipal)) configError('realm option servicePrincipal is invalid')
  if (!ENCTYPES_RE.test(o.enctypes)) configError('realm option enctypes is invalid')
  for (const key of ['randomKeyUsers', 'extraKdcs', 'portClashRetries'] as const) {
    if (!Number.isSafeInteger(o[key]) || o[key] < 0) configError(`realm option ${key} must be >= 0`)
  }
  if (o.randomKeyUsers > 9999) configError('realm option randomKeyUsers must be <= 9999')
  const names = new Set([o.servicePrincipal, PROBE_PRINCIPAL])
  for (const list of ['users', 'expiredUsers', 'disabledUsers'] as const) {
    for (const [i, user] of o[list].entries()) {
      checkUser(user, `${list}[${i}]`)
      if (names.has(user.name)) configError(`realm option ${list}[${i}] repeats a principal name`)
      names.add(user.name)
    }
  }
  if (o.lockout !== undefined) {
    for (const [k, v] of Object.entries(o.lockout)) {
      if (!Number.isSafeInteger(v) || v < 0) configError(`realm option lockout.${k} must be >= 0`)
    }
  }
  return o
}

function checkUser(user: RealmUser, where: string): void {
  if (typeof user?.name !== 'string' || !NAME_RE.test(user.name)) {
    configError(`realm option ${where}.name is not a plain principal name`)
  }
  if (/^bulk\d{4}$/.test(user.name)) configError(`realm option ${where}.name is reserved`)
  checkPassword(user.password, `${where}.password`)
}

function checkPassword(password: string, where: string): void {
  if (
    typeof password !== 'string' ||
    password.length === 0 ||
    password.length > MAX_PASSWORD_LENGTH ||
    /[\0\r\n]/.test(password)
  ) {
    configError(`realm option ${where} must be 1-${MAX_PASSWORD_LENGTH} chars without NUL/CR/LF`)
  }
}

// ---------------------------------------------------------------------------------------------
// Tools

function findTool(name: string): string {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/usr/bin',
    '/sbin',
    '/usr/local/sbin',
  ]
  for (const dir of dirs) {
    if (dir === '') continue
    const path = join(dir, name)
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // not here
    }
  }
  return fail(`${name} not found (install the Debian krb5-kdc, krb5-admin-server, krb5-user)`)
}

function optionalTool(name: string): string | undefined {
  try {
    return findTool(name)
  } catch {
    return undefined
  }
}

interface ToolResult {
  code: number | null
  stdout: string
  stderr: string
}

function childEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    LANG: 'C',
    LC_ALL: 'C',
    ...env,
  }
}

/** Runs a short-lived tool with a bounded time; `input` goes to its stdin. Never throws. */
function runTool(
  file: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  timeoutMs: number,
  input = '',
): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env: childEnv(env), stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.stdin.on('error', () => {}) // EPIPE if the tool exits early: its exit code tells
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    timer.unref()
    child.on('error', (e) => {
      clearTimeout(timer)
      resolve({ code: null, stdout: '', stderr: String(e) })
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      })
    })
    child.stdin.end(input)
  })
}

/** Quotes an argument for kadmin's command-line parser (double quotes, `""` for a quote). */
function kq(value: string): string {
  return `"${value.replaceAll('"', '""')}"`
}

/** Removes every secret (and any `-pw ARG`) from text headed for an error message. */
function redact(text: string, secrets: readonly string[]): string {
  let out = text.replace(/-pw\s+("(?:[^"]|"")*"|\S+)/g, '-pw ***')
  for (const s of secrets) if (s.length > 0) out = out.replaceAll(s, '***')
  return out
}

function kadminErrors(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !KADMIN_NOISE_RE.test(l))
}

function tail(text: string, lines = 15): string {
  return text.split('\n').slice(-lines).join('\n')
}

// ---------------------------------------------------------------------------------------------
// Configuration files

function renderKdcConf(o: ResolvedOptions, dir: string, port: number, logPath: string): string {
  const listen = `${HOST}:${port}`
  return `[kdcdefaults]
  kdc_listen = ${listen}
  kdc_tcp_listen = ${listen}

[realms]
  ${o.realm} = {
    database_name = ${join(dir, 'db', 'principal')}
    key_stash_file = ${join(dir, 'stash')}
    acl_file = ${join(dir, 'kadm5.acl')}
    kdc_listen = ${listen}
    kdc_tcp_listen = ${listen}
    master_key_type = aes256-cts-hmac-sha1-96
    supported_enctypes = ${o.enctypes}
    max_life = ${o.maxTicketLife}
    max_renewable_life = 0
  }

[logging]
  kdc = FILE:${logPath}
  admin_server = FILE:${join(dir, 'kadmin.log')}
  default = FILE:${join(dir, 'default.log')}
`
}

function renderKrb5Conf(realm: string, ports: readonly number[]): string {
  const kdcs = ports.map((p) => `    kdc = ${HOST}:${p}\n`).join('')
  return `[libdefaults]
  default_realm = ${realm}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  rdns = false
  dns_canonicalize_hostname = false
  noaddresses = true
  forwardable = false
  proxiable = false
  udp_preference_limit = 1465

[realms]
  ${realm} = {
${kdcs}  }

[domain_realm]
`
}

// ---------------------------------------------------------------------------------------------
// Database

function principalCount(o: ResolvedOptions): { password: number; total: number } {
  const password = o.users.length + o.expiredUsers.length + o.disabledUsers.length
  return { password, total: password + o.randomKeyUsers + 2 }
}

function buildCommands(o: ResolvedOptions): string[] {
  const cmds: string[] = []
  for (const u of o.users) cmds.push(`addprinc +requires_preauth -pw ${kq(u.password)} ${u.name}`)
  for (const u of o.expiredUsers) {
    cmds.push(`addprinc +requires_preauth -pw ${kq(u.password)} ${u.name}`)
  }
  for (const u of o.disabledUsers) {
    cmds.push(`addprinc +requires_preauth -allow_tix -pw ${kq(u.password)} ${u.name}`)
  }
  for (let i = 1; i <= o.randomKeyUsers; i++) {
    cmds.push(`addprinc +requires_preauth -randkey ${bulkName(i)}`)
  }
  cmds.push(`addprinc -randkey ${o.servicePrincipal}`)
  cmds.push(`addprinc -randkey ${PROBE_PRINCIPAL}`)
  if (o.lockout !== undefined) {
    const l = o.lockout
    cmds.push(
      `add_policy -maxfailure ${l.maxFailure} -failurecountinterval ${l.failureCountIntervalS}s ` +
        `-lockoutduration ${l.lockoutDurationS}s ${LOCKOUT_POLICY}`,
    )
    for (const u of [...o.users, ...o.expiredUsers, ...o.disabledUsers]) {
      cmds.push(`modprinc -policy ${LOCKOUT_POLICY} ${u.name}`)
    }
    for (let i = 1; i <= o.randomKeyUsers; i++) {
      cmds.push(`modprinc -policy ${LOCKOUT_POLICY} ${bulkName(i)}`)
    }
  }
  // Last: attaching a policy recomputes (here: clears) the password expiration.
  for (const u of o.expiredUsers) {
    cmds.push(`modprinc -pwexpire ${kq('2000-01-01 00:00:00 UTC')} ${u.name}`)
  }
  return cmds
}

function bulkName(i: number): string {
  return `bulk${String(i).padStart(4, '0')}`
}

function cacheKey(o: ResolvedOptions): string {
  const material = JSON.stringify([
    CACHE_FORMAT,
    o.realm,
    o.users,
    o.expiredUsers,
    o.disabledUsers,
    o.randomKeyUsers,
    o.servicePrincipal,
    o.lockout ?? null,
    o.enctypes,
    o.masterPassword,
    o.maxTicketLife,
  ])
  return createHash('sha256').update(material).digest('hex').slice(0, 32)
}

// ---------------------------------------------------------------------------------------------
// One krb5kdc process slot

class KdcSlot {
  port: number
  pid = 0
  child: ChildProcess | undefined
  alive = false
  exited: Promise<void> = Promise.resolve()
  readonly confPath: string
  readonly logPath: string
  readonly probeConfPath: string
  readonly outPath: string
  readonly errPath: string

  constructor(
    readonly index: number,
    dir: string,
    port: number,
  ) {
    this.port = port
    this.confPath = index === 0 ? join(dir, 'kdc.conf') : join(dir, `kdc-${index}.conf`)
    this.logPath = join(dir, `kdc-${index}.log`)
    this.probeConfPath = join(dir, `probe-${index}.conf`)
    this.outPath = join(dir, `kdc-${index}.out`)
    this.errPath = join(dir, `kdc-${index}.err`)
  }

  get running(): boolean {
    return this.alive
  }
}

// ---------------------------------------------------------------------------------------------
// The realm

class TestRealm implements Realm {
  readonly name: string
  readonly krb5ConfPath: string
  readonly kdcConfPath: string
  readonly keytabPath: string
  readonly servicePrincipal: string
  readonly env: Readonly<Record<string, string>>
  fromCache = false
  private readonly slots: KdcSlot[] = []
  private readonly probeKeytabPath: string
  private readonly logCounters = new Map<string, { offset: number; count: number; rest: string }>()
  private readonly tools: { kadmin: string; kdb5: string; krb5kdc: string; kinit: string }
  private readonly setpriv: string | undefined
  private closing: Promise<void> | undefined

  constructor(
    private readonly o: ResolvedOptions,
    readonly dir: string,
  ) {
    this.name = o.realm
    this.krb5ConfPath = join(dir, 'krb5.conf')
    this.kdcConfPath = join(dir, 'kdc.conf')
    this.keytabPath = join(dir, 'realm.keytab')
    this.probeKeytabPath = join(dir, 'probe.keytab')
    this.servicePrincipal = this.principal(o.servicePrincipal)
    this.env = Object.freeze({
      KRB5_CONFIG: this.krb5ConfPath,
      KRB5_KDC_PROFILE: this.kdcConfPath,
      KRB5_KTNAME: `FILE:${this.keytabPath}`,
      KRB5RCACHEDIR: join(dir, 'rcache'),
    })
    this.tools = {
      kadmin: findTool('kadmin.local'),
      kdb5: findTool('kdb5_util'),
      krb5kdc: findTool('krb5kdc'),
      kinit: findTool('kinit'),
    }
    this.setpriv = optionalTool('setpriv')
  }

  get kdcs(): readonly KdcInfo[] {
    return this.slots.map((s) => ({ host: HOST, port: s.port, pid: s.pid, running: s.running }))
  }

  principal(name: string): string {
    return `${name}@${this.name}`
  }

  // -- setup ------------------------------------------------------------------------------------

  async setup(): Promise<void> {
    await mkdir(join(this.dir, 'db'), { mode: 0o700 })
    await mkdir(join(this.dir, 'rcache'), { mode: 0o700 })
    await writeFile(join(this.dir, 'kadm5.acl'), '')
    const ports: number[] = []
    for (let i = 0; i <= this.o.extraKdcs; i++) {
      let port = await freePort()
      for (let n = 0; ports.includes(port) && n < 20; n++) port = await freePort()
      ports.push(port)
      this.slots.push(new KdcSlot(i, this.dir, port))
    }
    await this.writeConfigs()
    await this.buildDatabase()
    await this.exportKeytab(this.keytabPath, this.o.servicePrincipal)
    await this.exportKeytab(this.probeKeytabPath, PROBE_PRINCIPAL)
    for (const slot of this.slots) await this.launch(slot, true)
  }

  private async writeConfigs(): Promise<void> {
    const ports = this.slots.map((s) => s.port)
    await writeFile(this.krb5ConfPath, renderKrb5Conf(this.name, ports))
    for (const s of this.slots) {
      await writeFile(s.confPath, renderKdcConf(this.o, this.dir, s.port, s.logPath))
      await writeFile(s.probeConfPath, renderKrb5Conf(this.name, [s.port]))
    }
  }

  private async buildDatabase(): Promise<void> {
    const counts = principalCount(this.o)
    const useCache = this.o.cache ?? counts.password >= this.o.cacheMinPasswordUsers
    await this.kdb5(['create', '-s', '-P', this.o.masterPassword, '-r', this.name], 'create')
    const cached = join(this.o.cacheDir, `${cacheKey(this.o)}.dump`)
    if (useCache && (await fileSize(cached)) > 0) {
      try {
        await this.kdb5(['load', cached], 'load', true)
        this.fromCache = true
        return
      } catch {
        // an unusable dump (another kdb5 version?): build and store a new one
      }
    }
    const timeoutMs = this.o.toolTimeoutMs + counts.total * this.o.toolTimeoutPerPrincipalMs
    await this.kadminBatch(buildCommands(this.o), timeoutMs)
    if (useCache) await this.storeDump(cached)
  }

  private async storeDump(cached: string): Promise<void> {
    const local = join(this.dir, 'cache.dump')
    await this.kdb5(['dump', local], 'dump')
    await mkdir(this.o.cacheDir, { recursive: true, mode: 0o700 })
    const tmp = `${cached}.${process.pid}.${Date.now()}.tmp`
    await copyFile(local, tmp)
    await chmod(tmp, 0o600)
    await rename(tmp, cached) // atomic: concurrent builders each write a complete dump
  }

  private async kdb5(args: string[], step: string, quiet = false): Promise<void> {
    const r = await runTool(
      this.tools.kdb5,
      ['-r', this.name, ...args],
      this.env,
      this.o.toolTimeoutMs,
    )
    if (r.code !== 0) {
      if (quiet) fail(`kdb5_util ${step} failed`)
      fail(
        `kdb5_util ${step} failed (exit ${r.code}): ${tail(redact(r.stderr, [this.o.masterPassword]))}`,
      )
    }
  }

  private async exportKeytab(path: string, name: string): Promise<void> {
    await this.kadminBatch([`ktadd -norandkey -k ${kq(path)} ${name}`], this.o.toolTimeoutMs)
  }

  /** Feeds commands to one kadmin.local on stdin; fails on any error line it prints. */
  private async kadminBatch(
    commands: readonly string[],
    timeoutMs: number,
    secrets: string[] = [],
  ): Promise<void> {
    const input = `${commands.join('\n')}\nquit\n`
    const r = await runTool(this.tools.kadmin, ['-r', this.name], this.env, timeoutMs, input)
    const errors = kadminErrors(r.stderr)
    if (r.code !== 0 || errors.length > 0) {
      const all = [...secrets, ...this.allPasswords()]
      const detail = redact(errors.slice(0, 5).join('\n'), all)
      fail(`kadmin.local failed (exit ${r.code}, ${errors.length} error lines): ${detail}`)
    }
  }

  private allPasswords(): string[] {
    return [...this.o.users, ...this.o.expiredUsers, ...this.o.disabledUsers].map((u) => u.password)
  }

  // -- KDC processes -----------------------------------------------------------------------------

  private async launch(slot: KdcSlot, mayMove: boolean): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.spawnAndProbe(slot)
      if (outcome === 'ready') return
      if (outcome !== 'clash' || !mayMove || attempt >= this.o.portClashRetries) {
        const log = await readFile(slot.logPath, 'utf8').catch(() => '')
        const err = await readFile(slot.errPath, 'utf8').catch(() => '')
        fail(
          `krb5kdc #${slot.index} on ${HOST}:${slot.port} did not start (${outcome})\n` +
            `--- kdc log ---\n${tail(log)}\n--- stderr ---\n${tail(err)}`,
        )
      }
      slot.port = await freePort()
      await this.writeConfigs()
    }
  }

  private async spawnAndProbe(slot: KdcSlot): Promise<'ready' | 'clash' | 'exited' | 'timeout'> {
    const logStart = await fileSize(slot.logPath)
    const outFd = openSync(slot.outPath, 'a')
    const errFd = openSync(slot.errPath, 'a')
    const env = childEnv({ ...this.env, KRB5_KDC_PROFILE: slot.confPath })
    const kdcArgs = ['-n', '-r', this.name]
    const [file, args] =
      this.setpriv === undefined
        ? [this.tools.krb5kdc, kdcArgs]
        : [this.setpriv, ['--pdeathsig', 'TERM', '--', this.tools.krb5kdc, ...kdcArgs]]
    let child: ChildProcess
    try {
      child = spawn(file, args, { env, stdio: ['ignore', outFd, errFd] })
    } finally {
      closeSync(outFd)
      closeSync(errFd)
    }
    slot.child = child
    slot.pid = child.pid ?? 0
    slot.alive = child.pid !== undefined
    track(child)
    slot.exited = new Promise((resolve) => {
      const gone = () => {
        slot.alive = false
        liveChildren.delete(child)
        resolve()
      }
      child.once('exit', gone)
      child.once('error', gone)
    })
    child.unref()

    // Wait for "commencing operation" (sockets bound), then prove it answers with a real AS
    // exchange. Probing earlier could hit whoever holds the port and wait for a reply.
    const deadline = Date.now() + this.o.startTimeoutMs
    while (Date.now() < deadline) {
      const log = (await readFrom(slot.logPath, logStart)).toString('utf8')
      if (!slot.running) {
        await slot.exited
        return /Address already in use/i.test(log) ? 'clash' : 'exited'
      }
      if (log.includes('commencing operation') && (await this.probe(slot))) return 'ready'
      await sleep(20)
    }
    await this.stopSlot(slot)
    return 'timeout'
  }

  /** One real AS exchange against this KDC alone (keytab principal, memory ccache). */
  private async probe(slot: KdcSlot): Promise<boolean> {
    const env = {
      ...this.env,
      KRB5_CONFIG: slot.probeConfPath,
      KRB5CCNAME: `MEMORY:probe-${slot.index}`,
    }
    const args = ['-k', '-t', this.probeKeytabPath, this.principal(PROBE_PRINCIPAL)]
    const r = await runTool(this.tools.kinit, args, env, 3_000)
    return r.code === 0
  }

  private async stopSlot(slot: KdcSlot): Promise<void> {
    const child = slot.child
    if (child === undefined || !slot.running) return
    child.ref() // keep the loop alive until it is gone
    child.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.o.stopTimeoutMs)
      timer.unref() // the ref'd child keeps the loop alive while it runs
    })
    const late = await Promise.race([slot.exited.then(() => false), timedOut])
    clearTimeout(timer)
    if (late && slot.running) {
      child.kill('SIGKILL')
      await slot.exited
    }
    child.unref()
  }

  private slot(index: number): KdcSlot {
    const s = this.slots[index]
    if (s === undefined) configError(`realm ${this.name} has no KDC #${index}`)
    return s
  }

  private assertOpen(): void {
    if (this.closing !== undefined) {
      throw new SaslgateError('SASLGATE_ERR_CLOSED', `realm ${this.name} is closed`)
    }
  }

  async stopKdc(index: number): Promise<void> {
    this.assertOpen()
    await this.stopSlot(this.slot(index))
  }

  async startKdc(index: number): Promise<void> {
    this.assertOpen()
    const slot = this.slot(index)
    if (slot.running) return
    await this.launch(slot, false) // the port is in krb5.conf already: keep it
  }

  // -- administration ----------------------------------------------------------------------------

  async kadmin(query: string): Promise<string> {
    this.assertOpen()
    const r = await runTool(
      this.tools.kadmin,
      ['-r', this.name, '-q', query],
      this.env,
      this.o.toolTimeoutMs,
    )
    const errors = kadminErrors(r.stderr)
    if (r.code !== 0 || errors.length > 0) {
      const detail = redact(errors.slice(0, 5).join('\n'), this.allPasswords())
      fail(`kadmin.local -q ${redact(query, [])} failed (exit ${r.code}): ${detail}`)
    }
    return r.stdout
  }

  async addUser(
    name: string,
    password: string,
    options: { requiresPreauth?: boolean } = {},
  ): Promise<void> {
    this.assertOpen()
    checkUser({ name, password }, 'addUser')
    const flag = options.requiresPreauth === false ? '-requires_preauth' : '+requires_preauth'
    const cmds = [`addprinc ${flag} -pw ${kq(password)} ${name}`]
    if (this.o.lockout !== undefined) cmds.push(`modprinc -policy ${LOCKOUT_POLICY} ${name}`)
    await this.kadminBatch(cmds, this.o.toolTimeoutMs, [password])
  }

  async changePassword(name: string, password: string): Promise<void> {
    this.assertOpen()
    checkUser({ name, password }, 'changePassword')
    await this.kadminBatch([`cpw -pw ${kq(password)} ${name}`], this.o.toolTimeoutMs, [password])
  }

  async kdcRequestCount(): Promise<number> {
    this.assertOpen()
    const probe = ` ${this.principal(PROBE_PRINCIPAL)} for `
    let total = 0
    for (const slot of this.slots) {
      const c = this.logCounters.get(slot.logPath) ?? { offset: 0, count: 0, rest: '' }
      const chunk = await readFrom(slot.logPath, c.offset)
      c.offset += chunk.length
      const lines = (c.rest + chunk.toString('utf8')).split('\n')
      c.rest = lines.pop() ?? ''
      for (const line of lines) if (REQUEST_LINE_RE.test(line) && !line.includes(probe)) c.count++
      this.logCounters.set(slot.logPath, c)
      const partial = REQUEST_LINE_RE.test(c.rest) && !c.rest.includes(probe) ? 1 : 0
      total += c.count + partial
    }
    return total
  }

  // -- lifecycle -----------------------------------------------------------------------------------

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const slot of this.slots) await this.stopSlot(slot)
      await rm(this.dir, { recursive: true, force: true })
      liveDirs.delete(this.dir)
    })()
    return this.closing
  }
}

async function fileSize(path: string): Promise<number> {
  try {
    const h = await open(path, 'r')
    try {
      return (await h.stat()).size
    } finally {
      await h.close()
    }
  } catch {
    return 0
  }
}

async function readFrom(path: string, offset: number): Promise<Buffer> {
  let h: Awaited<ReturnType<typeof open>>
  try {
    h = await open(path, 'r')
  } catch {
    return Buffer.alloc(0)
  }
  try {
    const size = (await h.stat()).size
    if (size <= offset) return Buffer.alloc(0)
    const buf = Buffer.alloc(size - offset)
    const { bytesRead } = await h.read(buf, 0, buf.length, offset)
    return buf.subarray(0, bytesRead)
  } finally {
    await h.close()
  }
}

/**
 * Starts a throw-away realm: database, principals, keytab, and 1 + `extraKdcs` KDCs that answer
 * before this resolves. Call `close()` when done (also on failure paths).
 */
export async function startRealm(options: RealmOptions = {}): Promise<Realm> {
  const o = resolveOptions(options)
  const dir = await mkdtemp(join(tmpdir(), `saslgate-realm-${o.realm.toLowerCase()}-`))
  track(undefined, dir)
  let realm: TestRealm
  try {
    await chmod(dir, 0o700)
    realm = new TestRealm(o, dir)
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    liveDirs.delete(dir)
    throw err
  }
  try {
    await realm.setup()
  } catch (err) {
    await realm.close()
    throw err
  }
  return realm
}

/**
 * A rogue realm: the SAME realm name, an independent database with a different master key, the
 * given users with attacker-chosen passwords and its own copy of the service principal (random,
 * different key). A ticket from it must not verify against the real realm's keytab.
 */
export async function startRogueKdc(
  realmName: string,
  users: readonly RealmUser[],
  options: RealmOptions = {},
): Promise<Realm> {
  return startRealm({
    ...options,
    realm: realmName,
    users,
    masterPassword: options.masterPassword ?? ROGUE_MASTER_PASSWORD,
  })
}
