import assert from 'node:assert/strict'
import { test } from 'node:test'
import { renderSvg } from '../../src/demo/chart.js'

test('the storm chart renders to SVG headless, one line per system, phases labelled', async () => {
  const points = [
    { system: 'saslauthd', phase: 'KDC +300 ms', t: 0, p99Ms: 5000 },
    { system: 'saslauthd', phase: 'KDC +300 ms', t: 0.25, p99Ms: 4800 },
    { system: 'saslgate', phase: 'KDC +300 ms', t: 0, p99Ms: 3 },
    { system: 'saslgate', phase: 'KDC black-holed', t: 5, p99Ms: 0 },
  ]
  const svg = await renderSvg(points, 'test chart')
  assert.match(svg, /^<svg /)
  for (const text of ['saslauthd', 'saslgate', 'KDC +300 ms', 'KDC black-holed', 'test chart']) {
    assert.ok(svg.includes(text), `missing ${text}`)
  }
  // two systems -> two line paths with different strokes
  const strokes = new Set([...svg.matchAll(/stroke="(#[0-9a-f]{6})"/g)].map((m) => m[1]))
  assert.ok(strokes.size >= 2)
})
