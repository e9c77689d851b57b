// The Grafana dashboard is wired to exactly the metrics src/telemetry/metrics.ts defines:
// every metric name and label its queries use exists there, and every metric is on it.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import {
  allPrometheusSeriesNames,
  METRICS,
  type MetricSpec,
  prometheusSeriesNames,
} from '../../src/telemetry/metrics.js'

const DASHBOARD = new URL('../../deploy/grafana/saslgate-dashboard.json', import.meta.url)

interface Panel {
  id: number
  type: string
  title: string
  datasource?: { type: string; uid: string }
  targets?: { expr: string; datasource?: { uid: string } }[]
  gridPos: { h: number; w: number; x: number; y: number }
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  uid: string
  templating: { list: { name: string; type: string; query: unknown }[] }
  panels: Panel[]
}

/** Every PromQL expression: panel targets and query variables. */
function expressions(): string[] {
  const out: string[] = []
  for (const p of dashboard.panels) for (const t of p.targets ?? []) out.push(t.expr)
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue
    const q = v.query
    out.push(typeof q === 'string' ? q : String((q as { query: string }).query))
  }
  return out
}

const METRIC_NAME = /\bsaslgate_[a-zA-Z0-9_:]*/g
const SERIES_TO_SPEC = new Map<string, MetricSpec>(
  Object.values(METRICS).flatMap((spec) =>
    prometheusSeriesNames(spec).map((name) => [name, spec] as const),
  ),
)
/** Labels every series has (Prometheus target labels, histogram buckets). */
const TARGET_LABELS = new Set(['job', 'instance', 'le'])
/** Grafana's reference to the datasource variable. */
const DATASOURCE_VAR = '$' + '{datasource}'

describe('Grafana dashboard', () => {
  test('every metric name in an expression is defined in metrics.ts', () => {
    const known = new Set(allPrometheusSeriesNames())
    const used = expressions().flatMap((e) => e.match(METRIC_NAME) ?? [])
    assert.ok(used.length > 0)
    for (const name of used) assert.ok(known.has(name), `${name} is not defined in metrics.ts`)
  })

  test('every metric in metrics.ts is on the dashboard', () => {
    const used = new Set(expressions().flatMap((e) => e.match(METRIC_NAME) ?? []))
    for (const spec of Object.values(METRICS)) {
      assert.ok(
        prometheusSeriesNames(spec).some((n) => used.has(n)),
        `${spec.name} is not on the dashboard`,
      )
    }
  })

  test('every label an expression matches or groups by belongs to its metrics', () => {
    for (const expr of expressions()) {
      const specs = (expr.match(METRIC_NAME) ?? []).map((n) => SERIES_TO_SPEC.get(n)!)
      const allowed = new Set([...TARGET_LABELS, ...specs.flatMap((s) => s.labels)])
      const labels: string[] = []
      for (const m of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
        labels.push(...m[1]!.split(',').map((l) => l.trim()))
      }
      for (const m of expr.matchAll(/\{([^}]*)\}/g)) {
        for (const matcher of m[1]!.split(',')) {
          const name = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/.exec(matcher)?.[1]
          if (name !== undefined) labels.push(name)
        }
      }
      for (const label of labels.filter((l) => l !== '')) {
        assert.ok(allowed.has(label), `label "${label}" in ${expr}`)
      }
    }
  })

  test('queries use the Prometheus datasource variable; panels are laid out sanely', () => {
    const ds = dashboard.templating.list.find((v) => v.name === 'datasource')
    assert.equal(ds?.type, 'datasource')
    assert.equal(ds?.query, 'prometheus')
    const ids = new Set<number>()
    for (const p of dashboard.panels) {
      assert.ok(!ids.has(p.id), `panel id ${p.id} is unique`)
      ids.add(p.id)
      assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the grid`)
      if (p.type === 'row') continue
      assert.equal(p.datasource?.uid, DATASOURCE_VAR, `${p.title} uses $datasource`)
      assert.ok((p.targets ?? []).length > 0, `${p.title} has a query`)
      for (const t of p.targets ?? []) {
        assert.equal(t.datasource?.uid, DATASOURCE_VAR)
        assert.match(t.expr, /job=~"\$job"/, `${p.title}: filtered by $job`)
      }
    }
    assert.equal(dashboard.uid, 'saslgate-overview')
  })
})
