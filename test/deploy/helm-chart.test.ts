/**
 * The Helm chart, rendered for real by tools/helm-render (Helm's engine semantics, no helm
 * binary needed) for its default values and every ci/*-values.yaml, under the release name
 * `saslgate` (the chart's own name: the full name collapses to it) and another one. Every rendered
 * object validates against the Kubernetes schemas (kubernetes-models, strict); the wiring is
 * asserted on the rendered objects: the secrets the flags name are mounted, the config the pod
 * reads loads with saslgate's loader under the pod's environment, the selectors select the pods.
 * The values schema (ajv, draft-07) is checked against the values the renderer coalesced, as
 * Helm validates them. `scripts/check-deploy.sh` adds helm lint and kubeconform when installed.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, posix } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { parseArgs } from 'node:util'
import { Ajv } from 'ajv'
import { parse as parseYaml } from 'yaml'
import { envName, loadConfig, options } from '../../src/config.js'
import { SCHEMA } from '../../src/config-schema.js'
import {
  at,
  CHART,
  isObj,
  type Obj,
  objectsOf,
  one,
  type Rendered,
  render,
  validateAll,
} from './helm.js'

const read = (rel: string) => readFileSync(join(CHART, rel), 'utf8')

/** Options the chart sets itself (flags, env, mounts): refused in `config`. */
const CHART_MANAGED = [
  'kerberos.config',
  'kerberos.keytab',
  'service.listen',
  'service.adminListen',
  'service.tokenFile',
  'service.tlsCert',
  'service.tlsKey',
  'service.clientCa',
  'service.negotiateKeytab',
  'state.url',
]
/** Sections of other roles: refused in `config`. */
const OTHER_ROLES = ['saslauthd', 'shim']

/** Helm's merge of user values onto the chart's: maps merge, anything else replaces, null deletes. */
function helmMerge(base: unknown, over: unknown): unknown {
  if (!isObj(base) || !isObj(over)) return structuredClone(over)
  const out: Obj = structuredClone(base)
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k]
    else out[k] = k in out ? helmMerge(out[k], v) : structuredClone(v)
  }
  return out
}

const values = parseYaml(read('values.yaml')) as Obj
const schema = JSON.parse(read('values.schema.json')) as Obj
const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true })
const ciFiles = readdirSync(join(CHART, 'ci'))
  .filter((f) => f.endsWith('-values.yaml'))
  .sort()
/** [name, -f files]: the defaults and each ci file. */
const SCENARIOS: Array<[string, string[]]> = [
  ['values.yaml', []],
  ...ciFiles.map((f) => [`ci/${f}`, [join(CHART, 'ci', f)]] as [string, string[]]),
]
/** The chart's name as release (full name = release) and another (full name = release-chart). */
const RELEASES: Array<[string, string]> = [
  ['saslgate', 'saslgate'],
  ['mail-auth', 'mail-auth-saslgate'],
]

const validate = ajv.compile(schema)
function errorsOf(v: unknown): string {
  validate(v)
  return JSON.stringify(validate.errors?.map((e) => `${e.instancePath} ${e.message}`) ?? [])
}

/** The schema node for a property path, or undefined. */
function schemaAt(path: string[]): Obj | undefined {
  let node: Obj | undefined = schema
  for (const key of path) {
    const props = node?.properties as Obj | undefined
    node = props?.[key] as Obj | undefined
  }
  return node
}

/** Paths of values.yaml down to scalars, lists and objects the schema leaves open. */
function leafPaths(v: unknown, path: string[] = []): string[][] {
  const s = schemaAt(path)
  if (isObj(v) && Object.keys(v).length > 0 && s?.properties !== undefined) {
    return Object.entries(v).flatMap(([k, sub]) => leafPaths(sub, [...path, k]))
  }
  return [path]
}

/** Every scenario x release rendered once (the renderer is built or found cached first). */
const rendered = new Map<string, Rendered>()
const key = (scenario: string, release: string) => `${scenario} as ${release}`
before(() => {
  for (const [scenario, files] of SCENARIOS)
    for (const [release] of RELEASES)
      rendered.set(key(scenario, release), render(CHART, { release, valueFiles: files }))
})
const get = (scenario: string, release = 'saslgate') => rendered.get(key(scenario, release))!

describe('helm chart values and schema', () => {
  test('the schema declares draft-07 and compiles in ajv strict mode', () => {
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#')
    // strict mode throws on unknown keywords and ambiguous types, which a typo in the schema makes
    assert.doesNotThrow(() =>
      new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema),
    )
  })

  test('the values Helm would validate (coalesced by the renderer) pass the schema', () => {
    assert.ok(ciFiles.length >= 3, `ci scenarios: ${ciFiles.join(', ')}`)
    for (const [name, files] of SCENARIOS) {
      const v = get(name).values
      // The merge the schema-refusal tests below use is Helm's, checked on every scenario.
      const merged = files.reduce<unknown>(
        (acc, f) => helmMerge(acc, parseYaml(readFileSync(f, 'utf8'))),
        values,
      )
      assert.deepEqual(v, merged, `${name}: helmMerge differs from the renderer's coalesce`)
      assert.ok(validate(v), `${name}: ${errorsOf(v)}`)
    }
  })

  test('every key of values.yaml is typed and described in the schema', () => {
    for (const path of leafPaths(values)) {
      const s = schemaAt(path)
      assert.ok(s !== undefined, `values.yaml ${path.join('.')} is not in the schema`)
      assert.ok(
        typeof s.description === 'string' && s.description !== '',
        `${path.join('.')}: no description`,
      )
      assert.ok(s.type !== undefined || s.const !== undefined, `${path.join('.')}: no type`)
    }
    const top = Object.keys(schema.properties as Obj).filter((k) => k !== 'global')
    for (const key of top) assert.ok(key in values, `schema property ${key} has no default`)
  })

  const bad: Array<[string, Obj, RegExp]> = [
    ['a typo at the top level', { replicas: 3 }, /additional properties/],
    ['no replicas', { replicaCount: 0 }, /replicaCount/],
    ['a string replica count', { replicaCount: 'three' }, /replicaCount/],
    ['an unknown pull policy', { image: { pullPolicy: 'Sometimes' } }, /pullPolicy/],
    ['an unknown service type', { service: { type: 'Ingress' } }, /service\/type/],
    ['a malformed CIDR', { networkPolicy: { kdcCidrs: ['kdc1.example.org'] } }, /kdcCidrs/],
    ['a port out of range', { ports: { admin: 70000 } }, /ports\/admin/],
    [
      'a root filesystem made writable',
      { securityContext: { readOnlyRootFilesystem: false } },
      /readOnlyRootFilesystem/,
    ],
    ['root allowed', { podSecurityContext: { runAsNonRoot: false } }, /runAsNonRoot/],
    ['capabilities kept', { securityContext: { capabilities: { drop: ['NET_RAW'] } } }, /drop/],
    // The error names what to set (validators print a missing property's name, not a description).
    [
      'no caller authentication',
      { token: { enabled: false } },
      /set token\.enabled=true \(with token\.existingSecret or token\.value\), mtls\.enabled=true or config\.service\.negotiate=true/,
    ],
    ['a floating Valkey tag', { valkey: { image: { tag: 'latest' } } }, /valkey\/image\/tag/],
    ['a bare minor Valkey tag', { valkey: { image: { tag: '8.1-alpine' } } }, /valkey\/image\/tag/],
    [
      'a helm test login without its password Secret',
      { tests: { login: { login: 'helmtest' } } },
      /tests\/login\/existingSecret must NOT have fewer than 1 characters/,
    ],
    [
      'a helm test login without a caller token',
      {
        token: { enabled: false },
        mtls: { enabled: true, existingSecret: 'x' },
        tests: { login: { login: 'helmtest', existingSecret: 'pw' } },
      },
      /\/token\/enabled must be equal to constant/,
    ],
    [
      'mTLS without TLS',
      { tls: { enabled: false }, mtls: { enabled: true, existingSecret: 'x' } },
      /\/tls\/enabled/,
    ],
    ['plain HTTP without config.service.insecure', { tls: { enabled: false } }, /insecure/],
    [
      'Negotiate without its acceptor principal',
      {
        config: {
          service: { negotiate: true, negotiateAllow: ['host/fe1.example.org@EXAMPLE.ORG'] },
        },
      },
      /negotiatePrincipal/,
    ],
    [
      'a token enabled with no source',
      { token: { existingSecret: '', value: '' } },
      /\/token\/existingSecret/,
    ],
    ['a token shorter than 32 characters', { token: { value: 'short' } }, /token\/value/],
    [
      'no keytab at all',
      { keytab: { existingSecret: '', base64: '' } },
      /\/keytab\/existingSecret/,
    ],
    [
      'a TLS certificate without its key',
      { tls: { existingSecret: '', cert: '-----BEGIN CERTIFICATE-----\nx', key: '' } },
      /\/tls\/key/,
    ],
    [
      'Negotiate without an allow-list',
      { token: { enabled: false }, config: { service: { negotiate: true } } },
      /negotiateAllow/,
    ],
    [
      'an unknown saslgate option',
      { config: { pipeline: { maxKdcInFlights: 64 } } },
      /additional properties/,
    ],
    [
      'a saslgate option out of its bounds',
      { config: { pipeline: { maxKdcInFlight: 0 } } },
      /maxKdcInFlight/,
    ],
    ['a bad enum value of an option', { config: { log: { level: 'loud' } } }, /log\/level/],
    [
      'a chart-managed option',
      { config: { service: { listen: '0.0.0.0:1' } } },
      /additional properties/,
    ],
    ['the shim section', { config: { shim: { upstreams: [] } } }, /additional properties/],
    ['a state URL that is not redis', { state: { url: 'http://valkey:6379' } }, /state\/url/],
    [
      'a bad scrape interval',
      { metrics: { serviceMonitor: { interval: '30 seconds' } } },
      /interval/,
    ],
  ]
  for (const [what, patch, expected] of bad) {
    test(`the schema refuses ${what}`, () => {
      const v = helmMerge(values, patch)
      assert.equal(validate(v), false, `accepted: ${JSON.stringify(patch)}`)
      assert.match(errorsOf(v), expected)
    })
  }

  test('values.yaml is documented line by line', () => {
    const lines = read('values.yaml').split('\n')
    const nextContent = (from: number) => lines.slice(from).find((l) => l.trim() !== '') ?? ''
    // Inside a block scalar (`|`) or a default list, lines are data, not keys.
    let dataIndent = -1
    let previous = ''
    for (const [i, line] of lines.entries()) {
      const indent = line.search(/\S/)
      if (dataIndent >= 0 && (indent === -1 || indent > dataIndent)) continue
      dataIndent = -1
      const key = line.match(/^(\s*)[A-Za-z0-9_.-]+:(.*)$/)
      if (key !== null) {
        assert.match(previous, /^\s*#/, `values.yaml line ${i + 1} (${line.trim()}) has no comment`)
        const rest = key[2]!.trim()
        if (/^\|[-+]?$/.test(rest) || (rest === '' && /^\s*- /.test(nextContent(i + 1))))
          dataIndent = key[1]!.length
      }
      if (line.trim() !== '') previous = line
    }
  })

  test('the chart README lists every value', () => {
    const readme = read('README.md')
    for (const path of leafPaths(values)) {
      assert.ok(
        readme.includes(`| \`${path.join('.')}\` |`),
        `README: no row for ${path.join('.')}`,
      )
    }
  })
})

describe('helm chart config section against saslgate options', () => {
  test('the chart-managed options and sections still exist in saslgate', () => {
    const known = new Set(options().map(([name]) => name))
    for (const name of CHART_MANAGED) assert.ok(known.has(name), `${name} is no saslgate option`)
    for (const section of OTHER_ROLES) assert.ok(section in SCHEMA, section)
  })

  test('config in values.schema.json types exactly the options the chart passes through', () => {
    const config = schemaAt(['config'])!
    assert.equal(config.additionalProperties, false)
    const expected: Obj = {}
    for (const [name, leaf] of options()) {
      const [section, key] = name.split('.') as [string, string]
      if (CHART_MANAGED.includes(name) || OTHER_ROLES.includes(section)) continue
      let type: Obj
      if (leaf.type === 'int') type = { type: 'integer', minimum: leaf.min, maximum: leaf.max }
      else if (leaf.type === 'bool') type = { type: 'boolean' }
      else if (leaf.type === 'enum') type = { type: 'string', enum: [...leaf.values] }
      else if (leaf.type === 'list') type = { type: 'array', items: { type: 'string' } }
      else if (leaf.type === 'map')
        type = { type: 'object', additionalProperties: { type: 'string' } }
      else if (leaf.type === 'mapList')
        type = {
          type: 'object',
          additionalProperties: { type: 'array', items: { type: 'string' } },
        }
      else type = { type: 'string' }
      expected[section] ??= {}
      ;(expected[section] as Obj)[key] = type
    }
    const actual: Obj = {}
    for (const [section, body] of Object.entries(config.properties as Obj)) {
      assert.equal((body as Obj).additionalProperties, false, `config.${section}`)
      actual[section] = {}
      for (const [key, prop] of Object.entries((body as Obj).properties as Obj)) {
        const { description, ...type } = prop as Obj
        assert.ok(typeof description === 'string' && description !== '', `config.${section}.${key}`)
        ;(actual[section] as Obj)[key] = type
      }
    }
    assert.deepEqual(
      actual,
      expected,
      'values.schema.json config differs from src/config-schema.ts: update the schema',
    )
  })
})

describe('helm chart templates, statically', () => {
  // What rendering cannot see: a path in a branch no scenario takes, and a missing value, which
  // renders empty under Helm's missingkey=zero instead of failing.
  const templates = readdirSync(join(CHART, 'templates'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => posix.join(posix.relative(join(CHART, 'templates'), e.parentPath), e.name))
    .sort()
    .map((f) => [f, read(`templates/${f}`)] as const)

  test('every .Values path used in a template exists in values.yaml', () => {
    for (const [file, text] of templates) {
      const vars = new Map<string, string[]>()
      for (const m of text.matchAll(/\$(\w+)\s*:=\s*\.Values((?:\.\w+)+)/g))
        vars.set(m[1]!, m[2]!.slice(1).split('.'))
      const refs: string[][] = [...text.matchAll(/\.Values((?:\.\w+)+)/g)].map((m) =>
        m[1]!.slice(1).split('.'),
      )
      for (const [name, prefix] of vars) {
        for (const m of text.matchAll(new RegExp(`\\$${name}((?:\\.\\w+)+)`, 'g')))
          refs.push([...prefix, ...m[1]!.slice(1).split('.')])
      }
      for (const path of refs)
        assert.ok(hasKey(values, path), `${file}: .Values.${path.join('.')} is not in values.yaml`)
    }
  })

  test('every included template is defined', () => {
    const all = templates.map(([, t]) => t).join('\n')
    const defined = new Set([...all.matchAll(/define "([\w.]+)"/g)].map((m) => m[1]))
    const included = [...all.matchAll(/include "([\w.]+)"/g)].map((m) => m[1])
    assert.ok(included.length > 0)
    for (const name of included) assert.ok(defined.has(name), `include of undefined ${name}`)
  })
})

/** A key present with a null value (service.nodePort) counts as existing. */
function hasKey(root: unknown, path: string[]): boolean {
  let node = root
  for (const key of path) {
    if (!isObj(node) || !(key in node)) return false
    node = node[key]
  }
  return true
}

// --- the rendered objects -----------------------------------------------------------------

type Container = Obj & { args: string[]; env: Obj[]; volumeMounts: Obj[]; ports: Obj[] }

function podSpec(deployment: Obj): Obj {
  return at(deployment, 'spec.template.spec') as Obj
}
function container(deployment: Obj, name: string): Container {
  const c = (podSpec(deployment).containers as Obj[]).find((x) => x.name === name)
  assert.ok(c !== undefined, `no container ${name}`)
  return c as Container
}
function envValue(c: Container, name: string): Obj | undefined {
  return c.env.find((e) => e.name === name)
}

/**
 * The file a path in the container resolves to: the volume mounted at its directory and the
 * key of that volume's Secret or ConfigMap it projects, or undefined when nothing is mounted.
 */
function fileSource(
  deployment: Obj,
  c: Container,
  file: string,
): { kind: 'secret' | 'configMap'; name: string; key: string } | undefined {
  const dir = posix.dirname(file)
  const mount = c.volumeMounts.find((m) => m.mountPath === dir)
  if (mount === undefined) return undefined
  assert.equal(mount.readOnly, true, `${dir} is mounted writable`)
  const volume = (podSpec(deployment).volumes as Obj[]).find((v) => v.name === mount.name)
  assert.ok(volume !== undefined, `mount ${mount.name} has no volume`)
  const base = posix.basename(file)
  for (const kind of ['secret', 'configMap'] as const) {
    const src = volume[kind] as Obj | undefined
    if (src === undefined) continue
    const items = src.items as Obj[] | undefined
    const item = items?.find((i) => i.path === base)
    if (items !== undefined && item === undefined) return undefined
    const name = (kind === 'secret' ? src.secretName : src.name) as string
    return { kind, name, key: (item?.key as string | undefined) ?? base }
  }
  return undefined
}

/** The serve flags the chart's command line may use, mapped like src/cli.ts maps them. */
const SERVE_FLAGS = {
  config: { type: 'string' },
  set: { type: 'string', multiple: true },
  listen: { type: 'string' },
  'token-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'client-ca': { type: 'string' },
} as const
const FLAG_OPTION: Record<string, string> = {
  listen: 'service.listen',
  'token-file': 'service.tokenFile',
  'tls-cert': 'service.tlsCert',
  'tls-key': 'service.tlsKey',
  'client-ca': 'service.clientCa',
}

function serveArgs(c: Container) {
  assert.equal(c.args[0], 'serve', 'the pod runs saslgate serve')
  // strict: a flag serve does not know fails here as it would fail the pod
  const { values: v } = parseArgs({ args: c.args.slice(1), options: SERVE_FLAGS, strict: true })
  const settings: Record<string, string> = {}
  for (const s of v.set ?? []) settings[s.slice(0, s.indexOf('='))] = s.slice(s.indexOf('=') + 1)
  for (const [flag, option] of Object.entries(FLAG_OPTION)) {
    const value = v[flag as keyof typeof v]
    if (typeof value === 'string') settings[option] = value
  }
  return { config: v.config, settings }
}

/**
 * The variables Kubernetes injects for every Service of the namespace unless the pod sets
 * `enableServiceLinks: false` (docker-link style: NAME_SERVICE_HOST, NAME_PORT, ...).
 */
function serviceLinkEnv(r: Rendered): Record<string, string> {
  const env: Record<string, string> = {}
  for (const svc of objectsOf(r, 'Service')) {
    const name = String(at(svc, 'metadata.name')).toUpperCase().replaceAll('-', '_')
    env[`${name}_SERVICE_HOST`] = '10.0.0.1'
    for (const p of (at(svc, 'spec.ports') as Obj[]) ?? []) {
      env[`${name}_SERVICE_PORT`] = String(p.port)
      env[`${name}_PORT`] = `tcp://10.0.0.1:${p.port}`
      env[`${name}_SERVICE_PORT_${String(p.name).toUpperCase().replaceAll('-', '_')}`] = String(
        p.port,
      )
    }
  }
  return env
}

function secretData(r: Rendered, name: string, key: string): string | undefined {
  const secret = objectsOf(r, 'Secret').find((s) => at(s, 'metadata.name') === name)
  const data = secret?.data as Obj | undefined
  return data?.[key] === undefined ? undefined : Buffer.from(String(data[key]), 'base64').toString()
}

/** A Secret named in values: the chart's own (then its data is asserted) or an existing one. */
function assertSecretFile(
  r: Rendered,
  deployment: Obj,
  c: Container,
  file: string,
  expected: { existing: string; inline: string; fullname: string },
) {
  const src = fileSource(deployment, c, file)
  assert.ok(src !== undefined, `${file} is not mounted`)
  assert.equal(src.kind, 'secret', `${file} comes from a ${src.kind}`)
  if (expected.inline !== '') {
    assert.equal(src.name, expected.fullname, `${file}: the chart's own Secret`)
    assert.equal(secretData(r, src.name, src.key), expected.inline, `${file}: Secret data`)
  } else {
    assert.equal(src.name, expected.existing, `${file}: the existing Secret`)
    assert.equal(secretData(r, src.name, src.key), undefined, `${file}: rendered though existing`)
  }
}

function assertSelects(selector: unknown, labels: unknown, what: string) {
  assert.ok(isObj(selector) && Object.keys(selector).length > 0, `${what}: empty selector`)
  for (const [k, v] of Object.entries(selector))
    assert.equal((labels as Obj)?.[k], v, `${what}: selector ${k}=${v} misses the pods`)
}

const hex64 = /^[0-9a-f]{64}$/

for (const [scenario] of SCENARIOS) {
  describe(`helm chart rendered: ${scenario}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'saslgate-helm-'))
    after(() => rmSync(dir, { recursive: true, force: true }))

    test('every object validates against the Kubernetes schemas, under both release names', async () => {
      for (const [release] of RELEASES) {
        const r = get(scenario, release)
        assert.ok(r.manifests.length >= 4, `${release}: ${r.manifests.length} objects`)
        assert.deepEqual(await validateAll(r), [], `${scenario} as ${release}`)
      }
    })

    test('objects are named after the release and labelled with it', () => {
      for (const [release, fullname] of RELEASES) {
        const r = get(scenario, release)
        for (const { object: o, source } of r.manifests) {
          const name = String(at(o, 'metadata.name'))
          assert.ok(
            name === fullname || name.startsWith(`${fullname}-`),
            `${source}: ${o.kind}/${name}`,
          )
          const labels = at(o, 'metadata.labels') as Obj
          assert.equal(labels['app.kubernetes.io/instance'], release, `${o.kind}/${name}`)
          assert.equal(labels['app.kubernetes.io/managed-by'], 'Helm', `${o.kind}/${name}`)
        }
        one(r, 'Deployment', fullname)
        one(r, 'ConfigMap', fullname)
        one(r, 'Service', fullname)
      }
    })

    test('the pod: fixed serve command line, admin-port probes, no service links, no service-account token', () => {
      const r = get(scenario)
      const v = r.values
      const d = one(r, 'Deployment', 'saslgate')
      const spec = podSpec(d)
      const c = container(d, 'saslgate')
      const { settings } = serveArgs(c)
      const ports = v.ports as Obj
      assert.equal(settings['service.listen'], `0.0.0.0:${ports.rpc}`)
      assert.equal(settings['service.adminListen'], `0.0.0.0:${ports.admin}`)
      const portNamed = (n: string) => c.ports.find((p) => p.name === n)?.containerPort
      assert.equal(portNamed('rpc'), ports.rpc)
      assert.equal(portNamed('admin'), ports.admin)
      for (const [probe, path] of [
        ['startupProbe', '/healthz'],
        ['livenessProbe', '/healthz'],
        ['readinessProbe', '/readyz'],
      ] as const) {
        assert.equal(at(c, `${probe}.httpGet.path`), path, probe)
        assert.equal(at(c, `${probe}.httpGet.port`), 'admin', probe)
      }
      for (const m of c.volumeMounts) assert.equal(m.subPath, undefined, `${m.name}: subPath`)
      assert.equal(spec.automountServiceAccountToken, false)
      // Kubernetes' service links would put SASLGATE_* variables into the environment, which
      // saslgate refuses (see the config test below).
      assert.equal(spec.enableServiceLinks, false, 'enableServiceLinks: false on the pod spec')
      assert.equal(spec.terminationGracePeriodSeconds, v.terminationGracePeriodSeconds)
      const sa = objectsOf(r, 'ServiceAccount')
      if (at(v, 'serviceAccount.create') === true) {
        assert.equal(sa.length, 1)
        assert.equal(spec.serviceAccountName, at(sa[0], 'metadata.name'))
        assert.equal(sa[0]!.automountServiceAccountToken, false)
      } else assert.equal(sa.length, 0)
      const known = new Set(options().map(([name]) => envName(name)))
      for (const e of c.env)
        if (String(e.name).startsWith('SASLGATE_'))
          assert.ok(known.has(String(e.name)), `${e.name} is not a saslgate variable`)
      for (const w of objectsOf(r, 'Deployment'))
        assert.equal(podSpec(w).enableServiceLinks, false, `${at(w, 'metadata.name')}`)
    })

    test('the config the pod reads is the values config, and loads in the pod environment', () => {
      for (const [release, fullname] of RELEASES) {
        const r = get(scenario, release)
        const d = one(r, 'Deployment', fullname)
        const c = container(d, 'saslgate')
        const cm = one(r, 'ConfigMap', fullname)
        const { config, settings } = serveArgs(c)
        assert.ok(config !== undefined, '--config')
        const configSrc = fileSource(d, c, config)
        assert.deepEqual(configSrc, { kind: 'configMap', name: fullname, key: 'config.yaml' })
        const text = String((cm.data as Obj)['config.yaml'])
        assert.deepEqual(parseYaml(text), r.values.config, 'config.yaml is values.config')
        const krb5 = String(at(envValue(c, 'KRB5_CONFIG'), 'value'))
        assert.deepEqual(fileSource(d, c, krb5), {
          kind: 'configMap',
          name: fullname,
          key: 'krb5.conf',
        })
        assert.equal(String((cm.data as Obj)['krb5.conf']).trim(), String(r.values.krb5Conf).trim())

        // The environment Kubernetes would give the container: its env (a secretKeyRef read as
        // a placeholder URL), plus the service links unless the pod turned them off.
        const env: Record<string, string> = {}
        for (const e of c.env)
          env[String(e.name)] =
            e.valueFrom !== undefined ? 'redis://from-secret:6379/0' : String(e.value)
        if (podSpec(d).enableServiceLinks !== false) Object.assign(env, serviceLinkEnv(r))
        const file = join(dir, `${release}.yaml`)
        writeFileSync(file, text)
        const loaded = loadConfig({ file, env, settings })
        // Values from the rendered ConfigMap and the rendered flags reached saslgate's config.
        const cfg = r.values.config as Record<string, Obj>
        assert.equal(loaded.pipeline.deadlineMs, cfg.pipeline!.deadlineMs)
        assert.equal(loaded.kerberos.verifyPrincipal, cfg.kerberos!.verifyPrincipal)
        assert.equal(loaded.service.readyDelayMs, cfg.service!.readyDelayMs)
        assert.equal(loaded.service.listen, `0.0.0.0:${(r.values.ports as Obj).rpc}`)
        // Kubernetes must give the pod longer than saslgate's own drain takes.
        assert.ok(
          Number(podSpec(d).terminationGracePeriodSeconds) * 1000 >
            loaded.service.readyDelayMs + loaded.service.drainTimeoutMs,
          'grace period > readyDelayMs + drainTimeoutMs',
        )
      }
    })

    test('token, TLS, mTLS and keytab: the files the flags name are mounted from the right Secret', () => {
      for (const [release, fullname] of RELEASES) {
        const r = get(scenario, release)
        const v = r.values as Record<string, Obj>
        const d = one(r, 'Deployment', fullname)
        const c = container(d, 'saslgate')
        const { settings } = serveArgs(c)
        const token = settings['service.tokenFile']
        if (v.token!.enabled === true) {
          assert.ok(token !== undefined, '--token-file')
          assertSecretFile(r, d, c, token, {
            existing: String(v.token!.existingSecret),
            inline: String(v.token!.value),
            fullname,
          })
        } else {
          assert.equal(token, undefined, 'a token file with token.enabled false')
          assert.equal(
            c.volumeMounts.find((m) => m.name === 'token'),
            undefined,
          )
        }
        const cert = settings['service.tlsCert']
        const tlsKey = settings['service.tlsKey']
        if (v.tls!.enabled === true) {
          assert.ok(cert !== undefined && tlsKey !== undefined, '--tls-cert and --tls-key')
          for (const [file, inline] of [
            [cert, v.tls!.cert],
            [tlsKey, v.tls!.key],
          ] as const)
            assertSecretFile(r, d, c, file, {
              existing: String(v.tls!.existingSecret),
              inline: String(inline),
              fullname,
            })
        } else assert.equal(cert, undefined)
        const ca = settings['service.clientCa']
        if (v.mtls!.enabled === true) {
          assert.ok(ca !== undefined, '--client-ca')
          assertSecretFile(r, d, c, ca, {
            existing: String(v.mtls!.existingSecret),
            inline: String(v.mtls!.ca),
            fullname,
          })
        } else assert.equal(ca, undefined, 'a client CA with mtls.enabled false')
        // The keytab: libkrb5 reads KRB5_KTNAME (kerberos.keytab and negotiateKeytab stay empty).
        const ktname = String(at(envValue(c, 'KRB5_KTNAME'), 'value'))
        const inlineKeytab = String(v.keytab!.base64)
        const ktSrc = fileSource(d, c, ktname)
        assert.ok(ktSrc?.kind === 'secret', `${ktname} is not mounted from a Secret`)
        if (inlineKeytab !== '') {
          assert.equal(ktSrc.name, fullname)
          const data = (one(r, 'Secret', fullname).data as Obj)[ktSrc.key]
          assert.equal(data, inlineKeytab.replace(/\s/g, ''), 'the keytab is stored as given')
        } else assert.equal(ktSrc.name, v.keytab!.existingSecret)
        // The chart creates a Secret only when something inline needs one.
        const needs =
          inlineKeytab !== '' ||
          (v.token!.enabled === true && v.token!.value !== '') ||
          (v.tls!.enabled === true && v.tls!.cert !== '') ||
          (v.mtls!.enabled === true && v.mtls!.ca !== '')
        const chartSecrets = objectsOf(r, 'Secret').filter(
          (o) => (at(o, 'metadata.labels') as Obj)['app.kubernetes.io/component'] !== 'valkey',
        )
        assert.equal(chartSecrets.length, needs ? 1 : 0, 'the chart Secret')
      }
    })

    test('Negotiate: the acceptor keytab is the mounted keytab, its principal and allow-list set', () => {
      const r = get(scenario)
      const cfg = r.values.config as Record<string, Obj>
      const d = one(r, 'Deployment', 'saslgate')
      const c = container(d, 'saslgate')
      const loaded = parseYaml(String((one(r, 'ConfigMap', 'saslgate').data as Obj)['config.yaml']))
      if (cfg.service!.negotiate !== true) {
        assert.notEqual(at(loaded, 'service.negotiate'), true)
        return
      }
      assert.equal(at(loaded, 'service.negotiate'), true)
      assert.equal(at(loaded, 'service.negotiatePrincipal'), cfg.service!.negotiatePrincipal)
      assert.ok((at(loaded, 'service.negotiateAllow') as string[]).length > 0)
      // negotiateKeytab is chart-managed and unset: saslgate falls back to kerberos.keytab,
      // which falls back to KRB5_KTNAME, the mounted keytab Secret (which holds the HTTP key).
      assert.equal(at(loaded, 'service.negotiateKeytab'), undefined)
      assert.equal(at(loaded, 'kerberos.keytab'), undefined)
      const src = fileSource(d, c, String(at(envValue(c, 'KRB5_KTNAME'), 'value')))
      assert.equal(src?.name, at(r.values, 'keytab.existingSecret'))
    })

    test('guard state: the built-in Valkey is wired by URL, an external one by Secret or URL', () => {
      for (const [release, fullname] of RELEASES) {
        const r = get(scenario, release)
        const v = r.values as Record<string, Obj>
        const c = container(one(r, 'Deployment', fullname), 'saslgate')
        const url = envValue(c, 'SASLGATE_STATE_URL')
        const builtIn =
          v.valkey!.enabled === true && v.state!.url === '' && v.state!.existingSecret === ''
        const valkeys = objectsOf(r, 'Deployment').filter((o) =>
          String(at(o, 'metadata.name')).endsWith('-valkey'),
        )
        if (builtIn) {
          const name = `${fullname}-valkey`
          // Auth on: the password comes from the Valkey Secret into both pods, never inline.
          const password = envValue(c, 'VALKEY_PASSWORD')
          const secretName = v.valkey!.auth
            ? String((v.valkey!.auth as Obj).existingSecret) || name
            : name
          assert.deepEqual(at(password, 'valueFrom.secretKeyRef'), {
            name: secretName,
            key: 'password',
          })
          const env = c.env as Obj[]
          assert.ok(
            env.findIndex((e) => e.name === 'VALKEY_PASSWORD') <
              env.findIndex((e) => e.name === 'SASLGATE_STATE_URL'),
            'VALKEY_PASSWORD is defined before the URL that expands it',
          )
          assert.equal(url?.value, `redis://:$(VALKEY_PASSWORD)@${name}:6379/0`)
          const svc = one(r, 'Service', name)
          const dep = one(r, 'Deployment', name)
          const pods = at(dep, 'spec.template.metadata.labels')
          assertSelects(at(svc, 'spec.selector'), pods, `Service ${name}`)
          assert.equal(at(svc, 'spec.ports.0.port'), 6379)
          const vk = container(dep, 'valkey')
          assert.ok(vk.ports.some((p) => p.name === at(svc, 'spec.ports.0.targetPort')))
          const args = vk.args as string[]
          assert.equal(args[args.indexOf('--requirepass') + 1], '$(VALKEY_PASSWORD)')
          assert.deepEqual(at(envValue(vk, 'VALKEY_PASSWORD'), 'valueFrom.secretKeyRef'), {
            name: secretName,
            key: 'password',
          })
          if (secretName === name) {
            const pw = at(one(r, 'Secret', name), 'data.password')
            assert.match(Buffer.from(String(pw), 'base64').toString(), /^[A-Za-z0-9]{32}$/)
          }
          // Every Valkey object says component valkey, none claims to be the service.
          for (const o of [svc, dep, ...objectsOf(r, 'NetworkPolicy'), ...objectsOf(r, 'Secret')])
            if (String(at(o, 'metadata.name')).startsWith(name))
              assert.equal(
                (at(o, 'metadata.labels') as Obj)['app.kubernetes.io/component'],
                'valkey',
                `${at(o, 'kind')} ${at(o, 'metadata.name')}`,
              )
          assert.match(String(vk.image), /^valkey\/valkey:\d+\.\d+\.\d+-alpine$|@sha256:/)
          if (v.networkPolicy!.enabled === true) {
            const np = one(r, 'NetworkPolicy', name)
            assertSelects(at(np, 'spec.podSelector.matchLabels'), pods, `NetworkPolicy ${name}`)
            const saslgatePods = at(one(r, 'Deployment', fullname), 'spec.template.metadata.labels')
            assertSelects(
              at(np, 'spec.ingress.0.from.0.podSelector.matchLabels'),
              saslgatePods,
              'Valkey ingress from saslgate pods',
            )
            const egress = at(one(r, 'NetworkPolicy', fullname), 'spec.egress') as Obj[]
            assert.ok(
              egress.some((e) => {
                const to = at(e, 'to.0.podSelector.matchLabels')
                return isObj(to) && Object.entries(to).every(([k, x]) => (pods as Obj)[k] === x)
              }),
              'saslgate egress to the Valkey pods',
            )
          }
        } else {
          assert.deepEqual(valkeys, [], 'no built-in Valkey')
          if (v.state!.existingSecret !== '')
            assert.deepEqual(at(url, 'valueFrom.secretKeyRef'), {
              name: v.state!.existingSecret,
              key: 'url',
            })
          else if (v.state!.url !== '') assert.equal(url?.value, v.state!.url)
          else assert.equal(url, undefined)
        }
      }
    })

    test('Services, PDB, HPA, NetworkPolicy and ServiceMonitor present as configured, selecting the pods', () => {
      const r = get(scenario)
      const v = r.values as Record<string, Obj>
      const d = one(r, 'Deployment', 'saslgate')
      const pods = at(d, 'spec.template.metadata.labels')
      const c = container(d, 'saslgate')
      const portNames = new Set(c.ports.map((p) => p.name))
      const services = objectsOf(r, 'Service').filter(
        (s) => !String(at(s, 'metadata.name')).endsWith('-valkey'),
      )
      for (const s of services) {
        assertSelects(at(s, 'spec.selector'), pods, `Service ${at(s, 'metadata.name')}`)
        for (const p of at(s, 'spec.ports') as Obj[])
          assert.ok(portNames.has(String(p.targetPort)), `targetPort ${p.targetPort}`)
      }
      const main = one(r, 'Service', 'saslgate')
      assert.equal(at(main, 'spec.type'), v.service!.type)
      assert.equal(at(main, 'spec.ports.0.port'), v.service!.port)
      assert.equal(at(main, 'spec.ports.0.targetPort'), 'rpc', 'the admin port is never exposed')
      if (v.service!.type !== 'ClusterIP' && v.service!.nodePort !== null)
        assert.equal(at(main, 'spec.ports.0.nodePort'), v.service!.nodePort)
      assert.equal(
        services.some((s) => at(s, 'metadata.name') === 'saslgate-headless'),
        v.service!.headless === true,
        'headless Service',
      )
      if (v.service!.headless === true)
        assert.equal(at(one(r, 'Service', 'saslgate-headless'), 'spec.clusterIP'), 'None')

      const pdbs = objectsOf(r, 'PodDisruptionBudget')
      assert.equal(pdbs.length, v.podDisruptionBudget!.enabled === true ? 1 : 0, 'PDB')
      for (const pdb of pdbs) {
        assertSelects(at(pdb, 'spec.selector.matchLabels'), pods, 'PDB')
        assert.equal(at(pdb, 'spec.maxUnavailable'), v.podDisruptionBudget!.maxUnavailable)
      }

      const hpas = objectsOf(r, 'HorizontalPodAutoscaler')
      assert.equal(hpas.length, v.autoscaling!.enabled === true ? 1 : 0, 'HPA')
      if (hpas.length === 1) {
        assert.deepEqual(at(hpas[0], 'spec.scaleTargetRef'), {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          name: 'saslgate',
        })
        assert.equal(at(hpas[0], 'spec.minReplicas'), v.autoscaling!.minReplicas)
        assert.equal(at(d, 'spec.replicas'), undefined, 'the HPA owns the replica count')
      } else assert.equal(at(d, 'spec.replicas'), v.replicaCount)

      const nps = objectsOf(r, 'NetworkPolicy').filter((o) => at(o, 'metadata.name') === 'saslgate')
      assert.equal(nps.length, v.networkPolicy!.enabled === true ? 1 : 0, 'NetworkPolicy')
      if (nps.length === 1) {
        const np = nps[0]!
        const npv = v.networkPolicy as Obj
        assertSelects(at(np, 'spec.podSelector.matchLabels'), pods, 'NetworkPolicy')
        assert.deepEqual(at(np, 'spec.policyTypes'), ['Ingress', 'Egress'])
        const ingress = at(np, 'spec.ingress') as Obj[]
        const peers = [...(npv.ingressCidrs as unknown[]), ...(npv.ingressPeers as unknown[])]
        if (peers.length === 0 && (npv.metricsPeers as unknown[]).length === 0)
          assert.deepEqual(ingress, [], 'no ingress by default')
        else if (peers.length > 0) {
          assert.deepEqual(at(ingress, '0.ports'), [{ port: 'rpc', protocol: 'TCP' }])
          assert.equal((at(ingress, '0.from') as unknown[]).length, peers.length)
        }
        const egress = (at(np, 'spec.egress') as Obj[]) ?? []
        const kdcCidrs = npv.kdcCidrs as string[]
        const kdc = egress.find((e) =>
          (e.ports as Obj[]).some((p) => p.port === npv.kdcPort && p.protocol === 'UDP'),
        )
        if (kdcCidrs.length > 0) {
          assert.ok(kdc !== undefined, 'KDC egress')
          assert.deepEqual(
            (kdc.ports as Obj[]).map((p) => p.protocol),
            ['UDP', 'TCP'],
            'the KDC port over UDP and TCP',
          )
          assert.deepEqual(
            (kdc.to as Obj[]).map((t) => at(t, 'ipBlock.cidr')),
            kdcCidrs,
          )
        } else assert.equal(kdc, undefined)
      }

      const monitors = objectsOf(r, 'ServiceMonitor')
      const wantMonitor = at(v, 'metrics.serviceMonitor.enabled') === true
      assert.equal(monitors.length, wantMonitor ? 1 : 0, 'ServiceMonitor')
      if (wantMonitor) {
        const metrics = one(r, 'Service', 'saslgate-metrics')
        assertSelects(
          at(monitors[0], 'spec.selector.matchLabels'),
          at(metrics, 'metadata.labels'),
          'ServiceMonitor',
        )
        assert.equal(at(monitors[0], 'spec.endpoints.0.port'), 'admin')
      }
    })

    test('checksums roll the pods when the config or the chart Secret changes, and only then', () => {
      const r = get(scenario)
      const [, files] = SCENARIOS.find(([n]) => n === scenario)!
      const sums = (x: Rendered) => {
        const a = at(one(x, 'Deployment', 'saslgate'), 'spec.template.metadata.annotations') as Obj
        return { config: String(a['checksum/config']), secret: String(a['checksum/secret']) }
      }
      const base = sums(r)
      assert.match(base.config, hex64)
      assert.match(base.secret, hex64)
      const level = at(r.values, 'config.log.level') === 'debug' ? 'warn' : 'debug'
      const changed = sums(render(CHART, { valueFiles: files, set: [`config.log.level=${level}`] }))
      assert.notEqual(changed.config, base.config, 'a config change rolls the pods')
      assert.equal(changed.secret, base.secret)
      if (objectsOf(r, 'Secret').length > 0) {
        const token = sums(
          render(CHART, { valueFiles: files, set: [`token.value=${'x'.repeat(40)}`] }),
        )
        assert.notEqual(token.secret, base.secret, 'a Secret change rolls the pods')
        assert.equal(token.config, base.config)
      } else {
        // No chart Secret: the sum is of the template's bare trailing newline.
        assert.equal(base.secret, createHash('sha256').update('\n').digest('hex'))
      }
    })

    test('NOTES.txt renders with the release name, namespace and warnings as configured', () => {
      for (const [release, fullname] of RELEASES) {
        const r = get(scenario, release)
        assert.match(r.notes, new RegExp(`installed as ${fullname} in namespace mail`))
        assert.ok(r.notes.includes(`${fullname}.mail.svc:${at(r.values, 'service.port')}`))
        assert.doesNotMatch(r.notes, /<no value>|\{\{/)
        const auth =
          at(r.values, 'token.enabled') === true ||
          at(r.values, 'mtls.enabled') === true ||
          at(r.values, 'config.service.negotiate') === true
        assert.equal(r.notes.includes('no caller authentication'), !auth)
      }
    })
  })
}

describe('helm chart: helm test, NOTES commands', () => {
  test('the login test pod: a test hook calling the Service with the first token and the test password', () => {
    const r = get('ci/production-values.yaml')
    const login = at(r.values, 'tests.login') as Obj
    const pods = objectsOf(r, 'Pod')
    assert.equal(pods.length, 1)
    const pod = pods[0]!
    const annotations = at(pod, 'metadata.annotations') as Obj
    assert.equal(annotations['helm.sh/hook'], 'test')
    const c = (at(pod, 'spec.containers') as Obj[])[0] as Obj
    const d = one(r, 'Deployment', 'saslgate')
    assert.equal(c.image, container(d, 'saslgate').image, 'the same image as the service')
    const env = Object.fromEntries((c.env as Obj[]).map((e) => [e.name, e.value]))
    assert.equal(env.SASLGATE_TEST_URL, `https://saslgate.mail.svc:${at(r.values, 'service.port')}`)
    assert.equal(env.SASLGATE_TEST_LOGIN, login.login)
    assert.equal(env.NODE_EXTRA_CA_CERTS, '/etc/saslgate/test-ca/ca.crt')
    const volumes = Object.fromEntries(
      (at(pod, 'spec.volumes') as Obj[]).map((v) => [v.name, at(v, 'secret.secretName')]),
    )
    assert.deepEqual(volumes, {
      token: at(r.values, 'token.existingSecret'),
      password: login.existingSecret,
      ca: login.caSecret,
    })
    // The script asks the RPC the shims use and passes only on DECISION_OK; it prints no password.
    const script = String((c.command as string[]).at(-1))
    assert.match(script, /\/saslgate\.v1\.AuthService\/Authenticate/)
    assert.match(script, /decision === 'DECISION_OK'/)
    assert.doesNotMatch(script, /console\.log\([^)]*pw/)
    // The NetworkPolicy lets exactly this pod in on the RPC port.
    const np = one(r, 'NetworkPolicy', 'saslgate')
    const podLabels = at(pod, 'metadata.labels') as Obj
    assert.ok(
      (at(np, 'spec.ingress') as Obj[]).some((rule) => {
        const sel = at(rule, 'from.0.podSelector.matchLabels')
        return isObj(sel) && Object.entries(sel).every(([k, v]) => podLabels[k] === v)
      }),
      'the test pod may reach the service',
    )
    // Not a service pod: the Service does not select it.
    assert.notEqual(podLabels['app.kubernetes.io/component'], 'service')
    // Without a test login there is no test pod.
    assert.deepEqual(objectsOf(get('values.yaml'), 'Pod'), [])
  })

  test('NOTES.txt: port-forward in the background with a kill, what /readyz means, names VMs can use', () => {
    for (const [scenario] of SCENARIOS) {
      const r = get(scenario)
      const notes = r.notes
      const admin = at(r.values, 'ports.admin')
      assert.ok(
        notes.includes(
          `kubectl -n mail port-forward deploy/saslgate ${admin}:${admin} >/dev/null & PF=$!`,
        ),
        notes,
      )
      assert.ok(notes.includes(`curl -s localhost:${admin}/readyz`))
      assert.match(notes, /kill \$PF/)
      assert.match(notes, /VMs outside the cluster cannot resolve it/)
      assert.match(
        notes,
        /a KDC of the default realm answered within\s+config\.service\.readyKdcWindowMs/,
      )
      const type = at(r.values, 'service.type')
      if (type === 'LoadBalancer') assert.match(notes, /status\.loadBalancer\.ingress/)
      if (type === 'NodePort') assert.match(notes, /spec\.ports\[0\]\.nodePort/)
      assert.equal(
        notes.includes('helm test saslgate -n mail --logs'),
        at(r.values, 'tests.login.login') !== '',
      )
    }
  })

  test('production example values depend on no one cloud, or say which', () => {
    const text = read('ci/production-values.yaml')
    const v = get('ci/production-values.yaml').values
    assert.notEqual(at(v, 'priorityClassName'), 'system-cluster-critical')
    for (const line of text.split('\n').filter((l) => /aws|gke|azure/i.test(l) && !/^\s*#/.test(l)))
      assert.match(text, /#.*AWS \(below\)/, `unlabelled cloud setting: ${line}`)
  })
})

describe('helm chart metadata and coverage', () => {
  test('the scenarios exercise every branch the wiring tests check', () => {
    const all = SCENARIOS.map(([name]) => get(name).values)
    const some = (what: string, f: (v: Obj) => boolean) =>
      assert.ok(all.some(f), `no scenario with ${what}`)
    const none = (what: string, f: (v: Obj) => boolean) =>
      assert.ok(!all.every(f), `every scenario has ${what}`)
    some('an inline token', (v) => at(v, 'token.value') !== '')
    some(
      'an existing token Secret',
      (v) => at(v, 'token.value') === '' && at(v, 'token.enabled') === true,
    )
    none('a token', (v) => at(v, 'token.enabled') === true)
    some('an inline keytab', (v) => at(v, 'keytab.base64') !== '')
    some('mTLS with an inline CA', (v) => at(v, 'mtls.enabled') === true && at(v, 'mtls.ca') !== '')
    some('mTLS from a Secret', (v) => at(v, 'mtls.enabled') === true && at(v, 'mtls.ca') === '')
    some('Negotiate', (v) => at(v, 'config.service.negotiate') === true)
    some('the built-in Valkey', (v) => at(v, 'valkey.enabled') === true)
    some('state from a Secret', (v) => at(v, 'state.existingSecret') !== '')
    some('an HPA', (v) => at(v, 'autoscaling.enabled') === true)
    some('a ServiceMonitor', (v) => at(v, 'metrics.serviceMonitor.enabled') === true)
    none('a NetworkPolicy', (v) => at(v, 'networkPolicy.enabled') === true)
    none('a PDB', (v) => at(v, 'podDisruptionBudget.enabled') === true)
    some('a NodePort', (v) => at(v, 'service.type') === 'NodePort')
  })

  test('Chart.yaml: apiVersion v2, the chart name, appVersion follows package.json', () => {
    const chart = parseYaml(read('Chart.yaml')) as Obj
    assert.equal(chart.apiVersion, 'v2')
    assert.equal(chart.name, 'saslgate')
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
    assert.equal(chart.appVersion, pkg.version, 'Chart appVersion follows package.json')
    const labels = at(one(get('values.yaml'), 'Deployment', 'saslgate'), 'metadata.labels') as Obj
    assert.equal(labels['app.kubernetes.io/version'], pkg.version)
    assert.equal(labels['helm.sh/chart'], `saslgate-${chart.version}`)
  })

  test('the grace period guard: a grace period shorter than the drain fails the render', () => {
    assert.throws(
      () => render(CHART, { set: ['terminationGracePeriodSeconds=10'] }),
      /terminationGracePeriodSeconds must exceed/,
    )
  })
})
