/**
 * The RFC 3962 encryption profile (aes128/aes256-cts-hmac-sha1-96) for spoofing KDCs in
 * tests: enough to read which key a client's PA-ENC-TIMESTAMP was made with, and to rewrite
 * the encrypted part of a real AS-REP (the test knows the user's password, an attacker on
 * the path who knows it would not need to spoof).
 *
 * Test tooling only: the product never imports it (libkrb5 does all real encryption).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import { deriveRandomAes } from '../kerberos/string-to-key.js'

const BLOCK = 16
const MAC_BYTES = 12

/** Key usages (RFC 4120 §7.5.1) the tests use. */
export const KeyUsage = { paEncTimestamp: 1, asRepEncPart: 3 } as const

function usageKeys(key: Buffer, usage: number): { ke: Buffer; ki: Buffer } {
  const constant = (tail: number) => {
    const c = Buffer.alloc(5)
    c.writeUInt32BE(usage)
    c[4] = tail
    return c
  }
  return {
    ke: deriveRandomAes(key, constant(0xaa), key.length),
    ki: deriveRandomAes(key, constant(0x55), key.length),
  }
}

const ecb = (key: Buffer) => (key.length === 16 ? 'aes-128-ecb' : 'aes-256-ecb')
const cbc = (key: Buffer) => (key.length === 16 ? 'aes-128-cbc' : 'aes-256-cbc')

function aesBlock(key: Buffer, block: Buffer, decrypt: boolean): Buffer {
  const c = decrypt ? createDecipheriv(ecb(key), key, null) : createCipheriv(ecb(key), key, null)
  c.setAutoPadding(false)
  return Buffer.concat([c.update(block), c.final()])
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!
  return out
}

/** AES-CBC with ciphertext stealing, the last two blocks swapped (RFC 3962 §5), zero IV. */
function ctsEncrypt(key: Buffer, data: Buffer): Buffer {
  if (data.length < BLOCK) throw new Error('CTS needs at least one block')
  const n = Math.ceil(data.length / BLOCK)
  const padded = Buffer.concat([data, Buffer.alloc(n * BLOCK - data.length)])
  const c = createCipheriv(cbc(key), key, Buffer.alloc(BLOCK)).setAutoPadding(false)
  const ct = Buffer.concat([c.update(padded), c.final()])
  if (n === 1) return ct
  const r = data.length - (n - 1) * BLOCK
  return Buffer.concat([
    ct.subarray(0, (n - 2) * BLOCK),
    ct.subarray((n - 1) * BLOCK),
    ct.subarray((n - 2) * BLOCK, (n - 2) * BLOCK + r),
  ])
}

function ctsDecrypt(key: Buffer, ct: Buffer): Buffer {
  if (ct.length < BLOCK) throw new Error('CTS needs at least one block')
  const n = Math.ceil(ct.length / BLOCK)
  if (n === 1) return aesBlock(key, ct, true)
  const r = ct.length - (n - 1) * BLOCK
  const last = ct.subarray((n - 2) * BLOCK, (n - 1) * BLOCK) // the full final CBC block
  const tail = ct.subarray((n - 1) * BLOCK) // r bytes of the one before
  const d = aesBlock(key, last, true)
  const prev = Buffer.concat([tail, d.subarray(r)]) // the block before, made whole again
  const lastPlain = xor(d.subarray(0, r), tail)
  const head = Buffer.concat([ct.subarray(0, (n - 2) * BLOCK), prev])
  const c = createDecipheriv(cbc(key), key, Buffer.alloc(BLOCK)).setAutoPadding(false)
  return Buffer.concat([c.update(head), c.final(), lastPlain])
}

/** encrypt(key, usage, plaintext): confounder || plaintext under CTS, then HMAC-SHA1-96. */
export function aesEncrypt(key: Buffer, usage: number, plaintext: Buffer): Buffer {
  const { ke, ki } = usageKeys(key, usage)
  const data = Buffer.concat([randomBytes(BLOCK), plaintext])
  const mac = createHmac('sha1', ki).update(data).digest().subarray(0, MAC_BYTES)
  return Buffer.concat([ctsEncrypt(ke, data), mac])
}

/** The plaintext, or undefined when the integrity check fails (another key or usage). */
export function aesDecrypt(key: Buffer, usage: number, ciphertext: Buffer): Buffer | undefined {
  if (ciphertext.length < BLOCK + MAC_BYTES) return undefined
  const { ke, ki } = usageKeys(key, usage)
  const data = ctsDecrypt(ke, ciphertext.subarray(0, ciphertext.length - MAC_BYTES))
  const mac = createHmac('sha1', ki).update(data).digest().subarray(0, MAC_BYTES)
  if (!mac.equals(ciphertext.subarray(ciphertext.length - MAC_BYTES))) return undefined
  return data.subarray(BLOCK)
}
