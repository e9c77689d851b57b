/**
 * Loads the configuration once: schema defaults <- config file (YAML or JSON) <- `SASLGATE_*`
 * environment variables <- command-line settings. Unknown options and bad values fail at
 * start with a message naming the option (and the closest real one for a near miss). The
 * result is deep-frozen.
 *
 * Kubernetes service links are the one exception to "unknown SASLGATE_* fails": every Service
 * of the namespace whose name starts with `saslgate` (the chart's own, under release
 * `saslgate`) puts `SASLGATE..._SERVICE_HOST`, `..._PORT_8443_TCP` and the like into every pod
 * that has `enableServiceLinks` on. Those are recognised by name *and* value
 * (`isServiceLinkVariable`) and ignored; the chart turns service links off as well.
 */
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { type Config, type Leaf, SCHEMA } from './config-schema.js'
import { SaslgateError } from './errors.js'

export type { Config } from './config-schema.js'

type Raw = Record<string, unknown>

function fail(option: string, message: string): never {
  throw new SaslgateError('SASLGATE_ERR_CONFIG', `config option ${option}: ${message}`)
}

/** Every option as `section.key`, with its leaf. */
export function options(): Array<[string, Leaf]> {
  const out: Array<[string, Leaf]> = []
  for (const [section, leaves] of Object.entries(SCHEMA)) {
    for (const [key, leaf] of Object.entries(leaves)) out.push([`${section}.${key}`, leaf as Leaf])
  }
  return out
}

/** `kerberos.checkDeadlineMs` -> `SASLGATE_KERBEROS_CHECK_DEADLINE_MS`. */
export function envName(option: string): string {
  return `SASLGATE_${option
    .replace('.', '_')
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()}`
}

/**
 * Names and values Kubernetes gives a Service `S` (name upper-cased, `-` -> `_`) in a pod:
 *   S_SERVICE_HOST=10.0.0.1   S_SERVICE_PORT=8443   S_SERVICE_PORT_<PORTNAME>=8443
 *   S_PORT=tcp://10.0.0.1:8443   S_PORT_8443_TCP=tcp://10.0.0.1:8443
 *   S_PORT_8443_TCP_PROTO=tcp   S_PORT_8443_TCP_PORT=8443   S_PORT_8443_TCP_ADDR=10.0.0.1
 * No option's environment name may end in `_SERVICE_HOST`, `_SERVICE_PORT[_X]` or `_PORT[_...]`
 * (a unit test holds every option to it), so a link can never set or shadow an option; and a
 * value must look like the link's too, so `SASLGATE_SERVICE_PORT=abc` still fails.
 */
const IP = String.raw`(?:\d{1,3}(?:\.\d{1,3}){3}|\[?[0-9A-Fa-f:]+\]?)`
const PORT = String.raw`\d{1,5}`
const PROTO = '(?:tcp|udp|sctp)'
const SERVICE_LINK: ReadonlyArray<[RegExp, RegExp]> = [
  [/^SASLGATE(?:_[A-Z0-9_]+)?_SERVICE_HOST$/, new RegExp(`^${IP}$`)],
  [/^SASLGATE(?:_[A-Z0-9_]+)?_SERVICE_PORT(?:_[A-Z0-9_]+)?$/, new RegExp(`^${PORT}$`)],
  [
    /^SASLGATE(?:_[A-Z0-9_]+)?_PORT(?:_\d+_(?:TCP|UDP|SCTP))?$/,
    new RegExp(`^${PROTO}://${IP}:${PORT}$`),
  ],
  [/^SASLGATE(?:_[A-Z0-9_]+)?_PORT_\d+_(?:TCP|UDP|SCTP)_PROTO$/, new RegExp(`^${PROTO}$`)],
  [/^SASLGATE(?:_[A-Z0-9_]+)?_PORT_\d+_(?:TCP|UDP|SCTP)_PORT$/, new RegExp(`^${PORT}$`)],
  [/^SASLGATE(?:_[A-Z0-9_]+)?_PORT_\d+_(?:TCP|UDP|SCTP)_ADDR$/, new RegExp(`^${IP}$`)],
]

/** The name has the shape of a Kubernetes service-link variable (whatever its value). */
export function hasServiceLinkName(name: string): boolean {
  return SERVICE_LINK.some(([n]) => n.test(name))
}

/** A Kubernetes service-link variable: its name and its value have the shapes Kubernetes uses. */
export function isServiceLinkVariable(name: string, value: string): boolean {
  return SERVICE_LINK.some(([n, v]) => n.test(name) && v.test(value))
}

/** Edit distance (insert, delete, substitute), for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(
        prev[j]! + 1,
        cur[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      )
    prev = cur
  }
  return prev[b.length]!
}

/** ` (did you mean X?)` for the closest candidate within a few edits, else ''. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  let best: string | undefined
  let bestD = Number.POSITIVE_INFINITY
  for (const c of candidates) {
    const d = distance(name.toLowerCase(), c.toLowerCase())
    if (d < bestD) {
      best = c
      bestD = d
    }
  }
  // A third of the name, at most 4 edits: a typo or a missing word, not an unrelated option.
  const limit = Math.min(4, Math.max(1, Math.floor(name.length / 3)))
  return best !== undefined && bestD <= limit ? ` (did you mean ${best}?)` : ''
}

/** Turns a string from the environment or the command line into the leaf's type. */
function fromString(option: string, leaf: Leaf, text: string): unknown {
  switch (leaf.type) {
    case 'string':
    case 'enum':
      return text
    case 'int': {
      if (!/^-?\d+$/.test(text.trim())) fail(option, `expected an integer, got "${text}"`)
      return Number(text.trim())
    }
    case 'bool': {
      const t = text.trim().toLowerCase()
      if (['true', '1', 'yes', 'on'].includes(t)) return true
      if (['false', '0', 'no', 'off'].includes(t)) return false
      return fail(option, `expected true or false, got "${text}"`)
    }
    case 'list':
      return text
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '')
    case 'map':
    case 'mapList': {
      // map: `a=b,c=d`; mapList: `REALM=h1 h2;OTHER=h3`
      const sep = leaf.type === 'map' ? ',' : ';'
      const out: Record<string, unknown> = {}
      for (const pair of text
        .split(sep)
        .map((x) => x.trim())
        .filter((x) => x !== '')) {
        const eq = pair.indexOf('=')
        if (eq <= 0) fail(option, `expected key=value pairs, got "${pair}"`)
        const v = pair.slice(eq + 1).trim()
        out[pair.slice(0, eq).trim()] =
          leaf.type === 'map' ? v : v.split(/[\s,]+/).filter((x) => x !== '')
      }
      return out
    }
  }
}

function check(option: string, leaf: Leaf, value: unknown): unknown {
  switch (leaf.type) {
    case 'string':
      if (typeof value !== 'string') fail(option, 'expected a string')
      if (value.includes('\0')) fail(option, 'NUL byte')
      return value
    case 'enum':
      if (typeof value !== 'string' || !leaf.values.includes(value)) {
        fail(option, `expected one of ${leaf.values.join(', ')}, got ${JSON.stringify(value)}`)
      }
      return value
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value))
        fail(option, `expected an integer, got ${JSON.stringify(value)}`)
      if (value < leaf.min || value > leaf.max)
        fail(option, `${value} is outside ${leaf.min}..${leaf.max}`)
      return value
    case 'bool':
      if (typeof value !== 'boolean')
        fail(option, `expected true or false, got ${JSON.stringify(value)}`)
      return value
    case 'list':
      if (!Array.isArray(value) || !value.every((x) => typeof x === 'string'))
        fail(option, 'expected a list of strings')
      return [...value]
    case 'map':
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        fail(option, 'expected a map')
      for (const [k, v] of Object.entries(value))
        if (typeof v !== 'string') fail(`${option}.${k}`, 'expected a string')
      return { ...value }
    case 'mapList':
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        fail(option, 'expected a map of lists')
      for (const [k, v] of Object.entries(value)) {
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
          fail(`${option}.${k}`, 'expected a list of strings')
      }
      return { ...value }
  }
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

export interface LoadOptions {
  /** Path of a YAML or JSON config file. */
  file?: string
  /** The environment to read `SASLGATE_*` from (tests pass their own). */
  env?: NodeJS.ProcessEnv
  /** `section.key` -> value (strings are parsed like env values), from the command line. */
  settings?: Record<string, unknown>
  /** Told the names of the Kubernetes service-link variables that were ignored (none: not called). */
  onIgnoredEnv?: (names: string[]) => void
}

export function loadConfig(load: LoadOptions = {}): Config {
  const all = new Map(options())
  const values = new Map<string, unknown>()
  for (const [name, leaf] of all) values.set(name, leaf.default)

  if (load.file !== undefined) {
    let raw: unknown
    try {
      raw = parseYaml(readFileSync(load.file, 'utf8'))
    } catch (err) {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        `config file ${load.file}: ${(err as Error).message}`,
      )
    }
    if (raw !== null && raw !== undefined) {
      if (typeof raw !== 'object' || Array.isArray(raw))
        fail(load.file, 'the file must hold a mapping of sections')
      for (const [section, body] of Object.entries(raw as Raw)) {
        if (!(section in SCHEMA))
          fail(
            section,
            `unknown section${didYouMean(section, Object.keys(SCHEMA))} (known: ${Object.keys(SCHEMA).join(', ')})`,
          )
        if (typeof body !== 'object' || body === null || Array.isArray(body))
          fail(section, 'expected a mapping')
        for (const [key, value] of Object.entries(body as Raw)) {
          const name = `${section}.${key}`
          const leaf = all.get(name)
          if (leaf === undefined) fail(name, `unknown option${didYouMean(name, all.keys())}`)
          values.set(name, check(name, leaf, value))
        }
      }
    }
  }

  const env = load.env ?? {}
  const known = new Set([...all.keys()].map(envName))
  const ignored: string[] = []
  for (const [k, v] of Object.entries(env)) {
    if (!k.startsWith('SASLGATE_') || v === undefined || known.has(k)) continue
    if (isServiceLinkVariable(k, v)) ignored.push(k)
    else fail(k, `unknown environment variable${didYouMean(k, known)}`)
  }
  if (ignored.length > 0) load.onIgnoredEnv?.(ignored.sort())
  for (const [name, leaf] of all) {
    const v = env[envName(name)]
    if (v !== undefined)
      values.set(name, check(envName(name), leaf, fromString(envName(name), leaf, v)))
  }

  for (const [name, value] of Object.entries(load.settings ?? {})) {
    const leaf = all.get(name)
    if (leaf === undefined) fail(name, `unknown option${didYouMean(name, all.keys())}`)
    const parsed = typeof value === 'string' ? fromString(name, leaf, value) : value
    values.set(name, check(name, leaf, parsed))
  }

  const out: Record<string, Record<string, unknown>> = {}
  for (const [name, value] of values) {
    const [section, key] = name.split('.') as [string, string]
    out[section] ??= {}
    out[section][key] = value
  }
  const config = out as unknown as Config
  if (!/^0?[0-7]{3,4}$/.test(config.saslauthd.socketMode))
    fail('saslauthd.socketMode', 'expected an octal mode like 0770')
  return deepFreeze(config)
}
