/**
 * The start-time keytab reader (src/kerberos/keytab-file.ts): principal names from MIT FILE
 * keytabs built byte by byte here (v0x502 big-endian, v0x501 host order, holes from removed
 * entries, several kvnos of one principal), malformed files refused, non-file keytab types left
 * to libkrb5. Real `kadmin ktadd` keytabs are read in test/integration/keytab-start.test.ts.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { keytabFile, keytabPrincipals } from '../../src/kerberos/keytab-file.js'

/** One v0x502 entry: components, realm, name type 1, timestamp, kvno, an AES256 key. */
function entry(realm: string, components: string[], kvno: number, le = false): Buffer {
  const parts: Buffer[] = []
  const u16 = (n: number) => {
    const b = Buffer.alloc(2)
    le ? b.writeUInt16LE(n) : b.writeUInt16BE(n)
    return b
  }
  const u32 = (n: number) => {
    const b = Buffer.alloc(4)
    le ? b.writeUInt32LE(n) : b.writeUInt32BE(n)
    return b
  }
  const counted = (s: string) => Buffer.concat([u16(Buffer.byteLength(s)), Buffer.from(s)])
  // v1 counts the realm among the components and has no name type
  parts.push(u16(le ? components.length + 1 : components.length), counted(realm))
  for (const c of components) parts.push(counted(c))
  if (!le) parts.push(u32(1))
  parts.push(
    u32(1_700_000_000),
    Buffer.from([kvno & 0xff]),
    u16(18),
    u16(32),
    Buffer.alloc(32, 0xab),
  )
  const body = Buffer.concat(parts)
  const size = Buffer.alloc(4)
  le ? size.writeInt32LE(body.length) : size.writeInt32BE(body.length)
  return Buffer.concat([size, body])
}

const hole = (n: number) => {
  const b = Buffer.alloc(4 + n)
  b.writeInt32BE(-n)
  return b
}

describe('keytab file reader', () => {
  test('v0x502: every principal once, holes skipped', () => {
    const data = Buffer.concat([
      Buffer.from([0x05, 0x02]),
      entry('EXAMPLE.ORG', ['host', 'mail.example.org'], 2),
      hole(20),
      entry('EXAMPLE.ORG', ['host', 'mail.example.org'], 3),
      entry('EXAMPLE.ORG', ['HTTP', 'saslgate.example.org'], 1),
    ])
    assert.deepEqual(keytabPrincipals(data), [
      'host/mail.example.org@EXAMPLE.ORG',
      'HTTP/saslgate.example.org@EXAMPLE.ORG',
    ])
  })

  test('v0x501 (host order, realm counted as a component)', () => {
    const data = Buffer.concat([
      Buffer.from([0x05, 0x01]),
      entry('R.TEST', ['host', 'a.test'], 1, true),
    ])
    assert.deepEqual(keytabPrincipals(data), ['host/a.test@R.TEST'])
  })

  test('an empty keytab holds nothing; garbage and truncation are refused', () => {
    assert.deepEqual(keytabPrincipals(Buffer.from([0x05, 0x02])), [])
    assert.throws(() => keytabPrincipals(Buffer.from('not a keytab')), /not an MIT keytab file/)
    const whole = Buffer.concat([Buffer.from([0x05, 0x02]), entry('R', ['host', 'x'], 1)])
    assert.throws(() => keytabPrincipals(whole.subarray(0, whole.length - 10)), /runs past the end/)
  })

  test('keytab names: FILE:/WRFILE:/bare paths are files, other types are not', () => {
    assert.equal(keytabFile('FILE:/etc/krb5.keytab'), '/etc/krb5.keytab')
    assert.equal(keytabFile('WRFILE:/etc/krb5.keytab'), '/etc/krb5.keytab')
    assert.equal(keytabFile('/etc/saslgate/krb5.keytab'), '/etc/saslgate/krb5.keytab')
    assert.equal(keytabFile('MEMORY:x'), undefined)
    assert.equal(keytabFile('KEYRING:persistent:0'), undefined)
  })
})
