import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { pbkdf2Sync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import fc from 'fast-check'
import { isSaslgateError } from '../../src/errors.js'
import {
  type DeriveKeyInput,
  defaultSalt,
  deriveKey,
  deriveKeySync,
  deriveRandomAes,
  kdfHmacSha2,
  keyLength,
  MAX_S2K_ITERATIONS,
  nfold,
  supportsEtype,
} from '../../src/kerberos/string-to-key.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const KERBEROS = Buffer.from('kerberos')

describe('n-fold (RFC 3961 appendix A.1)', () => {
  const vectors: [string, number, string][] = [
    ['012345', 64, 'be072631276b1955'],
    ['password', 56, '78a07b6caf85fa'],
    ['Rough Consensus, and Running Code', 64, 'bb6ed30870b7f0e0'],
    ['password', 168, '59e4a8ca7c0385c3c37b3f6d2000247cb6e6bd5b3e'],
    [
      'MASSACHVSETTS INSTITVTE OF TECHNOLOGY',
      192,
      'db3b0d8f0b061e603282b308a50841229ad798fab9540c1b',
    ],
    ['Q', 168, '518a54a215a8452a518a54a215a8452a518a54a215'],
    ['ba', 168, 'fb25d531ae8974499f52fd92ea9857c4ba24cf297e'],
    ['kerberos', 64, '6b65726265726f73'],
    ['kerberos', 128, '6b65726265726f737b9b5b2b93132b93'],
    ['kerberos', 168, '8372c236344e5f1550cd0747e15d62ca7a5a3bcea4'],
    ['kerberos', 256, '6b65726265726f737b9b5b2b93132b935c9bdcdad95c9899c4cae4dee6d6cae4'],
  ]
  for (const [input, bits, out] of vectors) {
    it(`${bits}-fold(${JSON.stringify(input)})`, () => {
      assert.equal(nfold(Buffer.from(input, 'latin1'), bits / 8).toString('hex'), out)
    })
  }

  it('n-fold to the input length is the identity', () => {
    // 64-fold of an 8-byte input: lcm = 8, one copy, no rotation.
    assert.equal(nfold(KERBEROS, 8).toString('hex'), KERBEROS.toString('hex'))
  })

  it('refuses an empty input or output', () => {
    for (const [input, n] of [
      [Buffer.alloc(0), 8],
      [KERBEROS, 0],
      [KERBEROS, 1.5],
    ] as const) {
      assert.throws(
        () => nfold(input, n),
        (err: unknown) => isSaslgateError(err, 'SASLGATE_ERR_S2K_UNSUPPORTED'),
      )
    }
  })
})

/**
 * RFC 3962 appendix B. Each vector: iterations, passphrase, salt, the 128-bit and 256-bit
 * PBKDF2-HMAC-SHA1 outputs, and the final AES-128 and AES-256 keys. The AES keys were also
 * checked on this machine against MIT krb5 1.20's krb5_c_string_to_key_with_params (with
 * k5_allow_weak_pbkdf2iter set: MIT refuses counts below 4096 otherwise).
 */
const RFC3962: {
  name: string
  iterations: number
  password: Buffer
  salt: Buffer
  pbkdf2: string
  aes128: string
  aes256: string
}[] = [
  {
    name: 'iteration count 1',
    iterations: 1,
    password: Buffer.from('password'),
    salt: Buffer.from('ATHENA.MIT.EDUraeburn'),
    pbkdf2: 'cdedb5281bb2f801565a1122b25635150ad1f7a04bb9f3a333ecc0e2e1f70837',
    aes128: '42263c6e89f4fc28b8df68ee09799f15',
    aes256: 'fe697b52bc0d3ce14432ba036a92e65bbb52280990a2fa27883998d72af30161',
  },
  {
    name: 'iteration count 2',
    iterations: 2,
    password: Buffer.from('password'),
    salt: Buffer.from('ATHENA.MIT.EDUraeburn'),
    pbkdf2: '01dbee7f4a9e243e988b62c73cda935da05378b93244ec8f48a99e61ad799d86',
    aes128: 'c651bf29e2300ac27fa469d693bdda13',
    aes256: 'a2e16d16b36069c135d5e9d2e25f896102685618b95914b467c67622225824ff',
  },
  {
    name: 'iteration count 1200',
    iterations: 1200,
    password: Buffer.from('password'),
    salt: Buffer.from('ATHENA.MIT.EDUraeburn'),
    pbkdf2: '5c08eb61fdf71e4e4ec3cf6ba1f5512ba7e52ddbc5e5142f708a31e2e62b1e13',
    aes128: '4c01cd46d632d01e6dbe230a01ed642a',
    aes256: '55a6ac740ad17b4846941051e1e8b0a7548d93b0ab30a8bc3ff16280382b8c2a',
  },
  {
    name: 'iteration count 5, binary salt',
    iterations: 5,
    password: Buffer.from('password'),
    salt: hex('1234567878563412'),
    pbkdf2: 'd1daa78615f287e6a1c8b120d7062a493f98d203e6be49a6adf4fa574b6e64ee',
    aes128: 'e9b23d52273747dd5c35cb55be619d8e',
    aes256: '97a4e786be20d81a382d5ebc96d5909cabcdadc87ca48f574504159f16c36e31',
  },
  {
    name: 'pass phrase equals block size (64 X)',
    iterations: 1200,
    password: Buffer.from('X'.repeat(64)),
    salt: Buffer.from('pass phrase equals block size'),
    pbkdf2: '139c30c0966bc32ba55fdbf212530ac9c5ec59f1a452f5cc9ad940fea0598ed1',
    aes128: '59d1bb789a828b1aa54ef9c2883f69ed',
    aes256: '89adee3608db8bc71f1bfbfe459486b05618b70cbae22092534e56c553ba4b34',
  },
  {
    name: 'pass phrase exceeds block size (65 X)',
    iterations: 1200,
    password: Buffer.from('X'.repeat(65)),
    salt: Buffer.from('pass phrase exceeds block size'),
    pbkdf2: '9ccad6d468770cd51b10e6a68721be611a8b4d282601db3b36be9246915ec82a',
    aes128: 'cb8005dc5f90179a7f02104c0018751d',
    aes256: 'd78c5c9cb872a8c9dad4697f0bb5b2d21496c82beb2caeda2112fceea057401b',
  },
  {
    name: 'g-clef (U+1D11E) pass phrase',
    iterations: 50,
    password: hex('f09d849e'),
    salt: Buffer.from('EXAMPLE.COMpianist'),
    pbkdf2: '6b9cf26d45455a43a5b8bb276a403b39e7fe37a0c41e02c281ff3069e1e94f52',
    aes128: 'f149c1f2e154a73452d43e7fe62a56e5',
    aes256: '4b6d9839f84406df1f09cc166db4b83c571848b784a3d6bdc346589a3e393f9e',
  },
]

describe('aes-cts-hmac-sha1-96 string-to-key (RFC 3962 appendix B)', () => {
  for (const v of RFC3962) {
    it(`${v.name}: PBKDF2 outputs`, () => {
      const p256 = pbkdf2Sync(v.password, v.salt, v.iterations, 32, 'sha1')
      assert.equal(p256.toString('hex'), v.pbkdf2)
      const p128 = pbkdf2Sync(v.password, v.salt, v.iterations, 16, 'sha1')
      assert.equal(p128.toString('hex'), v.pbkdf2.slice(0, 32))
    })

    it(`${v.name}: DK(PBKDF2 output, "kerberos")`, () => {
      const tkey = hex(v.pbkdf2)
      assert.equal(deriveRandomAes(tkey.subarray(0, 16), KERBEROS, 16).toString('hex'), v.aes128)
      assert.equal(deriveRandomAes(tkey, KERBEROS, 32).toString('hex'), v.aes256)
    })

    it(`${v.name}: deriveKey and deriveKeySync for enctypes 17 and 18`, async () => {
      const base = { password: v.password, salt: v.salt, iterations: v.iterations }
      assert.equal((await deriveKey({ ...base, etype: 17 })).toString('hex'), v.aes128)
      assert.equal((await deriveKey({ ...base, etype: 18 })).toString('hex'), v.aes256)
      assert.equal(deriveKeySync({ ...base, etype: 17 }).toString('hex'), v.aes128)
      assert.equal(deriveKeySync({ ...base, etype: 18 }).toString('hex'), v.aes256)
    })
  }
})

describe('aes-cts-hmac-sha2 string-to-key (RFC 8009)', () => {
  const salt = Buffer.concat([
    hex('10df9dd783e5bc8acea1730e74355f61'),
    Buffer.from('ATHENA.MIT.EDUraeburn'),
  ])
  const base = { password: Buffer.from('password'), salt, iterations: 32768 }

  it('aes128-cts-hmac-sha256-128 (19)', async () => {
    assert.equal(
      (await deriveKey({ ...base, etype: 19 })).toString('hex'),
      '089bca48b105ea6ea77ca5d2f39dc5e7',
    )
  })

  it('aes256-cts-hmac-sha384-192 (20)', async () => {
    assert.equal(
      (await deriveKey({ ...base, etype: 20 })).toString('hex'),
      '45bd806dbf6a833a9cffc1c94589a222367a79bc21c413718906e9f578a78467',
    )
  })

  it('KDF-HMAC-SHA2 key-derivation vectors (Kc, Ke, Ki for usage 2)', () => {
    const k128 = hex('3705d96080c17728a0e800eab6e0d23c')
    const k256 = hex('6d404d37faf79f9df0d33568d320669800eb4836472ea8a026d16b7182460c52')
    const label = (c: number) => Buffer.from([0, 0, 0, 2, c])
    const cases: [Buffer, number, number, 'sha256' | 'sha384', string][] = [
      [k128, 0x99, 16, 'sha256', 'b31a018a48f54776f403e9a396325dc3'],
      [k128, 0xaa, 16, 'sha256', '9b197dd1e8c5609d6e67c3e37c62c72e'],
      [k128, 0x55, 16, 'sha256', '9fda0e56ab2d85e1569a688696c26a6c'],
      [k256, 0x99, 24, 'sha384', 'ef5718be86cc84963d8bbb5031e9f5c4ba41f28faf69e73d'],
      [
        k256,
        0xaa,
        32,
        'sha384',
        '56ab22bee63d82d7bc5227f6773f8ea7a5eb1c825160c38312980c442e5c7e49',
      ],
      [k256, 0x55, 24, 'sha384', '69b16514e3cd8e56b82010d5c73012b622c4d00ffc23ed1f'],
    ]
    for (const [key, c, n, digest, out] of cases) {
      assert.equal(kdfHmacSha2(key, label(c), n, digest).toString('hex'), out)
    }
  })
})

describe('deriveKey input handling', () => {
  const base: DeriveKeyInput = {
    etype: 18,
    password: Buffer.from('hunter2'),
    salt: Buffer.from('EXAMPLE.COMalice'),
    iterations: 4096,
  }

  it('supports 17-20 only; others throw SASLGATE_ERR_S2K_UNSUPPORTED', async () => {
    assert.deepEqual(
      [17, 18, 19, 20].map((e) => [supportsEtype(e), keyLength(e)]),
      [
        [true, 16],
        [true, 32],
        [true, 16],
        [true, 32],
      ],
    )
    for (const etype of [0, 1, 16, 23, 25, 26, -128]) {
      assert.equal(supportsEtype(etype), false)
      await assert.rejects(
        deriveKey({ ...base, etype }),
        (err: unknown) =>
          isSaslgateError(err, 'SASLGATE_ERR_S2K_UNSUPPORTED') && !err.message.includes('hunter2'),
      )
      assert.throws(
        () => deriveKeySync({ ...base, etype }),
        (err: unknown) => isSaslgateError(err, 'SASLGATE_ERR_S2K_UNSUPPORTED'),
      )
    }
  })

  it('refuses iteration counts outside 1..0xFFFFFF with SASLGATE_ERR_UNSAFE_S2K', async () => {
    assert.equal(MAX_S2K_ITERATIONS, 0xffffff)
    for (const iterations of [0, -1, 1.5, Number.NaN, 0x1000000, 2 ** 32]) {
      await assert.rejects(deriveKey({ ...base, iterations }), (err: unknown) =>
        isSaslgateError(err, 'SASLGATE_ERR_UNSAFE_S2K'),
      )
    }
  })

  it('refuses non-Buffer passwords and salts', async () => {
    const bad = [
      { ...base, password: 'hunter2' as unknown as Buffer },
      { ...base, salt: 'salt' as unknown as Buffer },
    ]
    for (const input of bad) {
      await assert.rejects(
        deriveKey(input),
        (err: unknown) =>
          isSaslgateError(err, 'SASLGATE_ERR_S2K_UNSUPPORTED') && !err.message.includes('hunter2'),
      )
    }
  })

  it('runs off the event loop: timers fire while a long derivation runs', async () => {
    let ticks = 0
    const timer = setInterval(() => ticks++, 1)
    try {
      // ~100-200 ms of PBKDF2 on the thread pool.
      await deriveKey({ ...base, iterations: 200_000 })
    } finally {
      clearInterval(timer)
    }
    assert.ok(ticks >= 3, `the event loop ran ${ticks} times during the derivation`)
  })

  it('defaultSalt concatenates the realm and the name components', () => {
    assert.equal(defaultSalt('EXAMPLE.COM', ['alice', 'admin']).toString(), 'EXAMPLE.COMaliceadmin')
    assert.equal(defaultSalt('R', ['ü']).toString('hex'), '52c3bc')
  })

  it('async and sync agree on arbitrary input (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(17, 18, 19, 20),
        fc.uint8Array({ maxLength: 80 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.integer({ min: 1, max: 30 }),
        async (etype, password, salt, iterations) => {
          const input = {
            etype,
            password: Buffer.from(password),
            salt: Buffer.from(salt),
            iterations,
          }
          const a = await deriveKey(input)
          assert.equal(a.length, keyLength(etype))
          assert.deepEqual(a, deriveKeySync(input))
        },
      ),
      { numRuns: 100 },
    )
  })
})

/** Finds ktutil (MIT krb5-user); undefined when it is not installed. */
function findKtutil(): string | undefined {
  for (const p of ['/usr/bin/ktutil', '/usr/sbin/ktutil', '/usr/local/bin/ktutil']) {
    const r = spawnSync(p, [], { input: 'quit\n', timeout: 5000 })
    if (!r.error) return p
  }
  return undefined
}

const ENCTYPE_NAMES: Record<number, string> = {
  17: 'aes128-cts-hmac-sha1-96',
  18: 'aes256-cts-hmac-sha1-96',
  19: 'aes128-cts-hmac-sha256-128',
  20: 'aes256-cts-hmac-sha384-192',
}

describe('cross-check against MIT ktutil (default iteration counts)', () => {
  const ktutil = findKtutil()
  const dir = mkdtempSync(join(tmpdir(), 'saslgate-s2k-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const krb5conf = join(dir, 'krb5.conf')
  writeFileSync(krb5conf, '[libdefaults]\n default_realm = EXAMPLE.COM\n')

  /** Runs one ktutil session adding every entry; returns the keys in slot order. */
  function ktutilKeys(
    entries: { principal: string; etype: number; salt?: string; password: string }[],
  ) {
    const script = entries
      .map(
        (e) =>
          `addent -password -p ${e.principal} -k 1 -e ${ENCTYPE_NAMES[e.etype]}` +
          `${e.salt === undefined ? '' : ` -s ${e.salt}`}\n${e.password}\n`,
      )
      .join('')
    const r = spawnSync(ktutil!, [], {
      input: `${script}list -k -e\nquit\n`,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', KRB5_CONFIG: krb5conf },
      cwd: dir,
      timeout: 60_000,
      encoding: 'utf8',
    })
    assert.equal(r.error, undefined)
    const keys = [...r.stdout.matchAll(/^\s*\d+\s+1\s+\S+\s+\((\S+)\)\s+\(0x([0-9a-f]+)\)/gm)]
    assert.equal(keys.length, entries.length, `ktutil listed ${keys.length} keys: ${r.stderr}`)
    return keys.map((m, i) => {
      assert.equal(m[1], ENCTYPE_NAMES[entries[i]!.etype])
      return m[2]!
    })
  }

  const defaults: Record<number, number> = { 17: 4096, 18: 4096, 19: 32768, 20: 32768 }

  it('random passwords, salts and enctypes match MIT', async (t) => {
    if (!ktutil) {
      t.skip('ktutil (MIT krb5-user) is not installed: the cross-check did not run')
      return
    }
    const seed = Date.now() | 0
    const cases = fc.sample(
      fc.record({
        etype: fc.constantFrom(17, 18, 19, 20),
        // Printable ASCII and some non-ASCII letters, no newline (ktutil reads one line).
        password: fc.stringMatching(/^[\x20-\x7eäöüßéλЖ中]{1,40}$/),
        salt: fc.stringMatching(/^[A-Za-z0-9.@/_-]{1,40}$/),
      }),
      { numRuns: 24, seed },
    )
    const expected = ktutilKeys(cases.map((c) => ({ ...c, principal: 'x@EXAMPLE.COM' })))
    for (const [i, c] of cases.entries()) {
      const key = await deriveKey({
        etype: c.etype,
        password: Buffer.from(c.password, 'utf8'),
        salt: Buffer.from(c.salt, 'utf8'),
        iterations: defaults[c.etype]!,
      })
      assert.equal(key.toString('hex'), expected[i], `case ${i} (etype ${c.etype}, seed ${seed})`)
    }
  })

  it('the default salt of a principal (REALM || components) matches MIT', async (t) => {
    if (!ktutil) {
      t.skip('ktutil (MIT krb5-user) is not installed: the cross-check did not run')
      return
    }
    const entries = [17, 18, 19, 20].map((etype) => ({
      principal: 'alice/admin@EXAMPLE.COM',
      etype,
      password: 'correct horse battery staple',
    }))
    const expected = ktutilKeys(entries)
    for (const [i, e] of entries.entries()) {
      const key = await deriveKey({
        etype: e.etype,
        password: Buffer.from(e.password),
        salt: defaultSalt('EXAMPLE.COM', ['alice', 'admin']),
        iterations: defaults[e.etype]!,
      })
      assert.equal(key.toString('hex'), expected[i])
    }
  })
})
