/**
 * Kerberos string-to-key in node:crypto (OpenSSL) for the AES enctypes: the user's
 * long-term key from a password, a salt and an iteration count, computed on libuv's
 * thread pool (`crypto.pbkdf2`), then handed to libkrb5 in a MEMORY keytab.
 *
 * - 17, 18 aes{128,256}-cts-hmac-sha1-96 (RFC 3962): tkey = PBKDF2-HMAC-SHA1(password,
 *   salt, iterations, keylen); key = DK(tkey, "kerberos") (RFC 3961 §5.1, random-to-key is
 *   the identity for AES).
 * - 19, 20 aes128-cts-hmac-sha256-128, aes256-cts-hmac-sha384-192 (RFC 8009):
 *   tkey = PBKDF2-HMAC-SHA256/384(password, enctype-name || 0x00 || salt, iterations,
 *   keylen); key = KDF-HMAC-SHA2(tkey, "kerberos", keylen).
 *
 * Other enctypes (and non-Buffer input) throw `SASLGATE_ERR_S2K_UNSUPPORTED`: the caller
 * falls back to libkrb5's own string-to-key. Nothing here logs or puts a password or key in an error.
 */
import { createCipheriv, createHmac, pbkdf2, pbkdf2Sync } from 'node:crypto'
import { SaslgateError } from '../errors.js'

interface EnctypeS2k {
  /** The RFC 3961 enctype name (RFC 8009 puts it in the salt). */
  name: string
  keyBytes: number
  /** PBKDF2 PRF digest (OpenSSL name). */
  pbkdf2Digest: 'sha1' | 'sha256' | 'sha384'
  kind: 'rfc3962' | 'rfc8009'
}

const ENCTYPES: ReadonlyMap<number, EnctypeS2k> = new Map([
  [17, { name: 'aes128-cts-hmac-sha1-96', keyBytes: 16, pbkdf2Digest: 'sha1', kind: 'rfc3962' }],
  [18, { name: 'aes256-cts-hmac-sha1-96', keyBytes: 32, pbkdf2Digest: 'sha1', kind: 'rfc3962' }],
  [
    19,
    { name: 'aes128-cts-hmac-sha256-128', keyBytes: 16, pbkdf2Digest: 'sha256', kind: 'rfc8009' },
  ],
  [
    20,
    { name: 'aes256-cts-hmac-sha384-192', keyBytes: 32, pbkdf2Digest: 'sha384', kind: 'rfc8009' },
  ],
])

/** Iteration counts outside this range are refused (libkrb5 refuses >= 2^24). */
export const MAX_S2K_ITERATIONS = 0xffffff

const KERBEROS = Buffer.from('kerberos', 'latin1')

export interface DeriveKeyInput {
  etype: number
  password: Buffer
  salt: Buffer
  iterations: number
}

/** True when `deriveKey` can compute keys of this enctype. */
export function supportsEtype(etype: number): boolean {
  return ENCTYPES.has(etype)
}

/** The key length in bytes of a supported enctype. */
export function keyLength(etype: number): number {
  return lookup(etype).keyBytes
}

/**
 * The default salt of a principal: realm || every name component, concatenated
 * (RFC 4120 §4), e.g. `EXAMPLE.COMaliceadmin` for `alice/admin@EXAMPLE.COM`.
 */
export function defaultSalt(realm: string, components: readonly string[]): Buffer {
  return Buffer.from(realm + components.join(''), 'utf8')
}

/**
 * The long-term key for `password`, computed off the event loop. Throws
 * `SASLGATE_ERR_S2K_UNSUPPORTED` for enctypes other than 17-20 and
 * `SASLGATE_ERR_UNSAFE_S2K` for an iteration count outside 1..0xFFFFFF.
 */
export async function deriveKey(input: DeriveKeyInput): Promise<Buffer> {
  const e = checkInput(input)
  const salt = pbkdf2Salt(e, input.salt)
  const tkey = await new Promise<Buffer>((resolve, reject) => {
    pbkdf2(input.password, salt, input.iterations, e.keyBytes, e.pbkdf2Digest, (err, key) =>
      err ? reject(unsupported('PBKDF2 failed')) : resolve(key),
    )
  })
  return finishKey(e, tkey)
}

/**
 * The same as `deriveKey`, blocking the calling thread (~2-3 ms at 4096 iterations). For
 * benchmarks, tests and worker threads only; never on the event loop's hot path.
 */
export function deriveKeySync(input: DeriveKeyInput): Buffer {
  const e = checkInput(input)
  const salt = pbkdf2Salt(e, input.salt)
  return finishKey(
    e,
    pbkdf2Sync(input.password, salt, input.iterations, e.keyBytes, e.pbkdf2Digest),
  )
}

function lookup(etype: number): EnctypeS2k {
  const e = ENCTYPES.get(etype)
  if (!e) throw unsupported(`no string-to-key for enctype ${etype}`)
  return e
}

function unsupported(message: string): SaslgateError {
  return new SaslgateError('SASLGATE_ERR_S2K_UNSUPPORTED', message)
}

function checkInput(input: DeriveKeyInput): EnctypeS2k {
  const e = lookup(input.etype)
  if (!Buffer.isBuffer(input.password) || !Buffer.isBuffer(input.salt)) {
    throw unsupported('password and salt must be Buffers')
  }
  checkIterations(input.iterations)
  return e
}

function checkIterations(iterations: number): void {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_S2K_ITERATIONS) {
    throw new SaslgateError('SASLGATE_ERR_UNSAFE_S2K', 'iteration count out of range')
  }
}

function pbkdf2Salt(e: EnctypeS2k, salt: Buffer): Buffer {
  if (e.kind === 'rfc3962') return salt
  return Buffer.concat([Buffer.from(e.name, 'latin1'), Buffer.from([0]), salt])
}

/** tkey -> key, wiping tkey. */
function finishKey(e: EnctypeS2k, tkey: Buffer): Buffer {
  try {
    return e.kind === 'rfc3962'
      ? deriveRandomAes(tkey, KERBEROS, e.keyBytes)
      : kdfHmacSha2(tkey, KERBEROS, e.keyBytes, e.pbkdf2Digest === 'sha256' ? 'sha256' : 'sha384')
  } finally {
    tkey.fill(0)
  }
}

/**
 * n-fold (RFC 3961 §5.1): stretches or folds `input` to `outBytes` bytes. Replicates the
 * input lcm(in, out) / in times, each copy rotated right by 13 bits more than the last,
 * and adds the out-sized chunks with ones'-complement addition.
 */
export function nfold(input: Buffer, outBytes: number): Buffer {
  const inBytes = input.length
  if (inBytes === 0 || !Number.isInteger(outBytes) || outBytes < 1) {
    throw unsupported('n-fold needs a non-empty input and a positive output length')
  }
  const lcm = (inBytes * outBytes) / gcd(inBytes, outBytes)
  const inBits = inBytes * 8
  const sum = new Array<number>(outBytes).fill(0)
  // Byte i of the replicated string is bit-range [8i, 8i+8) of copy c = floor(i / inBytes),
  // which is the input rotated right by 13c bits.
  for (let i = lcm - 1; i >= 0; i--) {
    const c = Math.floor(i / inBytes)
    const bitInCopy = (i % inBytes) * 8
    // Source bit index (in the unrotated input) of the first bit of this byte.
    const src = (((bitInCopy - 13 * c) % inBits) + inBits) % inBits
    let byte = 0
    for (let b = 0; b < 8; b++) {
      const s = (src + b) % inBits
      const bit = (input[s >> 3]! >> (7 - (s & 7))) & 1
      byte = (byte << 1) | bit
    }
    sum[i % outBytes]! += byte
  }
  // Ones'-complement addition: propagate carries from the least significant byte; a carry
  // out of the most significant byte re-enters at the least significant one.
  let carry = 0
  do {
    for (let i = outBytes - 1; i >= 0; i--) {
      const v = sum[i]! + carry
      sum[i] = v & 0xff
      carry = v >>> 8
    }
  } while (carry !== 0)
  return Buffer.from(sum)
}

function gcd(a: number, b: number): number {
  let x = a
  let y = b
  while (y) [x, y] = [y, x % y]
  return x
}

/**
 * DR(key, constant) of RFC 3961 §5.1 for AES (random-to-key is the identity): the
 * constant n-folded to one block, encrypted again and again with AES (one block, zero IV),
 * the blocks concatenated to `keyBytes`.
 */
export function deriveRandomAes(key: Buffer, constant: Buffer, keyBytes: number): Buffer {
  const cipher = key.length === 16 ? 'aes-128-ecb' : key.length === 32 ? 'aes-256-ecb' : undefined
  if (!cipher) throw unsupported('AES keys are 16 or 32 bytes')
  let block = constant.length === 16 ? Buffer.from(constant) : nfold(constant, 16)
  // Every block is key material: wiped once the key is assembled, whatever happens.
  const out: Buffer[] = []
  try {
    let have = 0
    while (have < keyBytes) {
      const c = createCipheriv(cipher, key, null).setAutoPadding(false)
      block = Buffer.concat([c.update(block), c.final()])
      out.push(block)
      have += block.length
    }
    const all = Buffer.concat(out)
    if (all.length === keyBytes) return all
    const derived = Buffer.from(all.subarray(0, keyBytes))
    all.fill(0)
    return derived
  } finally {
    for (const b of out) b.fill(0)
  }
}

/**
 * KDF-HMAC-SHA2(key, label, k) of RFC 8009 §3 (one block of SP 800-108 counter mode):
 * HMAC(key, 0x00000001 || label || 0x00 || k-in-bits as 4 bytes), truncated to k.
 */
export function kdfHmacSha2(
  key: Buffer,
  label: Buffer,
  keyBytes: number,
  digest: 'sha256' | 'sha384',
): Buffer {
  const bits = Buffer.alloc(4)
  bits.writeUInt32BE(keyBytes * 8)
  const k1 = createHmac(digest, key)
    .update(Buffer.from([0, 0, 0, 1]))
    .update(label)
    .update(Buffer.from([0]))
    .update(bits)
    .digest()
  try {
    if (keyBytes > k1.length) throw unsupported('KDF-HMAC-SHA2 output longer than one block')
    return Buffer.from(k1.subarray(0, keyBytes))
  } finally {
    k1.fill(0)
  }
}
