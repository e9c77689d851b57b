/**
 * The start-time keytab check: a keytab saslgate cannot read, or one without the verify
 * principal's key, must stop the start (exit 78) naming the file and the errno or the missing
 * principal. Without it the process starts, reports ready and answers NO to every right
 * password (`verify_failed` for each check, since libkrb5 opens the keytab per check).
 *
 * Only the principal names are taken from the file (MIT's FILE keytab format, versions 0x0501
 * and 0x0502, as `ktutil`/`kadmin ktadd` write it); the buffer holding the keys is zeroed
 * before returning and no key ever leaves this module.
 */
import { readFile } from 'node:fs/promises'
import { SaslgateError } from '../errors.js'

/** The file behind a keytab name, or undefined for a non-file type (MEMORY:, KEYRING:, ...). */
export function keytabFile(name: string): string | undefined {
  if (/^(FILE|WRFILE):/.test(name)) return name.replace(/^(FILE|WRFILE):/, '')
  // A residual without a type prefix is a file; `/` starts every absolute path.
  if (/^[A-Za-z][A-Za-z0-9]*:/.test(name)) return undefined
  return name
}

/** `component/component@REALM` of every entry (duplicates from several kvnos/enctypes removed). */
export function keytabPrincipals(data: Buffer): string[] {
  const bad = (why: string) =>
    new SaslgateError('SASLGATE_ERR_KEYTAB', `not an MIT keytab file (${why})`)
  if (data.length < 2 || data[0] !== 0x05 || (data[1] !== 0x01 && data[1] !== 0x02))
    throw bad('no 0x0501/0x0502 version header')
  const v1 = data[1] === 0x01
  // v1 stores numbers in host order; every machine saslgate runs on is little-endian.
  const u16 = (at: number) => (v1 ? data.readUInt16LE(at) : data.readUInt16BE(at))
  const i32 = (at: number) => (v1 ? data.readInt32LE(at) : data.readInt32BE(at))
  const out = new Set<string>()
  let pos = 2
  while (pos + 4 <= data.length) {
    const size = i32(pos)
    pos += 4
    if (size === 0) break
    if (size < 0) {
      pos += -size // a hole left by a removed entry
      continue
    }
    const end = pos + size
    if (end > data.length) throw bad('an entry runs past the end')
    let p = pos
    const counted = () => {
      if (p + 2 > end) throw bad('truncated entry')
      const n = u16(p)
      p += 2
      if (p + n > end) throw bad('truncated entry')
      const s = data.toString('utf8', p, p + n)
      p += n
      return s
    }
    let components = u16(p)
    p += 2
    if (v1) components -= 1 // v1 counts the realm as a component
    const realm = counted()
    const names: string[] = []
    for (let i = 0; i < components; i++) names.push(counted())
    out.add(`${names.join('/')}@${realm}`)
    pos = end
  }
  return [...out]
}

export interface KeytabCheck {
  /** The keytab name as configured (`FILE:/etc/krb5.keytab`, `/etc/saslgate/krb5.keytab`). */
  keytab: string
  /** Fully qualified principals whose keys must be in it (the verify principal per realm). */
  principals: readonly string[]
  /** The option the keytab came from, for the message. */
  option: string
}

/** Who this process runs as, for "cannot open" messages (the usual cause is the unit's user). */
function identity(): string {
  const uid = process.getuid?.()
  const gid = process.getgid?.()
  if (uid === undefined) return ''
  const groups = process.getgroups?.().join(',') ?? ''
  return ` (saslgate runs as uid ${uid} gid ${gid}${groups !== '' ? ` groups ${groups}` : ''})`
}

/**
 * Throws `SASLGATE_ERR_KEYTAB` when the keytab file cannot be read (the message names the path
 * and the errno) or lacks a key for one of `principals` (names the principal and what the
 * keytab holds). A non-file keytab type is not checked here.
 */
export async function checkKeytab(check: KeytabCheck): Promise<{ checked: boolean }> {
  const file = keytabFile(check.keytab)
  if (file === undefined) return { checked: false }
  let data: Buffer
  try {
    data = await readFile(file)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const why =
      e.code === 'ENOENT'
        ? 'no such file'
        : e.code === 'EACCES' || e.code === 'EPERM'
          ? `permission denied${identity()}; make it readable, e.g. chgrp saslgate ${file} && chmod 0640 ${file}`
          : (e.message ?? String(err))
    throw new SaslgateError(
      'SASLGATE_ERR_KEYTAB',
      `keytab ${file} (${check.option}): cannot read it: ${e.code ?? 'error'} (${why})`,
      { cause: err },
    )
  }
  let held: string[]
  try {
    held = keytabPrincipals(data)
  } catch (err) {
    throw new SaslgateError(
      'SASLGATE_ERR_KEYTAB',
      `keytab ${file} (${check.option}): ${(err as Error).message}`,
    )
  } finally {
    data.fill(0)
  }
  const missing = check.principals.filter((p) => !held.includes(p))
  if (missing.length > 0) {
    throw new SaslgateError(
      'SASLGATE_ERR_KEYTAB',
      `keytab ${file} (${check.option}) has no key for ${missing.join(', ')} ` +
        `(it holds: ${held.length > 0 ? held.join(', ') : 'nothing'}); set kerberos.verifyPrincipal ` +
        '(SASLGATE_KERBEROS_VERIFY_PRINCIPAL) to a principal it holds, or export that key into it',
    )
  }
  return { checked: true }
}
