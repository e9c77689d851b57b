/**
 * The chart under Kubernetes service links: were `enableServiceLinks: false` ever dropped
 * from a pod spec, Kubernetes would put SASLGATE_SERVICE_HOST, SASLGATE_PORT_8443_TCP, ...
 * into every pod for the chart's Services (release `saslgate`: the README's own install),
 * and saslgate reads SASLGATE_* as its options. The loader recognises those names (and only
 * with values of their shape) and ignores them; a misspelt real option still stops the start.
 * The Services and their ports are read from the templates themselves.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join, posix } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { loadConfig } from '../../src/config.js'

const CHART = fileURLToPath(new URL('../../helm/saslgate/', import.meta.url))
const read = (rel: string) => readFileSync(join(CHART, rel), 'utf8')
type Obj = Record<string, unknown>
const values = parseYaml(read('values.yaml')) as Obj
/** Every template file, `tests/...` hooks included. */
const templateFiles = readdirSync(join(CHART, 'templates'), {
  recursive: true,
  withFileTypes: true,
})
  .filter((e) => e.isFile())
  .map((e) => posix.join(posix.relative(join(CHART, 'templates'), e.parentPath), e.name))
  .sort()
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
          // A bare Pod (a test hook) has its spec at the top; a workload's is under template.
          /^kind: Pod$/m.test(doc)
            ? /^ {2}enableServiceLinks: false$/m
            : /^ {6}enableServiceLinks: false$/m,
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
