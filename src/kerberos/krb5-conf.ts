/**
 * Reads the parts of an MIT krb5.conf (profile format) saslgate needs: the default realm,
 * the KDCs and primary KDCs of each realm, and the domain -> realm map.
 *
 * Follows MIT's parser (util/profile/prof_parse.c): text before the first `[section]` is
 * ignored; `tag = value`, `tag = {` (or `{` on the next line) ... `}` nested relations;
 * whole-line comments start with `#` or `;`; a value runs to the end of the line (no
 * trailing comments, as in MIT); `"quoted"` values know `\n \t \b \\ \"`; a trailing `*`
 * (final) on a section, tag or `}` is accepted and ignored; `include FILE` and
 * `includedir DIR` start in column 0 (DIR: names made of `[A-Za-z0-9_-]` or ending in
 * `.conf`, in sorted order). Differences: a relative include is taken relative to the
 * including file; includes are bounded in depth and count; `https://` (MS-KKDCP) KDC
 * entries are dropped (not supported by the transport).
 */
import { readdir, readFile, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { SaslgateError } from '../errors.js'

export interface Krb5Conf {
  defaultRealm?: string
  /**
   * `kdc`: the realm's KDCs; `primaryKdc`: its `primary_kdc` entries, else the older name's
   * (`master_kdc`), as MIT 1.19+ reads them.
   */
  realms: Record<string, { kdc: string[]; primaryKdc: string[] }>
  /** Host or `.domain` (lowercased) -> realm. */
  domainRealm: Record<string, string>
  /** The files read, in order (empty when no file exists). */
  sources: string[]
}

export const DEFAULT_KRB5_CONF_PATH = '/etc/krb5.conf'

export const KRB5_CONF_LIMITS = Object.freeze({
  maxIncludeDepth: 8,
  maxFiles: 64,
  maxFileBytes: 1024 * 1024,
})

type Value = string | ProfileNode

interface ProfileNode {
  /** Relations in file order; a tag may repeat (`kdc` lines). */
  entries: Array<[string, Value]>
}

interface ParseContext {
  root: ProfileNode
  /** Files on the include stack (cycle check). */
  stack: string[]
  sources: string[]
}

const COMMENT = /^[#;]/

function configError(file: string, line: number, why: string): SaslgateError {
  return new SaslgateError('SASLGATE_ERR_CONFIG', `${file}:${line}: ${why}`)
}

/** MIT's parse_quoted_string: up to the closing quote, with a few escapes. */
function unquote(text: string): string {
  let out = ''
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (ch === '"') break
    if (ch === '\\' && i + 1 < text.length) {
      const next = text[++i]!
      out += next === 'n' ? '\n' : next === 't' ? '\t' : next === 'b' ? '\b' : next
    } else {
      out += ch
    }
  }
  return out
}

function section(root: ProfileNode, name: string): ProfileNode {
  for (const [tag, value] of root.entries) {
    if (tag === name && typeof value !== 'string') return value
  }
  const node: ProfileNode = { entries: [] }
  root.entries.push([name, node])
  return node
}

function errnoOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'error'
}

function isMissing(err: unknown): boolean {
  const code = errnoOf(err)
  return code === 'ENOENT' || code === 'ENOTDIR'
}

async function readText(file: string, ctx: ParseContext, from: string, line: number) {
  if (ctx.sources.length >= KRB5_CONF_LIMITS.maxFiles) {
    throw configError(from, line, `more than ${KRB5_CONF_LIMITS.maxFiles} files included`)
  }
  const info = await stat(file)
  if (!info.isFile()) throw configError(from, line, `${file} is not a regular file`)
  if (info.size > KRB5_CONF_LIMITS.maxFileBytes) throw configError(file, 0, 'file too large')
  ctx.sources.push(file)
  return readFile(file, 'utf8')
}

/** MIT's valid_name() for includedir entries. */
function includable(name: string): boolean {
  if (name === '' || name.startsWith('.')) return false
  return name.endsWith('.conf') || /^[A-Za-z0-9_-]+$/.test(name)
}

async function parseFile(file: string, ctx: ParseContext, from: string, fromLine: number) {
  if (ctx.stack.includes(file)) throw configError(from, fromLine, `include loop through ${file}`)
  if (ctx.stack.length > KRB5_CONF_LIMITS.maxIncludeDepth) {
    throw configError(
      from,
      fromLine,
      `includes nested deeper than ${KRB5_CONF_LIMITS.maxIncludeDepth}`,
    )
  }
  let text: string
  try {
    text = await readText(file, ctx, from, fromLine)
  } catch (err) {
    if (err instanceof SaslgateError) throw err
    const why = isMissing(err) ? 'missing' : errnoOf(err)
    throw configError(from, fromLine, `cannot read ${file} (${why})`)
  }
  ctx.stack.push(file)
  try {
    await parseText(text, file, ctx)
  } finally {
    ctx.stack.pop()
  }
}

async function parseText(text: string, file: string, ctx: ParseContext): Promise<void> {
  let state: 'init' | 'std' | 'obrace' = 'init'
  let current: ProfileNode | undefined
  const parents: ProfileNode[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!
    const lineNo = i + 1
    const fail = (why: string) => configError(file, lineNo, why)

    const directive = /^(include|includedir)\s+(.*?)\s*$/.exec(raw)
    if (directive) {
      const target = resolve(dirname(file), directive[2]!)
      if (directive[1] === 'include') {
        await parseFile(target, ctx, file, lineNo)
      } else {
        let names: string[]
        try {
          names = await readdir(target)
        } catch (err) {
          throw fail(
            `cannot read directory ${target} (${isMissing(err) ? 'missing' : errnoOf(err)})`,
          )
        }
        for (const name of names.filter(includable).sort()) {
          await parseFile(resolve(target, name), ctx, file, lineNo)
        }
      }
      continue
    }

    const line = raw.trim()
    if (state === 'init') {
      if (!raw.startsWith('[')) continue // preamble (and `module` lines) are ignored
      state = 'std'
    }
    if (line === '' || COMMENT.test(line)) continue
    if (state === 'obrace') {
      if (!line.startsWith('{')) throw fail('expected {')
      state = 'std'
      continue
    }

    if (line.startsWith('[')) {
      if (parents.length > 0) throw fail('section header inside { }')
      const m = /^\[([^\]]*)\]\*?\s*$/.exec(line)
      if (!m) throw fail('bad section header')
      current = section(ctx.root, m[1]!)
      continue
    }
    if (line.startsWith('}')) {
      const parent = parents.pop()
      if (!parent) throw fail('} without {')
      current = parent
      continue
    }
    if (!current) throw fail('relation outside a section')

    const eq = line.indexOf('=')
    if (eq <= 0) throw fail('expected tag = value')
    const tag = line.slice(0, eq).trim().split('*')[0]!
    if (tag === '' || /\s/.test(tag)) throw fail('bad tag')
    const value = line.slice(eq + 1).trim()
    let opens = false
    if (value === '' || COMMENT.test(value)) {
      opens = true
      state = 'obrace'
    } else if (value.startsWith('{')) {
      const rest = value.slice(1).trim()
      if (rest !== '' && !COMMENT.test(rest)) throw fail('junk after {')
      opens = true
    }
    if (opens) {
      const node: ProfileNode = { entries: [] }
      current.entries.push([tag, node])
      parents.push(current)
      current = node
      continue
    }
    current.entries.push([tag, value.startsWith('"') ? unquote(value.slice(1)) : value])
  }
}

function* nodes(parent: ProfileNode | undefined, tag: string): Generator<ProfileNode> {
  for (const [t, v] of parent?.entries ?? []) if (t === tag && typeof v !== 'string') yield v
}

function* strings(parent: ProfileNode | undefined, tag?: string): Generator<[string, string]> {
  for (const [t, v] of parent?.entries ?? []) {
    if ((tag === undefined || t === tag) && typeof v === 'string') yield [t, v]
  }
}

function extract(root: ProfileNode, sources: string[]): Krb5Conf {
  const libdefaults = [...nodes(root, 'libdefaults')][0]
  const defaultRealm = [...strings(libdefaults, 'default_realm')][0]?.[1]

  const usable = (kdc: string) => kdc !== '' && !/^https:\/\//i.test(kdc)
  const realms = new Map<string, { kdc: string[]; primary: string[]; master: string[] }>()
  for (const realmsSection of nodes(root, 'realms')) {
    for (const [realm, node] of realmsSection.entries) {
      if (typeof node === 'string') continue
      const r = realms.get(realm) ?? { kdc: [], primary: [], master: [] }
      for (const [, kdc] of strings(node, 'kdc')) if (usable(kdc)) r.kdc.push(kdc)
      for (const [, kdc] of strings(node, 'primary_kdc')) if (usable(kdc)) r.primary.push(kdc)
      for (const [, kdc] of strings(node, 'master_kdc')) if (usable(kdc)) r.master.push(kdc)
      realms.set(realm, r)
    }
  }

  const domainRealm = new Map<string, string>()
  for (const node of nodes(root, 'domain_realm')) {
    for (const [domain, realm] of strings(node)) {
      const key = domain.toLowerCase()
      if (!domainRealm.has(key)) domainRealm.set(key, realm)
    }
  }

  // Object.fromEntries defines own properties: a realm named `__proto__` cannot pollute.
  const conf: Krb5Conf = {
    realms: Object.fromEntries(
      [...realms].map(([realm, r]) => [
        realm,
        { kdc: r.kdc, primaryKdc: r.primary.length > 0 ? r.primary : r.master },
      ]),
    ),
    domainRealm: Object.fromEntries(domainRealm),
    sources,
  }
  if (defaultRealm) conf.defaultRealm = defaultRealm
  return conf
}

/** Parses krb5.conf text; `file` names it in errors and anchors relative includes. */
export async function parseKrb5Conf(text: string, file = 'krb5.conf'): Promise<Krb5Conf> {
  const ctx: ParseContext = { root: { entries: [] }, stack: [resolve(file)], sources: [] }
  await parseText(text, resolve(file), ctx)
  return extract(ctx.root, ctx.sources)
}

async function exists(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile()
  } catch {
    return false
  }
}

/**
 * The krb5.conf path as MIT picks it: the first existing entry of `KRB5_CONFIG` (a
 * colon-separated list) when it is set, else /etc/krb5.conf. Undefined when none exists.
 */
export async function krb5ConfPath(
  env: Record<string, string | undefined> = process.env,
): Promise<string | undefined> {
  const list = env.KRB5_CONFIG
  const candidates =
    list === undefined ? [DEFAULT_KRB5_CONF_PATH] : list.split(':').filter((p) => p !== '')
  for (const candidate of candidates) if (await exists(candidate)) return candidate
  return undefined
}

/**
 * Reads krb5.conf (`path`, else as `krb5ConfPath(env)` picks it). A missing file gives an
 * empty configuration; a syntax error or a missing include throws SASLGATE_ERR_CONFIG.
 */
export async function readKrb5Conf(
  path?: string,
  env: Record<string, string | undefined> = process.env,
): Promise<Krb5Conf> {
  const file = path ?? (await krb5ConfPath(env))
  const ctx: ParseContext = { root: { entries: [] }, stack: [], sources: [] }
  if (file === undefined || !(await exists(file))) return extract(ctx.root, ctx.sources)
  await parseFile(resolve(file), ctx, resolve(file), 0)
  return extract(ctx.root, ctx.sources)
}
