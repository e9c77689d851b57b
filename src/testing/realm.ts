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
import { closeSync, openSync } from 'node:fs'
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { SaslgateError } from '../errors.js'
import { freePort } from './ports.js'
import { liveChildren, liveDirs, track } from './realm-cleanup.js'
import {
  buildCommands,
  cacheKey,
  HOST,
  kq,
  LOCKOUT_POLICY,
  principalCount,
  renderKdcConf,
  renderKrb5Conf,
} from './realm-config.js'
import { fileSize, readFrom } from './realm-files.js'
import {
  checkUser,
  configError,
  PROBE_PRINCIPAL,
  type RealmOptions,
  type RealmUser,
  type ResolvedOptions,
  resolveOptions,
} from './realm-options.js'
import {
  childEnv,
  fail,
  findTool,
  kadminErrors,
  optionalTool,
  redact,
  runTool,
  tail,
} from './realm-tools.js'

export {
  DEFAULT_REALM_OPTIONS,
  type LockoutPolicy,
  PROBE_PRINCIPAL,
  type RealmOptions,
  type RealmUser,
} from './realm-options.js'

/** The rogue realm's master password: a different master key from every real test realm. */
export const ROGUE_MASTER_PASSWORD = 'saslgate-rogue-realm-master'

const REQUEST_LINE_RE = /\]\(info\): (?:AS_REQ|TGS_REQ) \(/

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
  /**
   * AS_REQ + TGS_REQ lines in every KDC log of this realm, readiness probes excluded (the
   * realm's own, and saslgate's: an AS_REQ from the service principal for a TGT).
   */
  kdcRequestCount(): Promise<number>
  stopKdc(index: number): Promise<void>
  startKdc(index: number): Promise<void>
  close(): Promise<void>
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
    const gateProbe = ` ${this.servicePrincipal} for krbtgt/`
    const counted = (line: string) =>
      REQUEST_LINE_RE.test(line) && !line.includes(probe) && !line.includes(gateProbe)
    let total = 0
    for (const slot of this.slots) {
      const c = this.logCounters.get(slot.logPath) ?? { offset: 0, count: 0, rest: '' }
      const chunk = await readFrom(slot.logPath, c.offset)
      c.offset += chunk.length
      const lines = (c.rest + chunk.toString('utf8')).split('\n')
      c.rest = lines.pop() ?? ''
      for (const line of lines) if (counted(line)) c.count++
      this.logCounters.set(slot.logPath, c)
      const partial = counted(c.rest) ? 1 : 0
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
