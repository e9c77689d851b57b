/**
 * A strict parser for the Prometheus text exposition format (0.0.4), for tests that assert
 * `/metrics` parses and that counters move.
 *
 * Strict means it throws `PrometheusParseError` (with the line number) on: a missing final
 * line feed, a carriage return, a malformed metric or label name, an unterminated or badly
 * escaped label value or HELP text, a duplicate label, an unknown TYPE, a second HELP or TYPE
 * for one name, HELP/TYPE after that family's samples, a family's samples split into two
 * groups, a duplicate series, a bad value or timestamp, anything trailing, a negative counter,
 * and histograms whose buckets lack `le` or `+Inf`, decrease, or disagree with `_count`.
 * Other `#` lines are comments (`# UNIT` is recorded when well formed).
 */

export type PrometheusType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'

export interface PromSample {
  name: string
  labels: Record<string, string>
  value: number
  timestampMs?: number
  /** 1-based line number. */
  line: number
}

export interface PromFamily {
  name: string
  type: PrometheusType
  help?: string
  unit?: string
  samples: PromSample[]
}

export interface PromText {
  families: Map<string, PromFamily>
  /** Every sample in input order. */
  samples: PromSample[]
}

export class PrometheusParseError extends Error {
  readonly line: number
  constructor(line: number, message: string) {
    super(`prometheus text line ${line}: ${message}`)
    this.name = 'PrometheusParseError'
    this.line = line
  }
}

const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/
const INTEGER = /^-?\d+$/

export function parsePrometheusText(text: string): PromText {
  const families = new Map<string, PromFamily>()
  const samples: PromSample[] = []
  /** Families whose sample group is over (another family's samples came after). */
  const closed = new Set<string>()
  const seriesSeen = new Set<string>()
  const helpSeen = new Set<string>()
  const typeSeen = new Set<string>()
  let current: string | undefined

  if (text.length > 0 && !text.endsWith('\n')) {
    throw new PrometheusParseError(text.split('\n').length, 'the last line must end with \\n')
  }
  const lines = text.split('\n')
  lines.pop() // after the final \n (or the empty input)

  const family = (name: string, line: number): PromFamily => {
    let f = families.get(name)
    if (f === undefined) {
      f = { name, type: 'untyped', samples: [] }
      families.set(name, f)
    }
    if (f.samples.length > 0) {
      throw new PrometheusParseError(line, `HELP/TYPE for ${name} after its samples`)
    }
    return f
  }

  lines.forEach((raw, index) => {
    const n = index + 1
    if (raw.includes('\r')) throw new PrometheusParseError(n, 'carriage return in line')
    const line = raw.replace(/^[ \t]+/, '')
    if (line === '') return
    if (line.startsWith('#')) {
      const rest = line.slice(1).replace(/^[ \t]+/, '')
      const keyword = /^(HELP|TYPE|UNIT)(?:[ \t]+|$)/.exec(rest)
      if (keyword === null) return // a comment
      const body = rest.slice(keyword[0].length)
      const nameMatch = METRIC_NAME.exec(body)
      if (keyword[1] === 'UNIT') {
        // OpenMetrics metadata: a comment in 0.0.4; keep the unit when well formed.
        const unit = nameMatch && /^[ \t]+(\S*)[ \t]*$/.exec(body.slice(nameMatch[0].length))
        if (nameMatch && unit) {
          const f = families.get(nameMatch[0])
          if (f !== undefined && f.samples.length === 0) f.unit = unit[1]
          else if (f === undefined)
            families.set(nameMatch[0], {
              name: nameMatch[0],
              type: 'untyped',
              unit: unit[1],
              samples: [],
            })
        }
        return
      }
      if (nameMatch === null) throw new PrometheusParseError(n, `${keyword[1]} without metric name`)
      const name = nameMatch[0]
      const after = body.slice(name.length)
      if (after !== '' && !/^[ \t]/.test(after)) {
        throw new PrometheusParseError(n, `bad metric name in ${keyword[1]}`)
      }
      const value = after.replace(/^[ \t]+/, '')
      if (closed.has(name) || current === name) {
        throw new PrometheusParseError(n, `${keyword[1]} for ${name} after its samples`)
      }
      // Metadata of another family ends the current group.
      if (current !== undefined) closed.add(current)
      current = undefined
      if (keyword[1] === 'HELP') {
        if (helpSeen.has(name)) throw new PrometheusParseError(n, `second HELP for ${name}`)
        helpSeen.add(name)
        family(name, n).help = unescapeHelp(value, n)
      } else {
        if (typeSeen.has(name)) throw new PrometheusParseError(n, `second TYPE for ${name}`)
        const type = value.replace(/[ \t]+$/, '')
        if (!TYPES.has(type)) throw new PrometheusParseError(n, `unknown TYPE "${type}"`)
        typeSeen.add(name)
        family(name, n).type = type as PrometheusType
      }
      return
    }
    const sample = parseSample(line, n)
    const fam = familyOf(families, typeSeen, sample.name)
    if (fam !== current) {
      if (fam !== undefined && closed.has(fam)) {
        throw new PrometheusParseError(n, `samples of ${fam} are not in one group`)
      }
      if (current !== undefined) closed.add(current)
      current = fam
    }
    const key = seriesKey(sample)
    if (seriesSeen.has(key)) throw new PrometheusParseError(n, `duplicate series ${key}`)
    seriesSeen.add(key)
    let f = families.get(fam)
    if (f === undefined) {
      f = { name: fam, type: 'untyped', samples: [] }
      families.set(fam, f)
    }
    checkSample(f, sample)
    f.samples.push(sample)
    samples.push(sample)
  })

  for (const f of families.values()) {
    if (f.type === 'histogram') checkHistogram(f)
  }
  return { families, samples }
}

/** Samples named `name` whose labels include every pair in `labels`. */
export function findSamples(
  parsed: PromText,
  name: string,
  labels: Record<string, string> = {},
): PromSample[] {
  return parsed.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
}

/** The sum of the values of `findSamples(parsed, name, labels)` (0 when none). */
export function sampleSum(
  parsed: PromText,
  name: string,
  labels: Record<string, string> = {},
): number {
  return findSamples(parsed, name, labels).reduce((sum, s) => sum + s.value, 0)
}

function familyOf(
  families: Map<string, PromFamily>,
  typed: ReadonlySet<string>,
  name: string,
): string {
  if (typed.has(name)) return name
  for (const [suffix, types] of [
    ['_bucket', ['histogram']],
    ['_sum', ['histogram', 'summary']],
    ['_count', ['histogram', 'summary']],
  ] as const) {
    if (!name.endsWith(suffix)) continue
    const base = name.slice(0, -suffix.length)
    const f = families.get(base)
    if (f !== undefined && (types as readonly string[]).includes(f.type)) return base
  }
  return name
}

function parseSample(line: string, n: number): PromSample {
  const nameMatch = METRIC_NAME.exec(line)
  if (nameMatch === null) throw new PrometheusParseError(n, 'bad metric name')
  const name = nameMatch[0]
  let pos = name.length
  const labels: Record<string, string> = {}
  const skipBlanks = () => {
    while (line[pos] === ' ' || line[pos] === '\t') pos++
  }
  skipBlanks()
  const blankAfterName = pos > name.length
  const hasLabelSet = line[pos] === '{'
  if (hasLabelSet) {
    pos++
    for (;;) {
      skipBlanks()
      if (line[pos] === '}') {
        pos++
        break
      }
      const labelMatch = LABEL_NAME.exec(line.slice(pos))
      if (labelMatch === null) throw new PrometheusParseError(n, 'bad label name')
      const label = labelMatch[0]
      pos += label.length
      if (Object.hasOwn(labels, label)) {
        throw new PrometheusParseError(n, `duplicate label ${label}`)
      }
      skipBlanks()
      if (line[pos] !== '=') throw new PrometheusParseError(n, `expected = after label ${label}`)
      pos++
      skipBlanks()
      if (line[pos] !== '"') throw new PrometheusParseError(n, `expected " for label ${label}`)
      pos++
      let value = ''
      for (;;) {
        const c = line[pos]
        if (c === undefined) throw new PrometheusParseError(n, `unterminated value of ${label}`)
        pos++
        if (c === '"') break
        if (c === '\\') {
          const e = line[pos]
          pos++
          if (e === '\\') value += '\\'
          else if (e === '"') value += '"'
          else if (e === 'n') value += '\n'
          else throw new PrometheusParseError(n, `bad escape \\${e ?? ''} in label ${label}`)
        } else {
          value += c
        }
      }
      labels[label] = value
      skipBlanks()
      if (line[pos] === ',') {
        pos++
        continue
      }
      if (line[pos] === '}') {
        pos++
        break
      }
      throw new PrometheusParseError(n, `expected , or } after label ${label}`)
    }
  }
  const rest = line.slice(pos)
  // After a label set the blank is optional (as in Prometheus' own parser); after a bare name
  // it separates the name from the value.
  if (rest !== '' && !hasLabelSet && !blankAfterName) {
    throw new PrometheusParseError(n, 'expected a blank')
  }
  const tokens = rest.trim() === '' ? [] : rest.trim().split(/[ \t]+/)
  if (tokens.length < 1 || tokens.length > 2) {
    throw new PrometheusParseError(n, 'expected a value and an optional timestamp')
  }
  const value = parseValue(tokens[0]!, n)
  const sample: PromSample = { name, labels, value, line: n }
  if (tokens[1] !== undefined) {
    if (!INTEGER.test(tokens[1])) throw new PrometheusParseError(n, 'bad timestamp')
    sample.timestampMs = Number(tokens[1])
  }
  return sample
}

function parseValue(token: string, n: number): number {
  if (DECIMAL.test(token)) return Number(token)
  if (/^nan$/i.test(token)) return Number.NaN
  const inf = /^([+-]?)(?:inf|infinity)$/i.exec(token)
  if (inf !== null) return inf[1] === '-' ? -Infinity : Infinity
  throw new PrometheusParseError(n, `bad value "${token}"`)
}

function unescapeHelp(text: string, n: number): string {
  let out = ''
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (c !== '\\') {
      out += c
      continue
    }
    const e = text[++i]
    if (e === '\\') out += '\\'
    else if (e === 'n') out += '\n'
    else throw new PrometheusParseError(n, `bad escape \\${e ?? ''} in HELP`)
  }
  return out
}

function seriesKey(sample: PromSample): string {
  const labels = Object.entries(sample.labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
  return `${sample.name}{${labels.join(',')}}`
}

function checkSample(f: PromFamily, s: PromSample): void {
  if (f.type === 'counter' && !(s.value >= 0)) {
    throw new PrometheusParseError(s.line, `counter ${s.name} is negative or NaN`)
  }
  if (f.type === 'histogram') {
    if (s.name === `${f.name}_bucket`) {
      if (s.labels.le === undefined) throw new PrometheusParseError(s.line, 'bucket without le')
      parseValue(s.labels.le, s.line)
    } else if (s.name !== `${f.name}_sum` && s.name !== `${f.name}_count`) {
      throw new PrometheusParseError(s.line, `${s.name} in histogram ${f.name}`)
    }
  }
  if (f.type === 'summary' && s.name === f.name && s.labels.quantile === undefined) {
    throw new PrometheusParseError(s.line, `summary ${f.name} sample without quantile`)
  }
}

function checkHistogram(f: PromFamily): void {
  const groups = new Map<string, { buckets: [number, number, number][]; count?: PromSample }>()
  const groupOf = (s: PromSample) => {
    const { le: _le, ...rest } = s.labels
    const key = seriesKey({ ...s, name: '', labels: rest })
    let g = groups.get(key)
    if (g === undefined) {
      g = { buckets: [] }
      groups.set(key, g)
    }
    return g
  }
  for (const s of f.samples) {
    if (s.name === `${f.name}_bucket`) {
      groupOf(s).buckets.push([parseValue(s.labels.le!, s.line), s.value, s.line])
    } else if (s.name === `${f.name}_count`) {
      groupOf(s).count = s
    }
  }
  for (const g of groups.values()) {
    const line = g.buckets[0]?.[2] ?? g.count?.line ?? 0
    const sorted = [...g.buckets].sort((a, b) => a[0] - b[0])
    const last = sorted[sorted.length - 1]
    if (last === undefined || last[0] !== Infinity) {
      throw new PrometheusParseError(line, `histogram ${f.name} without an le="+Inf" bucket`)
    }
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]![1] < sorted[i - 1]![1]) {
        throw new PrometheusParseError(sorted[i]![2], `histogram ${f.name} buckets decrease`)
      }
    }
    if (g.count !== undefined && g.count.value !== last[1]) {
      throw new PrometheusParseError(g.count.line, `histogram ${f.name} _count differs from +Inf`)
    }
  }
}
