/**
 * Renders the storm chart (legit-login latency over time, one line per system) to SVG with
 * Vega-Lite, headless (no browser, no canvas), and to PNG when `rsvg-convert` is installed.
 */
import { spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'

export interface LatencyPoint {
  /** `saslauthd`, `saslgate`, ... */
  system: string
  /** Scenario label (`KDC +300 ms`, `KDC black-holed`, ...). */
  phase: string
  /** Seconds since the start of the whole run. */
  t: number
  /** Legit-login p99 in that bucket, ms (timeouts count as the client's give-up time). */
  p99Ms: number
}

export function chartSpec(points: readonly LatencyPoint[], title: string): Record<string, unknown> {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 720,
    height: 320,
    background: 'white',
    data: { values: points.map((p) => ({ ...p, p99Ms: Math.max(p.p99Ms, 0.1) })) },
    layer: [
      {
        mark: { type: 'line', point: { size: 12 }, interpolate: 'step-after' },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 'seconds into the storm' },
          y: {
            field: 'p99Ms',
            type: 'quantitative',
            title: 'legit login p99 (ms, log scale)',
            scale: { type: 'log' },
          },
          color: { field: 'system', type: 'nominal', title: null },
          detail: { field: 'phase' },
        },
      },
      {
        mark: { type: 'text', dy: -150, fontSize: 11, color: '#555' },
        transform: [{ aggregate: [{ op: 'min', field: 't', as: 't' }], groupby: ['phase'] }],
        encoding: {
          x: { field: 't', type: 'quantitative' },
          text: { field: 'phase' },
        },
      },
    ],
  }
}

export async function renderSvg(points: readonly LatencyPoint[], title: string): Promise<string> {
  const vega = await import('vega')
  const { compile } = await import('vega-lite')
  const view = new vega.View(vega.parse(compile(chartSpec(points, title) as never).spec), {
    renderer: 'none',
  })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

/** Writes `<base>.svg`, and `<base>.png` when rsvg-convert exists. Returns the paths written. */
export async function writeChart(
  base: string,
  points: readonly LatencyPoint[],
  title: string,
): Promise<string[]> {
  const svg = await renderSvg(points, title)
  await writeFile(`${base}.svg`, svg)
  const written = [`${base}.svg`]
  const r = spawnSync('rsvg-convert', ['-f', 'png', '-o', `${base}.png`, `${base}.svg`], {
    timeout: 20_000,
  })
  if (r.status === 0) written.push(`${base}.png`)
  return written
}
