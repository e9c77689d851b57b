/**
 * Short-lived signed session tokens: what the service answers to a successful HTTP Negotiate
 * exchange, so the shim pays one GSSAPI exchange per token lifetime instead of one per login.
 *
 * Format: `sgs1.<base64url payload>.<base64url HMAC-SHA256>`, payload `{"p":principal,"e":expiry
 * ms}`; the MAC covers `sgs1.<payload>` (the version is authenticated too). The MAC key is derived
 * from the acceptor keytab (`fromKeytab`), so N replicas that share only the keytab Secret accept
 * each other's tokens and no extra secret has to be distributed:
 *
 *   key = HKDF-SHA256(ikm = canonical key material, salt = '', info = 'saslgate session token v1')
 *
 * The key material is parsed out of the keytab (not the raw file bytes: two exports of the same
 * keys differ in their timestamps): for each principal its entries of the highest kvno, sorted, so
 * the order of entries and older kvnos being pruned do not change the key; a key rotation does
 * (every replica gets the new Secret, old tokens stop verifying and shims negotiate again).
 *
 * Tokens are bearer credentials: never log one. The key lives in a private field.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { SaslgateError } from '../errors.js'

export const SESSION_TOKEN_PREFIX = 'sgs1.'
export const SESSION_TOKEN_HKDF_INFO = 'saslgate session token v1'

/** Longest token `verify` looks at (a principal is short; anything longer is not ours). */
const MAX_TOKEN_CHARS = 2048
/** Longest principal `issue` signs. */
const MAX_PRINCIPAL_CHARS = 1024
/** Longest lifetime `issue` accepts (a session token is meant to be short-lived). */
export const MAX_SESSION_TTL_MS = 24 * 3600_000
const MIN_KEY_BYTES = 16
const MAC_BYTES = 32
const B64URL_RE = /^[A-Za-z0-9_-]+$/
/** Keytabs are small; refuse to read a huge file as one. */
const MAX_KEYTAB_BYTES = 1 << 20

/** True if `token` has the session-token prefix (tells it apart from a static bearer token). */
export function looksLikeSessionToken(token: unknown): boolean {
  return typeof token === 'string' && token.startsWith(SESSION_TOKEN_PREFIX)
}

export interface IssuedToken {
  token: string
  /** Expiry, ms since the epoch. */
  expiresAt: number
}

export class SessionTokens {
  readonly #key: Buffer

  /** `key`: at least 16 bytes (copied). Prefer `fromKeytab`. */
  constructor(key: Buffer) {
    if (!Buffer.isBuffer(key) || key.length < MIN_KEY_BYTES) {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        `session token key: at least ${MIN_KEY_BYTES} bytes`,
      )
    }
    this.#key = Buffer.from(key)
  }

  /**
   * Derives the key from a keytab (`/path`, `FILE:/path` or `WRFILE:/path`). `principal` limits
   * the key material to one principal (`HTTP/host` in any realm, or `HTTP/host@REALM`); without it
   * every principal in the keytab contributes.
   */
  static async fromKeytab(
    path: string,
    options: { principal?: string } = {},
  ): Promise<SessionTokens> {
    return new SessionTokens(await deriveKeyFromKeytab(path, options.principal))
  }

  static looksLike(token: unknown): boolean {
    return looksLikeSessionToken(token)
  }

  /** Signs a token for `principal` valid for `ttlMs` from `now`. */
  issue(principal: string, ttlMs: number, now: number = Date.now()): IssuedToken {
    if (typeof principal !== 'string' || principal.length === 0) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'session token: empty principal')
    }
    if (principal.length > MAX_PRINCIPAL_CHARS) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'session token: principal too long')
    }
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_SESSION_TTL_MS) {
      throw new SaslgateError(
        'SASLGATE_ERR_CONFIG',
        `session token ttl: an integer number of ms in 1..${MAX_SESSION_TTL_MS}`,
      )
    }
    if (!Number.isFinite(now)) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'session token: bad clock value')
    }
    const expiresAt = Math.floor(now) + ttlMs
    const payload = Buffer.from(JSON.stringify({ p: principal, e: expiresAt })).toString(
      'base64url',
    )
    const signed = `${SESSION_TOKEN_PREFIX}${payload}`
    return { token: `${signed}.${this.#mac(signed).toString('base64url')}`, expiresAt }
  }

  /**
   * The principal the token was issued to, or null if it is malformed, tampered with, signed with
   * another key or expired at `now`. Never throws; the MAC is checked in constant time before the
   * payload is parsed.
   */
  verify(token: unknown, now: number = Date.now()): string | null {
    try {
      if (typeof token !== 'string' || token.length > MAX_TOKEN_CHARS) return null
      if (!token.startsWith(SESSION_TOKEN_PREFIX)) return null
      const rest = token.slice(SESSION_TOKEN_PREFIX.length)
      const dot = rest.indexOf('.')
      if (dot <= 0 || rest.indexOf('.', dot + 1) !== -1) return null
      const payload = rest.slice(0, dot)
      const mac = rest.slice(dot + 1)
      if (!B64URL_RE.test(payload) || !B64URL_RE.test(mac)) return null
      const given = Buffer.from(mac, 'base64url')
      // Canonical encoding only: otherwise the unused low bits of the last character would give
      // several spellings of one MAC (a "tampered" token that still verifies).
      if (given.length !== MAC_BYTES || given.toString('base64url') !== mac) return null
      const expected = this.#mac(`${SESSION_TOKEN_PREFIX}${payload}`)
      if (!timingSafeEqual(expected, given)) return null
      const body: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
      if (typeof body !== 'object' || body === null) return null
      const { p, e } = body as { p?: unknown; e?: unknown }
      if (typeof p !== 'string' || p.length === 0 || p.length > MAX_PRINCIPAL_CHARS) return null
      if (typeof e !== 'number' || !Number.isSafeInteger(e)) return null
      if (typeof now !== 'number' || !(now < e)) return null
      return p
    } catch {
      return null
    }
  }

  #mac(data: string): Buffer {
    return createHmac('sha256', this.#key).update(data, 'utf8').digest()
  }
}

// ---------------------------------------------------------------------------------------------
// Keytab key material

/** One keytab entry, as far as the key derivation needs it. */
export interface KeytabEntry {
  /** Unparsed name, `comp1/comp2@REALM` (no escaping: used only for grouping and matching). */
  principal: string
  kvno: number
  enctype: number
  key: Buffer
}

/** Reads the entries of an MIT `FILE:` keytab (format 0x0502, or 0x0501 with native order). */
export function parseKeytab(data: Buffer): KeytabEntry[] {
  const bad = (why: string) => new SaslgateError('SASLGATE_ERR_CONFIG', `keytab: ${why}`)
  if (data.length < 2 || data[0] !== 0x05 || (data[1] !== 0x01 && data[1] !== 0x02)) {
    throw bad('not an MIT keytab file (bad version bytes)')
  }
  const v1 = data[1] === 0x01
  // v1 stores integers in the writer's native order; MIT only ever wrote it little-endian on
  // the platforms that matter. v2 is big-endian.
  const le = v1
  const u16 = (o: number) => (le ? data.readUInt16LE(o) : data.readUInt16BE(o))
  const u32 = (o: number) => (le ? data.readUInt32LE(o) : data.readUInt32BE(o))
  const i32 = (o: number) => (le ? data.readInt32LE(o) : data.readInt32BE(o))
  const entries: KeytabEntry[] = []
  let off = 2
  while (off + 4 <= data.length) {
    const len = i32(off)
    off += 4
    if (len === 0) break
    const size = Math.abs(len)
    if (off + size > data.length) throw bad('truncated entry')
    const end = off + size
    if (len > 0) {
      let p = off
      const need = (n: number) => {
        if (p + n > end) throw bad('malformed entry')
      }
      const counted = (): Buffer => {
        need(2)
        const n = u16(p)
        p += 2
        need(n)
        const b = data.subarray(p, p + n)
        p += n
        return b
      }
      need(2)
      let components = u16(p)
      p += 2
      if (v1) components -= 1 // v1 counts the realm as a component
      const realm = counted().toString('utf8')
      const names: string[] = []
      for (let i = 0; i < components; i++) names.push(counted().toString('utf8'))
      if (!v1) {
        need(4)
        p += 4 // name type
      }
      need(4 + 1 + 2)
      p += 4 // timestamp
      let kvno = data[p]!
      p += 1
      const enctype = u16(p)
      p += 2
      const key = Buffer.from(counted())
      if (end - p >= 4) {
        const kvno32 = u32(p)
        if (kvno32 !== 0) kvno = kvno32
      }
      entries.push({ principal: `${names.join('/')}@${realm}`, kvno, enctype, key })
    }
    off = end
  }
  return entries
}

/** Canonical input keying material: per principal, the entries of its highest kvno, sorted. */
export function keytabKeyMaterial(entries: readonly KeytabEntry[], principal?: string): Buffer {
  const wanted = entries.filter(
    (e) => principal === undefined || matchesPrincipal(e.principal, principal),
  )
  if (wanted.length === 0) {
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      principal === undefined
        ? 'keytab: no keys'
        : `keytab: no keys for ${principal} (session token key)`,
    )
  }
  const newest = new Map<string, number>()
  for (const e of wanted) newest.set(e.principal, Math.max(newest.get(e.principal) ?? 0, e.kvno))
  const chosen = wanted
    .filter((e) => e.kvno === newest.get(e.principal))
    .map((e) => {
      const name = Buffer.from(e.principal, 'utf8')
      const head = Buffer.alloc(4 + name.length + 4 + 2 + 4)
      let o = head.writeUInt32BE(name.length, 0)
      o += name.copy(head, o)
      o = head.writeUInt32BE(e.kvno, o)
      o = head.writeUInt16BE(e.enctype, o)
      head.writeUInt32BE(e.key.length, o)
      return Buffer.concat([head, e.key])
    })
    .sort(Buffer.compare)
  const unique = chosen.filter((b, i) => i === 0 || !b.equals(chosen[i - 1]!))
  return Buffer.concat(unique)
}

/** `HTTP/host` matches that name in any realm; `HTTP/host@REALM` only itself. */
function matchesPrincipal(entry: string, wanted: string): boolean {
  if (wanted.includes('@')) return entry === wanted
  return entry.slice(0, entry.lastIndexOf('@')) === wanted
}

/** The 32-byte session-token key derived from a keytab file. */
export async function deriveKeyFromKeytab(path: string, principal?: string): Promise<Buffer> {
  const file = path.replace(/^(?:WR)?FILE:/, '')
  if (file === '' || /^[A-Z]+:/.test(file)) {
    throw new SaslgateError(
      'SASLGATE_ERR_CONFIG',
      `keytab: only FILE: keytabs can key session tokens (got ${path.split(':')[0]}:)`,
    )
  }
  let data: Buffer
  try {
    data = await readFile(file)
  } catch (err) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', `keytab: cannot read ${file}`, { cause: err })
  }
  try {
    if (data.length > MAX_KEYTAB_BYTES) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', `keytab: ${file} is too large`)
    }
    const entries = parseKeytab(data)
    const ikm = keytabKeyMaterial(entries, principal)
    try {
      return Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), SESSION_TOKEN_HKDF_INFO, 32))
    } finally {
      ikm.fill(0)
      for (const e of entries) e.key.fill(0)
    }
  } finally {
    data.fill(0)
  }
}
