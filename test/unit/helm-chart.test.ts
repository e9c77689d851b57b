/**
 * The Helm chart without a helm binary: values.schema.json (ajv, draft-07 as it declares)
 * accepts values.yaml and every ci/*-values.yaml merged onto it the way Helm merges, and refuses
 * bad values; every `.Values` path the templates use exists; template blocks balance; the
 * `config` part of the schema matches saslgate's own option schema, and each scenario's config
 * loads with saslgate's loader. `scripts/check-deploy.sh` adds helm lint/template when present.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import { parse as parseYaml, stringify as toYaml } from 'yaml'
import { envName, loadConfig, options } from '../../src/config.js'
import { SCHEMA } from '../../src/config-schema.js'

const CHART = fileURLToPath(new URL('../../helm/saslgate/', import.meta.url))
const read = (rel: string) => readFileSync(join(CHART, rel), 'utf8')

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

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
/** The `serve` flags of the fixed command line (issue 4) the Deployment may use. */
const SERVE_FLAGS = [
  '--config',
  '--listen',
  '--set',
  '--token-file',
  '--tls-cert',
  '--tls-key',
  '--client-ca',
]

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
const validate = ajv.compile(schema)
const ciFiles = readdirSync(join(CHART, 'ci'))
  .filter((f) => f.endsWith('-values.yaml'))
  .sort()
const scenarios: Array<[string, Obj]> = [
  ['values.yaml', values],
  ...ciFiles.map(
    (f) => [`ci/${f}`, helmMerge(values, parseYaml(read(`ci/${f}`)))] as [string, Obj],
  ),
]
const templateFiles = readdirSync(join(CHART, 'templates')).sort()

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

function hasPath(root: unknown, path: string[]): boolean {
  let node = root
  for (const key of path) {
    if (!isObj(node) || !(key in node)) return false
    node = node[key]
  }
  return true
}

describe('helm chart values and schema', () => {
  test('the schema declares draft-07 and compiles in ajv strict mode', () => {
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#')
    assert.equal(typeof validate, 'function')
  })

  test('values.yaml and every ci/*-values.yaml (merged like Helm) validate', () => {
    assert.ok(ciFiles.length >= 3, `ci scenarios: ${ciFiles.join(', ')}`)
    for (const [name, v] of scenarios) assert.ok(validate(v), `${name}: ${errorsOf(v)}`)
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
    ['no caller authentication', { token: { enabled: false } }, /\/mtls\/enabled must be equal/],
    [
      'mTLS without TLS',
      { tls: { enabled: false }, mtls: { enabled: true, existingSecret: 'x' } },
      /\/tls\/enabled/,
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

  test('the grace period exceeds readyDelayMs + drainTimeoutMs in every scenario', () => {
    for (const [name, v] of scenarios) {
      const service = (v.config as Obj).service as Obj
      const ms = (service.readyDelayMs as number) + (service.drainTimeoutMs as number)
      assert.ok((v.terminationGracePeriodSeconds as number) * 1000 > ms, name)
    }
  })

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
  const dir = mkdtempSync(join(tmpdir(), 'saslgate-helm-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

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

  test("each scenario's config loads with saslgate's loader (with the chart's flags)", () => {
    for (const [name, v] of scenarios) {
      const file = join(dir, `${name.replace(/\W/g, '_')}.yaml`)
      writeFileSync(file, toYaml(v.config))
      const settings = {
        'service.listen': `0.0.0.0:${(v.ports as Obj).rpc}`,
        'service.adminListen': `0.0.0.0:${(v.ports as Obj).admin}`,
        'service.tokenFile': '/etc/saslgate/token/token',
      }
      const config = loadConfig({ file, env: {}, settings })
      assert.equal(config.service.listen, settings['service.listen'], name)
    }
  })
})

describe('helm chart templates', () => {
  const templates = templateFiles.map((f) => [f, read(`templates/${f}`)] as const)

  test('the chart has the objects the issue asks for', () => {
    for (const f of [
      'deployment.yaml',
      'service.yaml',
      'pdb.yaml',
      'hpa.yaml',
      'networkpolicy.yaml',
      'configmap.yaml',
      'secret.yaml',
      'servicemonitor.yaml',
      'valkey.yaml',
      '_helpers.tpl',
      'NOTES.txt',
    ]) {
      assert.ok(templateFiles.includes(f), f)
    }
    const chart = parseYaml(read('Chart.yaml')) as Obj
    assert.equal(chart.apiVersion, 'v2')
    assert.equal(chart.name, 'saslgate')
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
    assert.equal(chart.appVersion, pkg.version, 'Chart appVersion follows package.json')
  })

  test('actions are closed and if/range/with/define blocks balance', () => {
    for (const [file, text] of templates) {
      const opens = text.split('{{').length - 1
      const closes = text.split('}}').length - 1
      assert.equal(opens, closes, `${file}: {{ vs }}`)
      const stack: string[] = []
      for (const m of text.matchAll(/\{\{-?\s*(.*?)\s*-?\}\}/gs)) {
        const action = m[1]!
        if (action.startsWith('/*')) {
          assert.ok(action.endsWith('*/'), `${file}: unclosed comment`)
          continue
        }
        const word = action.split(/\s+/)[0]
        if (['if', 'range', 'with', 'define', 'block'].includes(word!)) stack.push(word!)
        else if (word === 'else')
          assert.ok(stack.length > 0, `${file}: else outside a block (${action})`)
        else if (word === 'end') assert.ok(stack.pop() !== undefined, `${file}: stray end`)
      }
      assert.deepEqual(stack, [], `${file}: unclosed ${stack.join(', ')}`)
    }
  })

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
        assert.ok(hasPath(values, path), `${file}: .Values.${path.join('.')} is not in values.yaml`)
    }
  })

  test('every included template is defined', () => {
    const all = templates.map(([, t]) => t).join('\n')
    const defined = new Set([...all.matchAll(/define "([\w.]+)"/g)].map((m) => m[1]))
    for (const m of all.matchAll(/include "([\w.]+)"/g))
      assert.ok(defined.has(m[1]), `include of undefined ${m[1]}`)
  })

  test('the pod runs the fixed serve command line, probes the admin port, mounts no subPath', () => {
    const deployment = read('templates/deployment.yaml')
    const flags = [...deployment.matchAll(/^\s*- (--[a-z-]+)\s*$/gm)].map((m) => m[1])
    assert.ok(flags.length > 0)
    for (const f of flags) assert.ok(SERVE_FLAGS.includes(f!), `unknown serve flag ${f}`)
    assert.match(deployment, /^\s*- serve\s*$/m)
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
      assert.match(
        deployment,
        new RegExp(`${probe}:\\s+httpGet:\\s+path: /(healthz|readyz)\\s+port: admin`),
      )
    assert.match(deployment, /readinessProbe:\s+httpGet:\s+path: \/readyz/)
    assert.doesNotMatch(deployment, /subPath/)
    assert.match(deployment, /automountServiceAccountToken: false/)
    assert.match(deployment, /checksum\/config:/)
    assert.match(deployment, /checksum\/secret:/)
    assert.match(
      deployment,
      /terminationGracePeriodSeconds: \{\{ \.Values\.terminationGracePeriodSeconds \}\}/,
    )
    const known = new Set(options().map(([name]) => envName(name)))
    for (const m of deployment.matchAll(/name: (SASLGATE_\w+)/g))
      assert.ok(known.has(m[1]!), `${m[1]} is not a saslgate environment variable`)
  })

  test('the NetworkPolicy opens the KDC port over UDP and TCP and nothing by default', () => {
    const np = read('templates/networkpolicy.yaml')
    assert.match(
      np,
      /port: \{\{ \$np\.kdcPort \}\}\s+protocol: UDP\s+- port: \{\{ \$np\.kdcPort \}\}\s+protocol: TCP/,
    )
    assert.match(np, /ingress: \[\]/)
    assert.match(np, /- Ingress\s+- Egress/)
  })
})

/** What `include "saslgate.fullname"` gives for a release (no overrides), as _helpers.tpl says. */
function fullname(release: string, chart = 'saslgate'): string {
  const name = release.includes(chart) ? release : `${release}-${chart}`
  return name.slice(0, 63).replace(/-+$/, '')
}

interface ServicePort {
  name: string
  port: number
  protocol: string
}

/**
 * Every Service the templates can make, read from the templates themselves (all conditional
 * ones included): its name suffix after the fullname, and its ports with `.Values` resolved.
 */
function chartServices(): Array<{ suffix: string; ports: ServicePort[] }> {
  const out: Array<{ suffix: string; ports: ServicePort[] }> = []
  for (const file of templateFiles.filter((f) => f.endsWith('.yaml'))) {
    for (const doc of read(`templates/${file}`).split(/^---$/m)) {
      if (!/^kind: Service$/m.test(doc)) continue
      const name = doc.match(/^ {2}name: \{\{ include "saslgate\.fullname" \. \}\}(\S*)$/m)
      assert.ok(name !== null, `${file}: a Service not named from saslgate.fullname`)
      const ports: ServicePort[] = []
      for (const m of doc.matchAll(
        /- name: (\S+)\n\s+port: (?:(\d+)|\{\{ \.Values\.([\w.]+) \}\})\n[\s\S]*?protocol: (\w+)/g,
      )) {
        const port =
          m[2] !== undefined
            ? Number(m[2])
            : (m[3]!.split('.').reduce<unknown>((o, k) => (o as Obj)[k], values) as number)
        assert.equal(typeof port, 'number', `${file}: port ${m[0]}`)
        ports.push({ name: m[1]!, port, protocol: m[4]! })
      }
      assert.ok(ports.length > 0, `${file}: Service${name[1]} has no port`)
      out.push({ suffix: name[1]!, ports })
    }
  }
  return out
}

/** The variables Kubernetes puts into a pod for one Service (enableServiceLinks: true). */
function serviceLinkEnv(service: string, ip: string, ports: ServicePort[]): Record<string, string> {
  const p = service.toUpperCase().replaceAll('-', '_')
  const host = ip.includes(':') ? `[${ip}]` : ip
  const env: Record<string, string> = {
    [`${p}_SERVICE_HOST`]: ip,
    [`${p}_SERVICE_PORT`]: String(ports[0]!.port),
    [`${p}_PORT`]: `${ports[0]!.protocol.toLowerCase()}://${host}:${ports[0]!.port}`,
  }
  for (const { name, port, protocol } of ports) {
    const proto = protocol.toLowerCase()
    const base = `${p}_PORT_${port}_${protocol.toUpperCase()}`
    env[`${p}_SERVICE_PORT_${name.toUpperCase().replaceAll('-', '_')}`] = String(port)
    env[base] = `${proto}://${host}:${port}`
    env[`${base}_PROTO`] = proto
    env[`${base}_PORT`] = String(port)
    env[`${base}_ADDR`] = ip
  }
  return env
}

describe('helm chart: Kubernetes service links (issue 22)', () => {
  const services = chartServices()

  test('the templates make the Services the test expects', () => {
    assert.deepEqual(services.map((s) => s.suffix).sort(), ['', '-headless', '-metrics', '-valkey'])
  })

  test('every pod spec turns service links off', () => {
    for (const file of templateFiles) {
      const text = read(`templates/${file}`)
      for (const doc of text
        .split(/^---$/m)
        .filter((d) => /^kind: (Deployment|StatefulSet|Job|DaemonSet|Pod)$/m.test(d)))
        assert.match(
          doc,
          /^ {6}enableServiceLinks: false$/m,
          `${file}: a pod spec with service links`,
        )
    }
  })

  // `saslgate` is the README's own install; `saslgate-service` gives SASLGATE_SERVICE_PORT,
  // next to real SASLGATE_SERVICE_* options; `rel` is what the other chart checks use.
  for (const release of ['saslgate', 'saslgate-service', 'saslgate-prod', 'rel']) {
    for (const ip of ['10.96.12.34', 'fd00:10:96::1234']) {
      test(`release ${release}: the pod environment Kubernetes adds (${ip}) loads, links ignored`, () => {
        const env: Record<string, string> = {
          PATH: '/usr/bin:/bin',
          KUBERNETES_SERVICE_HOST: '10.96.0.1',
          KUBERNETES_SERVICE_PORT: '443',
          // what the Deployment itself sets
          SASLGATE_STATE_URL: `redis://${fullname(release)}-valkey:6379/0`,
          SASLGATE_LOG_LEVEL: 'info',
        }
        for (const s of services)
          Object.assign(env, serviceLinkEnv(`${fullname(release)}${s.suffix}`, ip, s.ports))
        const links = Object.keys(env).filter(
          (k) =>
            k.startsWith('SASLGATE_') && !['SASLGATE_STATE_URL', 'SASLGATE_LOG_LEVEL'].includes(k),
        )
        if (release.startsWith('saslgate')) assert.ok(links.length >= 20, links.join(' '))
        let ignored: string[] = []
        const config = loadConfig({
          env,
          settings: { 'service.listen': '0.0.0.0:8443' },
          onIgnoredEnv: (names) => {
            ignored = names
          },
        })
        assert.deepEqual(ignored, [...links].sort())
        assert.equal(config.service.listen, '0.0.0.0:8443')
        assert.equal(config.state.url, env.SASLGATE_STATE_URL)
        // and with the links left in place, a misspelt real option still stops the start
        assert.throws(
          () => loadConfig({ env: { ...env, SASLGATE_SERVICE_LISTN: '0.0.0.0:8443' } }),
          /SASLGATE_SERVICE_LISTN: unknown environment variable \(did you mean SASLGATE_SERVICE_LISTEN\?\)/,
        )
      })
    }
  }
})
