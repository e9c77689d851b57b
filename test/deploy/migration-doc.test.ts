/**
 * docs/migration.md against what it names (issue 22, blocker 2). The fenced shell commands are
 * extracted and each is checked against the units in deploy/systemd and the real CLI: unit
 * names exist, `saslgate` subcommands and flags exist, socket paths agree between the units,
 * the trial copy, the drop-in and the doc, the cut-over *restarts* the unit (never only
 * `enable --now`), saslauthd is masked and the rollback undoes it. Where a command can run here
 * it does: the doc's own `sed` makes the trial unit from copies of the real ones (then
 * `systemd-analyze verify`), and the post-cut-over checklist runs against a real saslgate on a
 * real KDC (testsaslauthd's reply texts, /readyz, /metrics, the decision log line). There is no
 * systemd to start units here (no PID 1 systemd), so what systemctl would do is checked from
 * the unit files (Conflicts=, After=).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { envName, options } from '../../src/config.js'
import { realmUsers, startSingleHost } from '../../src/testing/deployment.js'
import { freePort } from '../../src/testing/ports.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { SASLGATE_BIN, type SaslgateProcess } from '../../src/testing/saslgate-process.js'
import { TESTSASLAUTHD } from '../support/binaries.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '')
const DOC = readFileSync(join(ROOT, 'docs/migration.md'), 'utf8')
const UNITS_DIR = join(ROOT, 'deploy/systemd')
const SYSTEM_DIR = '/etc/systemd/system'
const ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p))

interface Block {
  section: string
  /** Logical command lines: continuations joined, comments and heredoc bodies removed. */
  lines: string[]
  /** The trailing comment of each line ('' when none), same index as `lines`. */
  comments: string[]
  /** Heredoc bodies by the path they are written to (`cat > PATH <<'EOF'`). */
  heredocs: Map<string, string>
}

/** Splits off a trailing `# comment` that is outside quotes and starts a word. */
function splitComment(line: string): [string, string] {
  let quote: string | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote !== undefined) {
      if (c === quote) quote = undefined
      else if (c === '\\' && quote === '"') i++
    } else if (c === "'" || c === '"') quote = c
    else if (c === '\\') i++
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!)))
      return [line.slice(0, i).trimEnd(), line.slice(i + 1).trim()]
  }
  return [line, '']
}

function shellBlocks(markdown: string): Block[] {
  const out: Block[] = []
  let section = ''
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const heading = lines[i]!.match(/^## (.*)$/)
    if (heading !== null) section = heading[1]!
    if (lines[i] !== '```sh') continue
    const block: Block = { section, lines: [], comments: [], heredocs: new Map() }
    let pending = ''
    for (i++; lines[i] !== '```'; i++) {
      assert.ok(i < lines.length, 'unterminated ```sh block')
      const [code, comment] = splitComment(lines[i]!)
      const doc = code.match(/^cat > (\S+) <<'(\w+)'$/)
      if (doc !== null) {
        const body: string[] = []
        for (i++; lines[i] !== doc[2]; i++) body.push(lines[i]!)
        block.heredocs.set(doc[1]!, body.join('\n'))
        block.lines.push(`cat > ${doc[1]}`)
        block.comments.push('')
        continue
      }
      if (code.endsWith('\\')) {
        pending += `${code.slice(0, -1).trim()} `
        continue
      }
      const full = (pending + code.trim()).trim()
      pending = ''
      if (full === '') continue
      block.lines.push(full)
      block.comments.push(comment)
    }
    out.push(block)
  }
  return out
}

/** Words of one simple command (quotes removed; `$(...)` kept as one word). */
function words(command: string): string[] {
  const out: string[] = []
  let cur = ''
  let quote: string | undefined
  let depth = 0
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!
    if (quote !== undefined) {
      if (c === quote) quote = undefined
      else cur += c
    } else if (c === '$' && command[i + 1] === '(') {
      depth++
      cur += c
    } else if (depth > 0) {
      if (c === ')') depth--
      cur += c
    } else if (c === "'" || c === '"') quote = c
    else if (/\s/.test(c)) {
      if (cur !== '') out.push(cur)
      cur = ''
    } else cur += c
  }
  if (cur !== '') out.push(cur)
  return out
}

/** Simple commands of a line: split on && || ; | outside quotes and $(...), subshell parens off. */
function commands(line: string): string[][] {
  const parts: string[] = []
  let cur = ''
  let quote: string | undefined
  let depth = 0
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote !== undefined) {
      if (c === quote) quote = undefined
    } else if (c === "'" || c === '"') quote = c
    else if (c === '$' && line[i + 1] === '(') depth++
    else if (c === ')' && depth > 0) depth--
    else if (depth === 0 && (c === ';' || c === '|' || c === '&')) {
      parts.push(cur)
      cur = ''
      if (line[i + 1] === c) i++
      continue
    }
    cur += c
  }
  parts.push(cur)
  return parts
    .map((p) => {
      // a subshell's own parens: `( a; b` ... `c )`, never the `)` closing a `$(...)`
      let part = p.trim().replace(/^\(\s+/, '')
      if (part.split(')').length > part.split('(').length)
        part = part.replace(/\s*\)(\s*<.*)?$/, '$1')
      return part.trim()
    })
    .filter((p) => p !== '')
    .map(words)
}

const blocks = shellBlocks(DOC)
const all = blocks.flatMap((b) => b.lines.flatMap((l) => commands(l).map((w) => ({ w, b }))))
const inSection = (re: RegExp) => blocks.filter((b) => re.test(b.section))
const linesOf = (re: RegExp) => inSection(re).flatMap((b) => b.lines)

const deployUnits = ['saslgate', 'saslgate-shim']
const unitText = (name: string) => readFileSync(join(UNITS_DIR, `${name}.service`), 'utf8')
const unitValues = (text: string, key: string) =>
  [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!)

/** The CLI's own usage text: its commands and every flag it names. */
const usage = spawnSync(process.execPath, [SASLGATE_BIN, '--help'], { encoding: 'utf8' }).stdout
const cliCommands = new Set([...usage.matchAll(/^ {2}([a-z]+)\b/gm)].map((m) => m[1]!))
const cliFlags = new Set([...usage.matchAll(/(--[a-z][a-z-]*)/g)].map((m) => m[1]!))

/** `$UNIT` stands for each value the doc assigns it. */
const unitChoices = all.filter(({ w }) => w[0]?.startsWith('UNIT=')).map(({ w }) => w[0]!.slice(5))

function expandUnit(name: string): string[] {
  const bare = name.replace(/\.service$/, '')
  return bare === '$UNIT' ? unitChoices : [bare]
}

describe('docs/migration.md: the shell commands against the units and the CLI', () => {
  test('the guide has the steps the issue asks for, each with shell commands', () => {
    for (const re of [
      /^1\. Install/,
      /^2\. Side by side/,
      /^3\. Cut-over/,
      /^4\. Check/,
      /^5\. Roll back/,
    ])
      assert.ok(inSection(re).length > 0, `a section ${re} with a sh block`)
    assert.ok(all.length > 40, `${all.length} commands extracted`)
  })

  test('$UNIT is each unit in deploy/systemd, and only those', () => {
    assert.deepEqual([...unitChoices].sort(), deployUnits)
    for (const u of deployUnits) assert.ok(existsSync(join(UNITS_DIR, `${u}.service`)), u)
  })

  test('every systemctl command names a verb systemctl has and a unit that exists or is made', () => {
    const verbs = new Set([
      'daemon-reload',
      'start',
      'stop',
      'restart',
      'enable',
      'disable',
      'mask',
      'unmask',
      'is-active',
      'status',
    ])
    // made by the doc itself (the trial copy) or installed by Debian packages
    const made = new Set(['saslgate-trial', 'saslauthd'])
    let n = 0
    for (const { w } of all.filter(({ w }) => w[0] === 'systemctl')) {
      const [verb, ...rest] = w.slice(1).filter((x) => !x.startsWith('--'))
      assert.ok(verbs.has(verb!), `systemctl ${verb}`)
      for (const name of rest.flatMap(expandUnit)) {
        n++
        assert.ok(
          deployUnits.includes(name) || made.has(name),
          `systemctl ${verb} ${name}: no such unit`,
        )
      }
    }
    assert.ok(n > 15)
    // the trial is created (by the sed below) before any systemctl uses it
    const first = (pred: (w: string[]) => boolean) => all.findIndex(({ w }) => pred(w))
    assert.ok(
      first(
        (w) =>
          w.at(-1) === `${SYSTEM_DIR}/saslgate-trial.service` ||
          w.includes(`${SYSTEM_DIR}/saslgate-trial.service`),
      ) < first((w) => w[0] === 'systemctl' && w.includes('saslgate-trial')),
    )
  })

  test('every installed file comes from deploy/systemd and exists there', () => {
    const installs = all.filter(
      ({ w }) => w[0] === 'install' && w.some((x) => x.startsWith('deploy/')),
    )
    assert.ok(installs.length >= 4)
    for (const { w } of installs)
      for (const f of w.filter((x) => x.startsWith('deploy/')))
        assert.ok(existsSync(join(ROOT, f)), f)
  })

  test('every saslgate invocation uses a real subcommand and real flags', () => {
    const calls = all
      .map(({ w }) => w)
      .filter((w) => w[0] === 'saslgate' || w.some((x) => x.endsWith('/bin/saslgate.js')))
    const dropIns = blocks.flatMap((b) => [...b.heredocs.values()])
    for (const body of dropIns)
      for (const m of body.matchAll(/^ExecStart=(\S.*)$/gm)) calls.push(words(m[1]!))
    assert.ok(calls.length >= 3, `${calls.length} calls`)
    for (const w of calls) {
      const at = w.findIndex((x) => x.endsWith('/bin/saslgate.js'))
      assert.equal(w[at], '/opt/saslgate/bin/saslgate.js', 'the path the units use')
      assert.ok(
        cliCommands.has(w[at + 1]!),
        `saslgate ${w[at + 1]}: not a command (${[...cliCommands]})`,
      )
      for (const flag of w.slice(at + 2).filter((x) => x.startsWith('--')))
        assert.ok(cliFlags.has(flag), `saslgate ${w[at + 1]} ${flag}: not a flag`)
    }
  })

  test('every SASLGATE_* variable the guide names is an option', () => {
    const known = new Set(options().map(([name]) => envName(name)))
    const named = [...DOC.matchAll(/\b(SASLGATE_[A-Z0-9_]*[A-Z0-9])\b/g)].map((m) => m[1]!)
    assert.ok(named.length > 3)
    for (const n of named.filter((x) => !x.endsWith('_'))) assert.ok(known.has(n), n)
  })

  test('socket paths agree: the units, the trial copy, the drop-in and every testsaslauthd -f', () => {
    for (const u of deployUnits) {
      const text = unitText(u)
      assert.match(unitValues(text, 'ExecStart')[0]!, / \/run\/saslauthd\/mux$/, u)
      assert.deepEqual(unitValues(text, 'RuntimeDirectory'), ['saslauthd'], u)
    }
    // `a=$(testsaslauthd ... | cut ...)`: the command inside the substitution counts too
    const unwrap = (w: string[]) => {
      const sub = w.length === 1 ? w[0]!.match(/^\w+=\$\((.*)\)$/) : null
      return sub === null ? [w] : commands(sub[1]!)
    }
    const sockets = (re: RegExp) =>
      linesOf(re)
        .flatMap(commands)
        .flatMap(unwrap)
        .filter((w) => w[0] === 'testsaslauthd')
        .map((w) => w[w.indexOf('-f') + 1])
    // side by side: both daemons; from the cut-over on: only the real socket
    assert.deepEqual([...new Set(sockets(/^2\./))].sort(), [
      '/run/saslauthd/mux',
      '/run/saslgate/mux',
    ])
    for (const re of [/^4\./, /^5\./]) {
      const s = sockets(re)
      assert.ok(s.length > 0, `${re}: a testsaslauthd through the socket`)
      assert.deepEqual([...new Set(s)], ['/run/saslauthd/mux'], `${re}`)
    }
    // the drop-in's socket is where it lets the unit write
    const dropIn = blocks.flatMap((b) => [...b.heredocs.entries()])
    assert.equal(dropIn.length, 1)
    const [path, body] = dropIn[0]!
    assert.match(path, /^\/etc\/systemd\/system\/saslgate(-shim)?\.service\.d\/[\w-]+\.conf$/)
    const exec = body.match(/^ExecStart=\n?ExecStart=(.*)$/m)
    assert.ok(/^ExecStart=$/m.test(body), 'the drop-in resets ExecStart= first')
    const socket = words(exec?.[1] ?? body.match(/^ExecStart=(\S.*)$/m)![1]!).at(-1)!
    const rw = body.match(/^ReadWritePaths=(.*)$/m)?.[1]
    assert.equal(rw, socket.replace(/\/[^/]+$/, ''), 'ReadWritePaths= is the socket directory')
  })

  test('the cut-over restarts the unit onto the real socket; never only enable --now', () => {
    for (const { w, b } of all.filter(({ w }) => w[0] === 'systemctl' && w.includes('--now')))
      assert.ok(
        !w.slice(1).some((x) => expandUnit(x).some((u) => deployUnits.includes(u))) ||
          w[1] === 'disable' ||
          w[1] === 'stop',
        `${b.section}: "${w.join(' ')}" does nothing for a running unit`,
      )
    const cut = linesOf(/^3\./).flatMap(commands)
    const idx = (pred: (w: string[]) => boolean) => cut.findIndex(pred)
    const stopTrial = idx(
      (w) => w[0] === 'systemctl' && w[1] === 'stop' && w[2] === 'saslgate-trial',
    )
    const removeTrial = idx((w) => w[0] === 'rm' && w[1] === `${SYSTEM_DIR}/saslgate-trial.service`)
    const reload = idx((w) => w[0] === 'systemctl' && w[1] === 'daemon-reload')
    const restart = idx((w) => w[0] === 'systemctl' && w[1] === 'restart' && w[2] === '$UNIT')
    const enable = idx((w) => w[0] === 'systemctl' && w[1] === 'enable' && w[2] === '$UNIT')
    const mask = idx((w) => w[0] === 'systemctl' && w[1] === 'mask' && w[2] === 'saslauthd')
    for (const [what, at] of Object.entries({
      stopTrial,
      removeTrial,
      reload,
      restart,
      enable,
      mask,
    }))
      assert.ok(at >= 0, `cut-over: ${what}`)
    assert.ok(
      stopTrial < removeTrial && removeTrial < reload && reload < restart,
      'trial gone, then restart',
    )
    assert.ok(
      enable < restart && restart < mask,
      'enabled for boot, restarted, then saslauthd masked',
    )
    // what `restart` relies on, in every unit: it stops saslauthd, and only then starts
    for (const u of deployUnits) {
      const text = unitText(u)
      assert.deepEqual(unitValues(text, 'Conflicts'), ['saslauthd.service'], u)
      assert.ok(unitValues(text, 'After')[0]!.split(/\s+/).includes('saslauthd.service'), u)
      assert.ok(unitValues(text, 'RestartPreventExitStatus')[0]!.split(/\s+/).includes('73'), u)
    }
  })

  test('the rollback unmasks and restarts saslauthd, and disables the unit', () => {
    const back = linesOf(/^5\./).flatMap(commands)
    const at = (verb: string, unit: string) =>
      back.findIndex((w) => w[0] === 'systemctl' && w[1] === verb && w[2] === unit)
    assert.ok(
      at('unmask', 'saslauthd') >= 0 && at('unmask', 'saslauthd') < at('restart', 'saslauthd'),
    )
    assert.ok(at('disable', '$UNIT') >= 0)
    assert.ok(!back.some((w) => w[0] === 'systemctl' && w[1] === 'start'), 'restart, not start')
  })

  test("the doc's sed makes a trial unit: socket and directory moved, no conflict, else identical; systemd-analyze verify accepts it", () => {
    const sed = all.find(({ w }) => w[0] === 'sed')
    assert.ok(sed !== undefined)
    const line = sed.b.lines.find((l) => l.startsWith('sed '))!
    const dir = mkdtempSync(join(tmpdir(), 'saslgate-trial-'))
    try {
      for (const u of deployUnits) {
        // the installed unit, with paths pointing into this checkout (verify checks ExecStart)
        writeFileSync(
          join(dir, `${u}.service`),
          unitText(u)
            .replaceAll('/opt/saslgate', ROOT)
            .replaceAll('/usr/bin/node', process.execPath),
        )
        const cmd = line.replaceAll(`${SYSTEM_DIR}/`, `${dir}/`)
        // run nothing that could touch the machine: only sed, only into the temporary directory
        assert.match(cmd, /^sed (-e '[^']*' )+[^\s;&|]+ > [^\s;&|]+$/)
        assert.ok(!cmd.includes('/etc/'), cmd)
        const r = spawnSync('bash', ['-c', cmd], {
          env: { PATH: '/usr/bin:/bin', UNIT: u },
          encoding: 'utf8',
        })
        assert.equal(r.status, 0, r.stderr)
        const original = readFileSync(join(dir, `${u}.service`), 'utf8')
          .split('\n')
          .filter((l) => !l.startsWith('#'))
        const trial = readFileSync(join(dir, 'saslgate-trial.service'), 'utf8')
        assert.match(unitValues(trial, 'ExecStart')[0]!, / \/run\/saslgate\/mux$/)
        assert.deepEqual(unitValues(trial, 'RuntimeDirectory'), ['saslgate'])
        assert.deepEqual(unitValues(trial, 'Conflicts'), [])
        assert.ok(!unitValues(trial, 'After')[0]!.includes('saslauthd'))
        assert.ok(unitValues(trial, 'After')[0]!.includes('network-online.target'))
        // nothing else changed: same user, hardening, environment
        const changed = original.filter((l) => !trial.split('\n').includes(l))
        assert.deepEqual(
          changed.map((l) => l.split('=')[0]),
          ['Conflicts', 'After', 'ExecStart', 'RuntimeDirectory'],
          `${u}: ${changed.join(' | ')}`,
        )
        assert.ok(ANALYZE !== undefined, 'systemd-analyze (package systemd) is needed')
        const v = spawnSync(ANALYZE, ['verify', join(dir, 'saslgate-trial.service')], {
          encoding: 'utf8',
          timeout: 60_000,
        })
        const ours = `${v.stdout}${v.stderr}`
          .split('\n')
          .filter((l) => l.includes('saslgate-trial'))
        assert.equal(v.status, 0, `${v.stdout}${v.stderr}`)
        assert.deepEqual(ours, [])
      }
    } finally {
      void rm(dir, { recursive: true, force: true })
    }
  })

  test('the admin address the checklist asks is the one the single-host example sets', () => {
    const env = readFileSync(join(UNITS_DIR, 'saslgate.env'), 'utf8')
    const listen = env.match(/^SASLGATE_SERVICE_ADMIN_LISTEN=(.*)$/m)?.[1]
    assert.equal(listen, '127.0.0.1:9090')
    const curls = linesOf(/^4\./)
      .flatMap(commands)
      .filter((w) => w[0] === 'curl')
    assert.deepEqual(
      curls.map((w) => w.find((x) => x.startsWith('http'))),
      [`http://${listen}/readyz`, `http://${listen}/metrics`],
    )
  })
})

describe('docs/migration.md step 4, run against a real saslgate', { skip: !TESTSASLAUTHD }, () => {
  const PASSWORD = 'doc-Check-Pass-1'
  let realm: Realm
  let gate: SaslgateProcess
  let dir: string
  let admin: string
  let socket: string

  before(async () => {
    realm = await startRealm({ users: realmUsers({ test1: PASSWORD }) })
    dir = mkdtempSync(join(tmpdir(), 'saslgate-doc-check-'))
    socket = join(dir, 'mux')
    admin = `127.0.0.1:${await freePort()}`
    gate = await startSingleHost({
      realm,
      socket,
      env: {
        SASLGATE_SERVICE_ADMIN_LISTEN: admin,
        OTEL_TRACES_EXPORTER: 'none',
        OTEL_METRICS_EXPORTER: 'none',
      },
    })
  })

  after(async () => {
    await gate?.stop()
    await realm?.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  /** The checklist's lines, with the doc's socket, password file and admin address swapped. */
  const check = inSection(/^4\./)[0]!

  test('testsaslauthd through the socket prints exactly the replies the checklist shows', () => {
    const runs = check.lines
      .map((l, i) => ({ w: commands(l)[0]!, expect: check.comments[i]! }))
      .filter(({ w }) => w[0] === 'testsaslauthd')
    assert.equal(runs.length, 2)
    for (const { w, expect } of runs) {
      const args = w
        .slice(1)
        .map((a) =>
          a === '/run/saslauthd/mux' ? socket : a === '$(cat test1.password)' ? PASSWORD : a,
        )
      const r = spawnSync(TESTSASLAUTHD!, args, { encoding: 'utf8', timeout: 15_000 })
      assert.equal(r.stdout.trim(), expect, r.stderr)
    }
  })

  test('/readyz answers what the checklist shows, /metrics has the counter it greps, the log has decisions', async () => {
    const readyLine = check.lines.findIndex((l) => l.includes('/readyz'))
    const ready = await fetch(`http://${admin}/readyz`)
    assert.equal(ready.status, 200)
    assert.equal(await ready.text(), check.comments[readyLine])
    const grep = check.lines.find((l) => l.includes('/metrics'))!.match(/grep '([^']+)'/)![1]!
    const metrics = await (await fetch(`http://${admin}/metrics`)).text()
    assert.match(metrics, new RegExp(grep, 'm'))
    assert.match(metrics, /^saslgate_decisions_total\{[^}]*decision="ok"/m)
    assert.match(metrics, /^saslgate_decisions_total\{[^}]*decision="invalid"/m)
    const logGrep = check.lines
      .find((l) => l.startsWith('journalctl'))!
      .match(/grep '([^']+)'/)![1]!
    const decisions = gate
      .output()
      .split('\n')
      .filter((l) => l.includes(logGrep))
    assert.ok(
      decisions.some((l) => l.includes('"decision":"ok"')),
      gate.output(),
    )
    assert.ok(
      decisions.some((l) => l.includes('"decision":"invalid"')),
      gate.output(),
    )
    assert.ok(!gate.output().includes(PASSWORD), 'no password in the log')
  })
})
