/**
 * tools/helm-render, the `helm template` stand-in the chart tests use: Helm's engine semantics
 * on a small fixture chart (each a behaviour of Helm the chart relies on or a chart could trip
 * over), and the sabotage the chart tests must catch: a copy of the real chart with an undefined
 * function, an include without context, or a broken nindent under matchLabels fails the render
 * or the validation, and fails test/deploy/helm-chart.test.ts run against that copy.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import {
  at,
  CHART,
  type Obj,
  one,
  RenderError,
  render,
  validateAll,
  validateObject,
} from './helm.js'

const tmp = mkdtempSync(join(tmpdir(), 'saslgate-helm-render-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

function chart(name: string, files: Record<string, string>): string {
  const dir = join(tmp, name)
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true })
    writeFileSync(join(dir, rel), text)
  }
  return dir
}

const CHART_YAML = 'apiVersion: v2\nname: fixture\nversion: 1.2.3\nappVersion: "4.5"\n'
const fixture = chart('fixture', {
  'Chart.yaml': `${CHART_YAML}kubeVersion: ">=1.25.0-0"\ndescription: the fixture\n`,
  'values.yaml': [
    'big: 1800000',
    'nested:',
    '  keep: kept',
    '  drop: dropped',
    'list: [a, b]',
    'tplText: "{{ .Release.Name }}-from-tpl"',
    'empty: ""',
    '',
  ].join('\n'),
  '.helmignore': 'ignored/\n*.bak\n',
  'files/a.txt': 'alpha\n',
  'files/b.txt': 'beta\n',
  'files/c.md': 'gamma\n',
  'files/old.bak': 'ignored\n',
  'ignored/x.txt': 'ignored\n',
  'templates/_helpers.tpl': [
    '{{- define "fixture.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end }}',
    '{{- define "fixture.loop" -}}{{ include "fixture.loop" . }}{{- end }}',
    'this text is never rendered',
    '',
  ].join('\n'),
  // Two defines of one name: Helm parses names in reverse order, so the one in _a.tpl wins.
  'templates/_a.tpl': '{{ define "dup" }}from-a{{ end }}',
  'templates/_b.tpl': '{{ define "dup" }}from-b{{ end }}',
  'templates/NOTES.txt': 'notes for {{ include "fixture.name" . }}\n',
  'templates/values.yaml': [
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata:',
    '  name: {{ include "fixture.name" . }}',
    'data:',
    '  missing: "{{ .Values.nope }}|{{ .Release.Nope }}"',
    '  big: "{{ .Values.big }}"',
    '  nested: {{ toJson .Values.nested | quote }}',
    '  list: {{ .Values.list | join "," | quote }}',
    '  tpl: {{ tpl .Values.tplText . | quote }}',
    '  fromYaml: {{ (fromYaml "a: {b: 7}").a.b | quote }}',
    '  toYaml: {{ toYaml (dict "k" "v") | quote }}',
    '  lookup: {{ if lookup "v1" "Secret" "ns" "x" }}found{{ else }}none{{ end }}',
    '  dup: {{ include "dup" . }}',
    '---',
    '---',
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata:',
    '  name: context',
    'data:',
    '  release: "{{ .Release.Name }} {{ .Release.Namespace }} {{ .Release.Service }} {{ .Release.IsInstall }} {{ .Release.Revision }}"',
    '  chart: "{{ .Chart.Name }} {{ .Chart.Version }} {{ .Chart.AppVersion }} {{ .Chart.Description }}"',
    '  kube: "{{ .Capabilities.KubeVersion.Version }} {{ .Capabilities.KubeVersion.Major }}.{{ .Capabilities.KubeVersion.Minor }}"',
    '  apis: "{{ .Capabilities.APIVersions.Has "apps/v1" }} {{ .Capabilities.APIVersions.Has "nope/v9" }}"',
    '  template: "{{ .Template.Name }} {{ .Template.BasePath }}"',
    '  file: {{ .Files.Get "files/a.txt" | quote }}',
    '  glob: "{{ range $p, $_ := .Files.Glob "files/*.txt" }}{{ $p }};{{ end }}"',
    '  ignored: "{{ .Files.Get "ignored/x.txt" }}{{ .Files.Get "files/old.bak" }}"',
    '',
  ].join('\n'),
  'templates/sub/nested.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sub\n',
  'templates/empty.yaml': '{{- if false }}\nkind: Nothing\n{{- end }}\n',
})

const dataOf = (r: ReturnType<typeof render>, name: string) =>
  one(r, 'ConfigMap', name).data as Record<string, string>

describe("helm-render: Helm's engine semantics", () => {
  test('missing keys render empty, numbers from YAML print as Helm prints float64s', () => {
    const d = dataOf(render(fixture, { release: 'rel' }), 'fixture-rel')
    assert.equal(d.missing, '|', 'missingkey=zero, then <no value> removed')
    assert.equal(d.big, '1.8e+06', 'values.yaml numbers are float64 in Helm')
    const set = dataOf(render(fixture, { release: 'rel', set: ['big=1800000'] }), 'fixture-rel')
    assert.equal(set.big, '1800000', '--set integers are int64')
  })

  test('include, tpl, fromYaml, toYaml, toJson, sprig, lookup (empty), define order', () => {
    const d = dataOf(render(fixture, { release: 'rel' }), 'fixture-rel')
    assert.equal(d.tpl, 'rel-from-tpl')
    assert.equal(d.fromYaml, '7')
    assert.equal(d.toYaml, 'k: v')
    assert.deepEqual(JSON.parse(d.nested!), { keep: 'kept', drop: 'dropped' })
    assert.equal(d.list, 'a,b')
    assert.equal(d.lookup, 'none')
    assert.equal(d.dup, 'from-a', 'of two defines, the one Helm parses last')
  })

  test('.Release, .Chart (capitalised), .Capabilities, .Template, .Files (.helmignore applied)', () => {
    const d = dataOf(render(fixture, { release: 'rel', namespace: 'ns' }), 'context')
    assert.equal(d.release, 'rel ns Helm true 1')
    assert.equal(d.chart, 'fixture 1.2.3 4.5 the fixture')
    assert.equal(d.kube, 'v1.29.0 1.29')
    assert.equal(d.apis, 'true false')
    assert.equal(d.template, 'fixture/templates/values.yaml fixture/templates')
    assert.equal(d.file, 'alpha\n')
    assert.equal(d.glob, 'files/a.txt;files/b.txt;')
    assert.equal(d.ignored, '')
    assert.equal(
      dataOf(render(fixture, { kubeVersion: 'v1.31.2' }), 'context').kube,
      'v1.31.2 1.31',
    )
  })

  test('documents split on ---, empty ones dropped, partials and NOTES.txt not manifests', () => {
    const r = render(fixture, { release: 'rel' })
    assert.deepEqual(
      r.manifests.map((m) => `${m.source} ${at(m.object, 'metadata.name')}`),
      [
        'fixture/templates/sub/nested.yaml sub',
        'fixture/templates/values.yaml fixture-rel',
        'fixture/templates/values.yaml context',
      ],
    )
    assert.equal(r.notes, 'notes for fixture-rel\n')
  })

  test('values: -f files merge in order, --set on top, a null deletes a default', () => {
    const a = join(tmp, 'a.yaml')
    const b = join(tmp, 'b.yaml')
    writeFileSync(a, 'nested: {keep: from-a, extra: a}\nlist: [x]\n')
    writeFileSync(b, 'nested: {keep: from-b, drop: null}\n')
    const r = render(fixture, { valueFiles: [a, b], set: ['list={p,q}', 'flag=true', 'n=007'] })
    assert.deepEqual(r.values.nested, { keep: 'from-b', extra: 'a' })
    assert.deepEqual(r.values.list, ['p', 'q'])
    assert.equal(r.values.flag, true)
    assert.equal(r.values.n, '007', 'a leading zero keeps a string, as strvals does')
  })

  const failing: Array<[string, Record<string, string>, RegExp]> = [
    [
      'an undefined function',
      { 'templates/x.yaml': '{{ "a" | sha256sumX }}\n' },
      /function "sha256sumX" not defined/,
    ],
    ['env, removed as in Helm', { 'templates/x.yaml': '{{ env "HOME" }}\n' }, /"env" not defined/],
    [
      'an include without context',
      {
        'templates/_h.tpl': '{{ define "n" }}x{{ end }}',
        'templates/x.yaml': 'a: {{ include "n" }}\n',
      },
      /wrong number of args for include/,
    ],
    [
      'an include of itself',
      {
        'templates/_h.tpl': '{{ define "loop" }}{{ include "loop" . }}{{ end }}',
        'templates/x.yaml': 'a: {{ include "loop" . }}\n',
      },
      /nested reference name: loop/,
    ],
    [
      'required without a value',
      { 'templates/x.yaml': 'a: {{ required "give a name" .Values.name }}\n' },
      /give a name/,
    ],
    ['fail', { 'templates/x.yaml': '{{ fail "stop here" }}\n' }, /stop here/],
    [
      'a lowercase .Chart field',
      { 'templates/x.yaml': 'a: {{ .Chart.name }}\n' },
      /can't evaluate field name/,
    ],
    [
      'a document that is not YAML',
      { 'templates/x.yaml': 'a: [b\n' },
      /YAML parse error on bad-\d+\/templates\/x.yaml/,
    ],
    [
      'a kubeVersion the cluster does not meet',
      { 'Chart.yaml': 'apiVersion: v2\nname: bad\nversion: 1.0.0\nkubeVersion: ">=9.0.0"\n' },
      /requires kubeVersion: >=9.0.0/,
    ],
  ]
  for (const [i, [what, files, expected]] of failing.entries()) {
    test(`the render fails on ${what}`, () => {
      const name = `bad-${i}`
      const dir = chart(name, { 'Chart.yaml': CHART_YAML.replace('fixture', name), ...files })
      assert.throws(
        () => render(dir),
        (err: unknown) => {
          assert.ok(err instanceof RenderError, String(err))
          assert.equal(err.status, 1)
          assert.match(err.message, expected)
          return true
        },
      )
    })
  }
})

describe('the object validator (kubernetes-models, strict)', () => {
  const deployment = (patch: (d: Obj) => void): Obj => {
    const d: Obj = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x', labels: { app: 'x' } },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'x' } },
        template: {
          metadata: { labels: { app: 'x' } },
          spec: { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 80 }] }] },
        },
      },
    }
    patch(d)
    return d
  }
  const spec = (d: Obj) => d.spec as Obj
  const pod = (d: Obj) => at(d, 'spec.template.spec') as Obj

  test('a valid Deployment passes (the control)', async () => {
    assert.deepEqual(await validateObject(deployment(() => {})), [])
  })

  const cases: Array<[string, (d: Obj) => void, RegExp]> = [
    ['a wrong type', (d) => (spec(d).replicas = 'two'), /spec\/replicas must be integer/],
    [
      'an unknown field deep down',
      (d) => ((pod(d).containers as Obj[])[0]!.imagePullPolcy = 'Always'),
      /unknown field \/spec\/template\/spec\/containers\/0\/imagePullPolcy/,
    ],
    ['a missing required field', (d) => delete pod(d).containers, /containers/],
    [
      'a selector that misses the pods',
      (d) => (spec(d).selector = { matchLabels: { app: 'y' } }),
      /selector does not match/,
    ],
    [
      'a name that is no DNS subdomain',
      (d) => ((d.metadata as Obj).name = 'Saslgate_1'),
      /not a DNS subdomain/,
    ],
    [
      'a label value with a space',
      (d) => ((d.metadata as Obj).labels = { app: 'a b' }),
      /not a label value/,
    ],
    [
      'a kind without a schema',
      (d) => (d.kind = 'Deploymnet'),
      /no schema for apps\/v1 Deploymnet/,
    ],
  ]
  for (const [what, patch, expected] of cases) {
    test(`it refuses ${what}`, async () => {
      const errors = await validateObject(deployment(patch))
      assert.ok(
        errors.some((e) => expected.test(e)),
        `expected ${expected}, got ${JSON.stringify(errors)}`,
      )
    })
  }
})

/** A copy of the real chart with one template edited (the edit must apply exactly once). */
function sabotaged(name: string, file: string, from: string, to: string): string {
  const dir = join(tmp, name)
  cpSync(CHART, dir, { recursive: true })
  const path = join(dir, 'templates', file)
  const text = readFileSync(path, 'utf8')
  assert.equal(text.split(from).length, 2, `${file}: ${from} must occur once`)
  writeFileSync(path, text.replace(from, to))
  return dir
}

const CHART_TEST = fileURLToPath(new URL('./helm-chart.test.ts', import.meta.url))

/** test/deploy/helm-chart.test.ts run against a chart: its exit status and report. */
function chartTests(dir: string) {
  // Without the runner's NODE_TEST_CONTEXT the child reports (and exits) as a run of its own.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', CHART_TEST], {
    encoding: 'utf8',
    env: { ...env, HELM_CHART_UNDER_TEST: `${dir}/` },
    timeout: 120_000,
  })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

describe("the issue's sabotage of the chart is caught", () => {
  const cases: Array<[string, string, string, string, RegExp]> = [
    [
      'an undefined function (sha256sumX)',
      'deployment.yaml',
      '"/configmap.yaml") . | sha256sum }}',
      '"/configmap.yaml") . | sha256sumX }}',
      /function "sha256sumX" not defined/,
    ],
    [
      'an include without context',
      'configmap.yaml',
      'name: {{ include "saslgate.fullname" . }}',
      'name: {{ include "saslgate.fullname" }}',
      /wrong number of args for include: want 2 got 1/,
    ],
  ]
  for (const [what, file, from, to, expected] of cases) {
    test(`${what}: the render fails, and so do the chart tests`, () => {
      const dir = sabotaged(what.replace(/\W+/g, '-'), file, from, to)
      assert.throws(() => render(dir), expected)
      const run = chartTests(dir)
      assert.notEqual(run.status, 0, 'the chart tests passed on a sabotaged chart')
      assert.match(run.output, expected)
    })
  }

  test('a broken nindent under matchLabels: validation fails, and so do the chart tests', async () => {
    const dir = sabotaged(
      'nindent',
      'deployment.yaml',
      'matchLabels:\n      {{- include "saslgate.selectorLabels" . | nindent 6 }}',
      'matchLabels:\n      {{- include "saslgate.selectorLabels" . | nindent 4 }}',
    )
    // Still YAML: the labels land beside matchLabels, which is left empty.
    const r = render(dir)
    const errors = await validateAll(r)
    assert.ok(
      errors.some((e) => /unknown field \/spec\/selector\/app.kubernetes.io\/name/.test(e)),
      errors.join('\n'),
    )
    assert.ok(
      errors.some((e) => /spec.selector.matchLabels is empty/.test(e)),
      errors.join('\n'),
    )
    const run = chartTests(dir)
    assert.notEqual(run.status, 0, 'the chart tests passed on a sabotaged chart')
    assert.match(run.output, /unknown field \/spec\/selector/)
  })

  test('the unmodified copy passes the chart tests (the control)', () => {
    const dir = join(tmp, 'control')
    cpSync(CHART, dir, { recursive: true })
    const run = chartTests(dir)
    assert.equal(run.status, 0, run.output.slice(-3000))
    assert.match(run.output, /# fail 0/)
  })
})
