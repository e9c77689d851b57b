/**
 * Configuration layering: schema defaults < the `--config` file < `SASLGATE_*` environment
 * variables < `--set` settings. Each layer is checked as it is read, so an unknown option
 * or a bad value fails at start naming the option (or the environment variable) and the
 * layer it came from, even when a later layer sets the same option. loadConfig is driven
 * directly, and the real CLI (`bin/saslgate.js`) once per layer to show it wires the same
 * layers in the same order.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { envName, type LoadOptions, loadConfig, options } from '../../src/config.js'
import { SCHEMA } from '../../src/config-schema.js'
import { isSaslgateError } from '../../src/errors.js'

const dir = mkdtempSync(join(tmpdir(), 'saslgate-config-'))
after(() => rmSync(dir, { recursive: true, force: true }))

let files = 0
function file(text: string, ext = 'yaml'): string {
  const p = join(dir, `c${files++}.${ext}`)
  writeFileSync(p, text)
  return p
}

/** Asserts loadConfig fails with SASLGATE_ERR_CONFIG and a message matching `message`. */
function refuses(load: LoadOptions, message: RegExp): void {
  assert.throws(
    () => loadConfig(load),
    (e: unknown) => {
      assert.ok(isSaslgateError(e, 'SASLGATE_ERR_CONFIG'), `not a config error: ${String(e)}`)
      assert.match(e.message, message)
      return true
    },
  )
}

const D = SCHEMA.pipeline.deadlineMs.default
const R = SCHEMA.saslauthd.readTimeoutMs.default

describe('config layers: defaults < file < SASLGATE_* < --set', () => {
  test('nothing given: every option has its schema default', () => {
    const config = loadConfig({ env: {} }) as unknown as Record<string, Record<string, unknown>>
    for (const [name, leaf] of options()) {
      const [section, key] = name.split('.') as [string, string]
      assert.deepEqual(config[section]?.[key], leaf.default, name)
    }
  })

  test('one option in two layers: the later layer wins, each pair of layers', () => {
    // Distinct values so the winner is visible, none equal to the default.
    const values = { file: D + 1, env: D + 2, set: D + 3 }
    assert.ok(!Object.values(values).includes(D))
    const f = file(`pipeline:\n  deadlineMs: ${values.file}\n`)
    const env = { [envName('pipeline.deadlineMs')]: String(values.env) }
    const settings = { 'pipeline.deadlineMs': String(values.set) }
    const cases: Array<[string, LoadOptions, number]> = [
      ['default < file', { file: f, env: {} }, values.file],
      ['default < env', { env }, values.env],
      ['default < --set', { env: {}, settings }, values.set],
      ['file < env', { file: f, env }, values.env],
      ['file < --set', { file: f, env: {}, settings }, values.set],
      ['env < --set', { env, settings }, values.set],
      ['file < env < --set', { file: f, env, settings }, values.set],
    ]
    for (const [name, load, want] of cases)
      assert.equal(loadConfig(load).pipeline.deadlineMs, want, name)
  })

  test('a layer changes only the options it names; the others keep the earlier layers', () => {
    const f = file(`pipeline:\n  deadlineMs: ${D + 1}\nsaslauthd:\n  readTimeoutMs: ${R + 1}\n`)
    const config = loadConfig({
      file: f,
      env: { SASLGATE_PIPELINE_DEADLINE_MS: String(D + 2) },
      settings: { 'saslauthd.fields': '5' },
    })
    assert.equal(config.pipeline.deadlineMs, D + 2, 'env over file')
    assert.equal(config.saslauthd.readTimeoutMs, R + 1, 'file kept: env and --set do not name it')
    assert.equal(config.saslauthd.fields, '5', '--set')
    assert.equal(
      config.saslauthd.answerDeadlineMs,
      SCHEMA.saslauthd.answerDeadlineMs.default,
      'default kept: no layer names it',
    )
  })

  test('every type is read from strings in env and --set like it is from YAML in the file', () => {
    const yaml = file(
      [
        'realm:',
        '  allowed: [A.ORG, B.ORG]',
        '  domainRealms: {a.org: A.ORG, b.org: B.ORG}',
        '  allowInstances: true',
        'kerberos:',
        '  kdcs: {A.ORG: [kdc1, "kdc2:88"], B.ORG: [kdc3]}',
        '',
      ].join('\n'),
    )
    const fromFile = loadConfig({ file: yaml, env: {} })
    const fromEnv = loadConfig({
      env: {
        SASLGATE_REALM_ALLOWED: 'A.ORG, B.ORG',
        SASLGATE_REALM_DOMAIN_REALMS: 'a.org=A.ORG,b.org=B.ORG',
        SASLGATE_REALM_ALLOW_INSTANCES: 'yes',
        SASLGATE_KERBEROS_KDCS: 'A.ORG=kdc1 kdc2:88;B.ORG=kdc3',
      },
    })
    const fromSet = loadConfig({
      env: {},
      settings: {
        'realm.allowed': 'A.ORG,B.ORG',
        'realm.domainRealms': 'a.org=A.ORG, b.org=B.ORG',
        'realm.allowInstances': 'on',
        'kerberos.kdcs': 'A.ORG=kdc1,kdc2:88; B.ORG=kdc3',
      },
    })
    for (const c of [fromFile, fromEnv, fromSet]) {
      assert.deepEqual(c.realm.allowed, ['A.ORG', 'B.ORG'])
      assert.deepEqual(c.realm.domainRealms, { 'a.org': 'A.ORG', 'b.org': 'B.ORG' })
      assert.equal(c.realm.allowInstances, true)
      assert.deepEqual(c.kerberos.kdcs, { 'A.ORG': ['kdc1', 'kdc2:88'], 'B.ORG': ['kdc3'] })
    }
  })

  test('the retry on the primary KDC: off by default, primaries per realm from each layer', () => {
    const defaults = loadConfig({ env: {} })
    assert.equal(defaults.kerberos.retryOnPrimary, false)
    assert.deepEqual(defaults.kerberos.primaryKdcs, {})
    const fromEnv = loadConfig({
      env: {
        SASLGATE_KERBEROS_RETRY_ON_PRIMARY: 'true',
        SASLGATE_KERBEROS_PRIMARY_KDCS: 'A.ORG=kdc1:88 [2001:db8::1]:750;B.ORG=kdc3',
      },
    })
    const fromFile = loadConfig({
      file: file(
        'kerberos:\n  retryOnPrimary: true\n  primaryKdcs: {A.ORG: ["kdc1:88", "[2001:db8::1]:750"], B.ORG: [kdc3]}\n',
      ),
      env: {},
    })
    for (const c of [fromEnv, fromFile]) {
      assert.equal(c.kerberos.retryOnPrimary, true)
      assert.deepEqual(c.kerberos.primaryKdcs, {
        'A.ORG': ['kdc1:88', '[2001:db8::1]:750'],
        'B.ORG': ['kdc3'],
      })
    }
    refuses(
      { env: {}, settings: { 'kerberos.retryOnPrimary': 'sometimes' } },
      /kerberos\.retryOnPrimary/,
    )
  })

  test('a JSON file is read like YAML; an empty file is all defaults', () => {
    const json = file(JSON.stringify({ pipeline: { deadlineMs: D + 5 } }), 'json')
    assert.equal(loadConfig({ file: json, env: {} }).pipeline.deadlineMs, D + 5)
    assert.equal(loadConfig({ file: file(''), env: {} }).pipeline.deadlineMs, D)
  })

  test('the result is deep-frozen', () => {
    const c = loadConfig({ env: {}, settings: { 'realm.allowed': 'A.ORG' } })
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.pipeline) && Object.isFrozen(c.realm.allowed))
    assert.throws(() => {
      ;(c.realm.allowed as string[]).push('EVIL.ORG')
    }, TypeError)
  })

  test('environment variables that are not SASLGATE_* are ignored', () => {
    const c = loadConfig({ env: { PIPELINE_DEADLINE_MS: '1', HOME: '/x', saslgate_x: '1' } })
    assert.equal(c.pipeline.deadlineMs, D)
  })
})

describe('config: unknown options, per layer', () => {
  test('file: an unknown section, an unknown option, a section that is not a mapping', () => {
    refuses({ file: file('pipelin:\n  deadlineMs: 500\n'), env: {} }, /pipelin: unknown section/)
    refuses(
      { file: file('pipeline:\n  deadlineMS: 500\n'), env: {} },
      /pipeline\.deadlineMS: unknown option/,
    )
    refuses({ file: file('pipeline: 500\n'), env: {} }, /pipeline: expected a mapping/)
    refuses({ file: file('- pipeline\n'), env: {} }, /must hold a mapping of sections/)
  })

  test('file: unreadable or not YAML names the file', () => {
    const missing = join(dir, 'missing.yaml')
    refuses({ file: missing, env: {} }, new RegExp(`config file ${missing}`))
    const broken = file('pipeline: {deadlineMs: [\n')
    refuses({ file: broken, env: {} }, new RegExp(`config file ${broken}`))
  })

  test('env: an unknown SASLGATE_* variable fails, even when empty', () => {
    refuses({ env: { SASLGATE_PIPELINE_DEADLINE: '500' } }, /SASLGATE_PIPELINE_DEADLINE: unknown/)
    refuses({ env: { SASLGATE_NOPE: '' } }, /SASLGATE_NOPE: unknown environment variable/)
  })

  test('--set: an unknown option fails; so does a section name alone', () => {
    refuses({ env: {}, settings: { 'pipeline.deadline': '500' } }, /pipeline\.deadline: unknown/)
    refuses({ env: {}, settings: { pipeline: '500' } }, /pipeline: unknown option/)
  })
})

describe('config: bad values, per layer, named with the layer they came from', () => {
  const min = SCHEMA.pipeline.deadlineMs.min
  const max = SCHEMA.pipeline.deadlineMs.max

  test('file: wrong types, out of range, not in the enum, NUL', () => {
    const cases: Array<[string, RegExp]> = [
      ['pipeline:\n  deadlineMs: "500"\n', /pipeline\.deadlineMs: expected an integer/],
      ['pipeline:\n  deadlineMs: 500.5\n', /pipeline\.deadlineMs: expected an integer/],
      [`pipeline:\n  deadlineMs: ${min - 1}\n`, /pipeline\.deadlineMs: \d+ is outside/],
      [`pipeline:\n  deadlineMs: ${max + 1}\n`, /pipeline\.deadlineMs: \d+ is outside/],
      ['saslauthd:\n  fields: 6\n', /saslauthd\.fields: expected one of auto, 4, 5/],
      ['realm:\n  allowInstances: "yes"\n', /realm\.allowInstances: expected true or false/],
      ['realm:\n  allowed: A.ORG\n', /realm\.allowed: expected a list of strings/],
      ['realm:\n  domainRealms: {a.org: [A.ORG]}\n', /realm\.domainRealms\.a\.org: expected a/],
      ['kerberos:\n  kdcs: {A.ORG: kdc1}\n', /kerberos\.kdcs\.A\.ORG: expected a list/],
      ['realm:\n  default: "A\\0B"\n', /realm\.default: NUL byte/],
    ]
    for (const [text, message] of cases) refuses({ file: file(text), env: {} }, message)
  })

  test('env: the message names the variable, not the option', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [
        { SASLGATE_PIPELINE_DEADLINE_MS: '5s' },
        /SASLGATE_PIPELINE_DEADLINE_MS: expected an integer/,
      ],
      [{ SASLGATE_PIPELINE_DEADLINE_MS: '' }, /SASLGATE_PIPELINE_DEADLINE_MS: expected an integer/],
      [
        { SASLGATE_PIPELINE_DEADLINE_MS: String(max + 1) },
        /SASLGATE_PIPELINE_DEADLINE_MS: \d+ is outside/,
      ],
      [{ SASLGATE_SASLAUTHD_FIELDS: 'six' }, /SASLGATE_SASLAUTHD_FIELDS: expected one of/],
      [
        { SASLGATE_REALM_ALLOW_INSTANCES: 'maybe' },
        /SASLGATE_REALM_ALLOW_INSTANCES: expected true/,
      ],
      [
        { SASLGATE_REALM_DOMAIN_REALMS: 'a.org' },
        /SASLGATE_REALM_DOMAIN_REALMS: expected key=value/,
      ],
    ]
    for (const [env, message] of cases) refuses({ env }, message)
  })

  test('--set: strings parsed like env values, other values checked as they are', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ 'pipeline.deadlineMs': 'soon' }, /pipeline\.deadlineMs: expected an integer/],
      [{ 'pipeline.deadlineMs': String(min - 1) }, /pipeline\.deadlineMs: \d+ is outside/],
      [{ 'pipeline.deadlineMs': true }, /pipeline\.deadlineMs: expected an integer/],
      [{ 'saslauthd.fields': '3' }, /saslauthd\.fields: expected one of/],
      [{ 'realm.allowInstances': 'sometimes' }, /realm\.allowInstances: expected true or false/],
      [{ 'kerberos.kdcs': '=kdc1' }, /kerberos\.kdcs: expected key=value/],
    ]
    for (const [settings, message] of cases) refuses({ env: {}, settings }, message)
  })

  test('a bad value is refused even when a later layer sets the same option well', () => {
    // Fail closed on a broken deployment file: an override must not hide it.
    refuses(
      {
        file: file('pipeline:\n  deadlineMs: fast\n'),
        env: { SASLGATE_PIPELINE_DEADLINE_MS: '900' },
      },
      /pipeline\.deadlineMs: expected an integer/,
    )
    refuses(
      {
        env: { SASLGATE_PIPELINE_DEADLINE_MS: 'fast' },
        settings: { 'pipeline.deadlineMs': '900' },
      },
      /SASLGATE_PIPELINE_DEADLINE_MS: expected an integer/,
    )
  })

  test('the whole-config check runs on the winning value: a later layer can fix socketMode', () => {
    // socketMode is a string per layer and checked as octal once all layers are merged.
    const bad = file('saslauthd:\n  socketMode: rwxrwx---\n')
    refuses({ file: bad, env: {} }, /saslauthd\.socketMode: expected an octal mode/)
    const fixed = loadConfig({ file: bad, env: { SASLGATE_SASLAUTHD_SOCKET_MODE: '0770' } })
    assert.equal(fixed.saslauthd.socketMode, '0770')
    refuses(
      {
        env: { SASLGATE_SASLAUTHD_SOCKET_MODE: '0770' },
        settings: { 'saslauthd.socketMode': '9' },
      },
      /saslauthd\.socketMode: expected an octal mode/,
    )
  })
})

describe('config through the real CLI', () => {
  const BIN = fileURLToPath(new URL('../../bin/saslgate.js', import.meta.url))
  // `verify` loads the configuration first and then, without --principal, stops with 64
  // before touching Kerberos: 64 means the layers loaded, 78 is a configuration error.
  function verify(args: string[], env: Record<string, string> = {}) {
    const clean = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('SASLGATE_')),
    )
    const r = spawnSync(process.execPath, [BIN, 'verify', ...args], {
      env: { ...clean, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    })
    return { code: r.status, stderr: r.stderr }
  }
  const badMode = file('saslauthd:\n  socketMode: rwx\n')
  const goodMode = file('saslauthd:\n  socketMode: "0770"\n')

  test('a bad --config value exits 78 naming the option; env over it loads', () => {
    const bad = verify(['--config', badMode])
    assert.equal(bad.code, 78, bad.stderr)
    assert.match(bad.stderr, /saslauthd\.socketMode: expected an octal mode/)
    const fixed = verify(['--config', badMode], { SASLGATE_SASLAUTHD_SOCKET_MODE: '0770' })
    assert.equal(fixed.code, 64, fixed.stderr)
    assert.match(fixed.stderr, /verify needs --principal/)
  })

  test('a bad SASLGATE_* over a good file exits 78; --set over it loads', () => {
    const env = { SASLGATE_SASLAUTHD_SOCKET_MODE: 'rwx' }
    const bad = verify(['--config', goodMode], env)
    assert.equal(bad.code, 78, bad.stderr)
    assert.match(bad.stderr, /saslauthd\.socketMode: expected an octal mode/)
    const fixed = verify(['--config', goodMode, '--set', 'saslauthd.socketMode=0700'], env)
    assert.equal(fixed.code, 64, fixed.stderr)
  })

  test('unknown options exit 78 from every layer, naming them', () => {
    const f = verify(['--config', file('saslauthd:\n  sockt: /x\n')])
    assert.equal(f.code, 78, f.stderr)
    assert.match(f.stderr, /saslauthd\.sockt: unknown option/)
    const e = verify([], { SASLGATE_SASLAUTHD_SOCKT: '/x' })
    assert.equal(e.code, 78, e.stderr)
    assert.match(e.stderr, /SASLGATE_SASLAUTHD_SOCKT: unknown environment variable/)
    const s = verify(['--set', 'saslauthd.sockt=/x'])
    assert.equal(s.code, 78, s.stderr)
    assert.match(s.stderr, /saslauthd\.sockt: unknown option/)
    const malformed = verify(['--set', 'saslauthd.socket'])
    assert.equal(malformed.code, 64, malformed.stderr)
    assert.match(malformed.stderr, /--set expects section\.key=value/)
  })
})
