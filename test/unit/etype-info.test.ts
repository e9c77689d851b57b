import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { isSaslgateError } from '../../src/errors.js'
import { DEFAULT_ENCTYPES, parseEnctypes, s2kCeiling } from '../../src/kerberos/enctypes.js'
import {
  checkEnctypes,
  checkS2kSafety,
  type ETypeInfo2Entry,
  inspectKdcReply,
  type KdcReplyInfo,
  s2kIterations,
} from '../../src/kerberos/etype-info.js'
import { deriveKey } from '../../src/kerberos/string-to-key.js'

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')

/**
 * Replies of a real MIT krb5kdc 1.20.1 (Debian 12), captured with kinit through a UDP proxy,
 * realm EXAMPLE.TEST, principals with +requires_preauth. The keys are what
 * `kadmin.local ktadd -norandkey` + `klist -kteK` printed for the KDC's database.
 */
const MIT = {
  alicePreauthRequired: hex(`
    7e81ea3081e7a003020105a10302011ea411180f32303236313132373233353134355aa50502030b8b98a603
    020119a70e1b0c4558414d504c452e54455354a8123010a003020101a10930071b05616c696365a90e1b0c45
    58414d504c452e54455354aa21301fa003020102a11830161b066b72627467741b0c4558414d504c452e5445
    5354ab101b0e4e45454445445f50524541555448ac530451304f300aa10402020088a20204003027a1030201
    13a220041e301c301aa003020112a1131b114558414d504c452e54455354616c6963653009a103020102a202
    0400300da10402020085a20504034d4954`),
  aliceAsRep: hex(`
    6b82031e3082031aa003020105a10302010ba22b30293027a103020113a220041e301c301aa003020112a113
    1b114558414d504c452e54455354616c696365a30e1b0c4558414d504c452e54455354a4123010a003020101
    a10930071b05616c696365a582019c6182019830820194a003020105a10e1b0c4558414d504c452e54455354
    a221301fa003020102a11830161b066b72627467741b0c4558414d504c452e54455354a382015830820154a0
    03020112a103020101a2820146048201422211d637ac329770fa19412d508095e89ee881d4a679c38fb3b053
    63280802072bd53dd4d871cff36e70a107e3c255a2bd35a4f3721e422f1b17e2d1bdea4547bbdb6d33b1df0a
    807c0eab7104234d3e0000f22a2bed726196b9cbcbd4ffd7a20ae631011da3313296ffec9130eb890dafa146
    2ce74ecd51030a6e4215a0224592c243c4de89fa27365d7cdb87b133a9722b3be2b867f881af3b82bbe5069e
    0ff859eac8f31b42784a324c89a17d095d10005b691ae2706976de63bc0c029cf19a53a7d83207d4fcfb7e7a
    65b988b01e541bd55cbd6dac704ef725b35eba8d2af020b0c1d953cadcede1054a635b555f48e55958f5e076
    5e40f7d417407666de7ef1eaa6af06416658dd21930827d3bea469cba4c1d019be8799cf88927db94e2da1a0
    e9d2ce4c35eba6bbf43b0395462f88e95ccff3e7206c3fc3fe9855e23dd214a682011b30820117a003020112
    a282010e0482010a3e97d990f639fe5296177a7975323983f75d25cffaff3c93bec48bb32cec894fef01384e
    b44041beeed4ae3c24870d8ee3ddfe6e2d01e0c5de3f309b0b687fa0b2e2370d293785c2cd075e74e85d1d18
    aa40b70f2eae7121cd69c29731071ad230740639a9b1cdad655cb43e771f0184cd4a2e39bb4f891c7588eca8
    69e02f3f43559683c18ae287c404a8f366ba7199bdae4df328ea83e5beb21dc61168970554c72b615602dd37
    48f1e68db195a65d3d34760a04bbd77464ff8b7aaf553f3741f62ee6db44d6bceed93042513224ce7c63820d
    0c12ef42a684c29e65d5ab8be51de9ac7aefa62781d21e3f9b9ce862afa103214f72c2dd7affe8ca47872ae8
    b8066833183acc05a70e`),
  bobPreauthRequired: hex(`
    7e81f23081efa003020105a10302011ea411180f32303236313132373233353134355aa50502030b8b99a603
    020119a70e1b0c4558414d504c452e54455354a8173015a003020101a10e300c1b03626f621b0561646d696e
    a90e1b0c4558414d504c452e54455354aa21301fa003020102a11830161b066b72627467741b0c4558414d50
    4c452e54455354ab101b0e4e45454445445f50524541555448ac5604543052300aa10402020088a202040030
    2aa103020113a2230421301f301da003020114a1161b144558414d504c452e54455354626f6261646d696e30
    09a103020102a2020400300da10402020085a20504034d4954`),
  bobPreauthFailed: hex(`
    7e81f23081efa003020105a10302011ea411180f32303236313132373233353134355aa50502030b8b9aa603
    020118a70e1b0c4558414d504c452e54455354a8173015a003020101a10e300c1b03626f621b0561646d696e
    a90e1b0c4558414d504c452e54455354aa21301fa003020102a11830161b066b72627467741b0c4558414d50
    4c452e54455354ab101b0e505245415554485f4641494c4544ac5604543052300aa10402020088a202040030
    2aa103020113a2230421301f301da003020114a1161b144558414d504c452e54455354626f6261646d696e30
    09a103020102a2020400300da10402020085a20504034d4954`),
  nobodyUnknown: hex(`
    7e8198308195a003020105a10302011ea411180f32303236313132373233353134355aa50502030b8b9ba603
    020106a70e1b0c4558414d504c452e54455354a8133011a003020101a10a30081b066e6f626f6479a90e1b0c
    4558414d504c452e54455354aa21301fa003020102a11830161b066b72627467741b0c4558414d504c452e54
    455354ab121b10434c49454e545f4e4f545f464f554e44`),
  /** carol has a `:special` (random) salt. */
  carolPreauthRequired: hex(`
    7e81e93081e6a003020105a10302011ea411180f32303236313132373233353134355aa50502030b8b9ca603
    020119a70e1b0c4558414d504c452e54455354a8123010a003020101a10930071b056361726f6ca90e1b0c45
    58414d504c452e54455354aa21301fa003020102a11830161b066b72627467741b0c4558414d504c452e5445
    5354ab101b0e4e45454445445f50524541555448ac520450304e300aa10402020088a20204003026a1030201
    13a21f041d301b3019a003020112a1121b104a4c43454c45454d46434c43414041473009a103020102a20204
    00300da10402020085a20504034d4954`),
}

// --- a tiny DER encoder for hand-made (spoofed) replies ---------------------------------

function tlv(id: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  const n = body.length
  let len: number[]
  if (n < 0x80) len = [n]
  else if (n < 0x100) len = [0x81, n]
  else len = [0x82, n >> 8, n & 0xff]
  return Buffer.concat([Buffer.from([id, ...len]), body])
}
const seq = (...items: Buffer[]) => tlv(0x30, ...items)
const ctx = (n: number, inner: Buffer) => tlv(0xa0 | n, inner)
const int = (v: number) => {
  const b = Buffer.alloc(4)
  b.writeInt32BE(v)
  let i = 0
  while (i < 3 && ((b[i] === 0 && (b[i + 1]! & 0x80) === 0) || (b[i] === 0xff && b[i + 1]! & 0x80)))
    i++
  return tlv(0x02, b.subarray(i))
}
const octets = (b: Buffer) => tlv(0x04, b)
const gstr = (s: string) => tlv(0x1b, Buffer.from(s, 'latin1'))
const u32 = (v: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(v)
  return b
}

function entry2(etype: number, salt?: string, params?: Buffer): Buffer {
  return seq(
    ctx(0, int(etype)),
    ...(salt === undefined ? [] : [ctx(1, gstr(salt))]),
    ...(params === undefined ? [] : [ctx(2, octets(params))]),
  )
}
const paData = (type: number, value: Buffer) => seq(ctx(1, int(type)), ctx(2, octets(value)))
const methodData = (...pa: Buffer[]) => seq(...pa)
const eTypeInfo2 = (...entries: Buffer[]) => seq(...entries)

function krbError(errorCode: number, eData?: Buffer, extra: Buffer[] = []): Buffer {
  return tlv(
    0x7e,
    seq(
      ctx(0, int(5)),
      ctx(1, int(30)),
      ctx(4, tlv(0x18, Buffer.from('20260101000000Z'))),
      ctx(5, int(0)),
      ctx(6, int(errorCode)),
      ctx(9, gstr('EXAMPLE.TEST')),
      ctx(10, seq(ctx(0, int(2)), ctx(1, seq(gstr('krbtgt'), gstr('EXAMPLE.TEST'))))),
      ...extra,
      ...(eData === undefined ? [] : [ctx(12, octets(eData))]),
    ),
  )
}

function asRep(padata?: Buffer, msgType = 11, app = 0x6b): Buffer {
  return tlv(
    app,
    seq(
      ctx(0, int(5)),
      ctx(1, int(msgType)),
      ...(padata === undefined ? [] : [ctx(2, padata)]),
      ctx(3, gstr('EXAMPLE.TEST')),
    ),
  )
}

const preauthRequired = (...entries: Buffer[]) =>
  krbError(25, methodData(paData(2, Buffer.alloc(0)), paData(19, eTypeInfo2(...entries))))

function assertBadReply(reply: Buffer): void {
  assert.throws(
    () => inspectKdcReply(reply),
    (err: unknown) => isSaslgateError(err, 'SASLGATE_ERR_KDC_BAD_REPLY'),
  )
}

const latin1 = (b?: Buffer) => b?.toString('latin1')

// --- tests -------------------------------------------------------------------------------

describe('inspectKdcReply on replies of a real MIT KDC', () => {
  it('PREAUTH_REQUIRED: error 25, ETYPE-INFO2 with the default salt, FAST cookie', () => {
    const info = inspectKdcReply(MIT.alicePreauthRequired)
    assert.equal(info.kind, 'krb-error')
    assert.ok(info.kind === 'krb-error')
    assert.equal(info.errorCode, 25)
    assert.deepEqual(info.paTypes, [136, 19, 2, 133])
    assert.equal(info.hasCookie, true)
    assert.equal(info.padataMalformed, undefined)
    assert.equal(info.eTypeInfo2?.length, 1)
    assert.equal(info.eTypeInfo2?.[0]?.etype, 18)
    assert.equal(latin1(info.eTypeInfo2?.[0]?.salt), 'EXAMPLE.TESTalice')
    assert.equal(info.eTypeInfo2?.[0]?.s2kparams, undefined, 'MIT omits default s2kparams')
    assert.deepEqual(checkS2kSafety(info), { ok: true })
  })

  it('AS-REP: the padata ETYPE-INFO2 is read too', () => {
    const info = inspectKdcReply(MIT.aliceAsRep)
    assert.equal(info.kind, 'as-rep')
    assert.deepEqual(info.paTypes, [19])
    assert.equal(latin1(info.eTypeInfo2?.[0]?.salt), 'EXAMPLE.TESTalice')
    assert.deepEqual(checkS2kSafety(info), { ok: true })
  })

  it('PREAUTH_FAILED (24) and the SHA-2 enctype (20) of bob/admin', () => {
    for (const [reply, code] of [
      [MIT.bobPreauthRequired, 25],
      [MIT.bobPreauthFailed, 24],
    ] as const) {
      const info = inspectKdcReply(reply)
      assert.ok(info.kind === 'krb-error')
      assert.equal(info.errorCode, code)
      assert.equal(info.eTypeInfo2?.[0]?.etype, 20)
      assert.equal(latin1(info.eTypeInfo2?.[0]?.salt), 'EXAMPLE.TESTbobadmin')
    }
  })

  it('PRINCIPAL_UNKNOWN (6) without e-data', () => {
    const info = inspectKdcReply(MIT.nobodyUnknown)
    assert.deepEqual(info, { kind: 'krb-error', errorCode: 6 })
    assert.deepEqual(checkS2kSafety(info), { ok: true })
  })

  it('the salt and default count of the reply derive the key in the KDC database', async () => {
    const cases = [
      [
        MIT.alicePreauthRequired,
        'Secret pass 1',
        'a55faa794964a2d3ead9e0942a059342899bf50786f0b2c1c1b666d3cec29e91',
      ],
      [
        MIT.bobPreauthRequired,
        's3cret',
        '79bb943060fd97a907e2d31993953574673ee195ac0070694d91f56df0a406e3',
      ],
      [
        MIT.carolPreauthRequired,
        'carol pw',
        '66b84972300bfa194b2b7e9889e910d7caf3045fbf2cfbdedaa9cef7f292803f',
      ],
    ] as const
    for (const [reply, password, key] of cases) {
      const e = inspectKdcReply(reply).eTypeInfo2?.[0]
      assert.ok(e?.salt)
      const iterations = s2kIterations(e.etype, e.s2kparams)
      assert.ok(iterations !== undefined)
      const derived = await deriveKey({
        etype: e.etype,
        password: Buffer.from(password),
        salt: e.salt,
        iterations,
      })
      assert.equal(derived.toString('hex'), key)
    }
  })
})

describe('inspectKdcReply on hand-made replies', () => {
  it('reads every entry: salt, s2kparams, several PA-ETYPE-INFO2', () => {
    const reply = krbError(
      25,
      methodData(
        paData(19, eTypeInfo2(entry2(18, 'R.Xu', u32(8192)), entry2(17))),
        paData(133, Buffer.from('cookie')),
        paData(19, eTypeInfo2(entry2(20, undefined, u32(40000)))),
      ),
    )
    const info = inspectKdcReply(reply)
    assert.ok(info.kind === 'krb-error')
    assert.equal(info.hasCookie, true)
    assert.deepEqual(
      info.eTypeInfo2?.map((e: ETypeInfo2Entry) => [
        e.etype,
        latin1(e.salt),
        e.s2kparams?.toString('hex'),
      ]),
      [
        [18, 'R.Xu', '00002000'],
        [17, undefined, undefined],
        [20, undefined, '00009c40'],
      ],
    )
  })

  it('accepts fields in any order and skips unknown ones', () => {
    const odd = seq(ctx(2, octets(u32(5000))), ctx(7, int(1)), ctx(0, int(18)), ctx(1, gstr('S')))
    const pa = seq(ctx(2, octets(eTypeInfo2(odd))), ctx(1, int(19)), ctx(3, int(0)))
    const info = inspectKdcReply(krbError(25, methodData(pa)))
    assert.deepEqual(info.eTypeInfo2?.[0]?.s2kparams, u32(5000))
    assert.equal(info.eTypeInfo2?.[0]?.etype, 18)
  })

  it('reads PA-ETYPE-INFO (old form) and PA-PW-SALT', () => {
    const old = seq(seq(ctx(0, int(17)), ctx(1, octets(Buffer.from('OLDsalt')))))
    const info = inspectKdcReply(
      krbError(25, methodData(paData(11, old), paData(3, Buffer.from('PWsalt')))),
    )
    assert.ok(info.kind === 'krb-error')
    assert.deepEqual(
      info.eTypeInfo?.map((e) => [e.etype, latin1(e.salt)]),
      [[17, 'OLDsalt']],
    )
    assert.equal(latin1(info.pwSalt), 'PWsalt')
    assert.equal(info.eTypeInfo2, undefined)
  })

  it('an unreadable PA-ETYPE-INFO is ignored (it has no s2kparams)', () => {
    const info = inspectKdcReply(krbError(25, methodData(paData(11, Buffer.from([1, 2])))))
    assert.equal(info.padataMalformed, undefined)
    assert.deepEqual(checkS2kSafety(info), { ok: true })
  })

  it('reads AS-REP and TGS-REP padata', () => {
    const pa = seq(paData(19, eTypeInfo2(entry2(18, 'x', u32(0xffffff)))))
    const as = inspectKdcReply(asRep(pa))
    assert.equal(as.kind, 'as-rep')
    assert.deepEqual(checkS2kSafety(as), {
      ok: false,
      reason: 'too_many_iterations',
      etype: 18,
      iterations: 0xffffff,
    })
    assert.deepEqual(inspectKdcReply(asRep()), { kind: 'as-rep' })
    assert.equal(inspectKdcReply(asRep(undefined, 13, 0x6d)).kind, 'tgs-rep')
  })

  it('flags e-data that is not a METHOD-DATA (fail closed)', () => {
    const bad = [
      Buffer.from([0x30, 0x80, 0x00, 0x00]), // BER indefinite length
      Buffer.from('not DER at all'),
      seq(seq(ctx(0, int(19)), ctx(1, octets(Buffer.alloc(4))))), // TYPED-DATA
      seq(ctx(1, int(3)), ctx(2, octets(Buffer.alloc(4)))), // KERB-ERROR-DATA (AD)
      Buffer.concat([methodData(paData(2, Buffer.alloc(0))), Buffer.from([0])]), // trailing
      methodData(seq(ctx(1, int(19)))), // PA-DATA without value
      methodData(seq(ctx(1, int(19)), ctx(1, int(19)), ctx(2, octets(Buffer.alloc(0))))),
      methodData(paData(19, Buffer.from([0x30, 0x03, 0x30, 0x01]))), // broken ETYPE-INFO2
      methodData(paData(19, eTypeInfo2(seq(ctx(1, gstr('no etype')))))),
      methodData(paData(19, eTypeInfo2(seq(ctx(0, int(18)), ctx(1, tlv(0x0c, Buffer.from('u'))))))),
    ]
    for (const eData of bad) {
      const info = inspectKdcReply(krbError(25, eData))
      assert.ok(info.kind === 'krb-error')
      assert.equal(info.errorCode, 25)
      assert.equal(info.padataMalformed, true, eData.toString('hex'))
      assert.deepEqual(checkS2kSafety(info), { ok: false, reason: 'malformed_padata' })
    }
  })

  it('an empty e-data is no e-data', () => {
    const info = inspectKdcReply(krbError(24, Buffer.alloc(0)))
    assert.deepEqual(info, { kind: 'krb-error', errorCode: 24 })
    assert.deepEqual(checkS2kSafety(info), { ok: true })
  })

  it('classifies non-replies as unknown', () => {
    for (const b of [
      Buffer.alloc(0),
      hex('3000'),
      hex('6a00'),
      hex('0000'),
      Buffer.from('hello'),
    ]) {
      assert.deepEqual(inspectKdcReply(b), { kind: 'unknown' })
    }
  })

  it('refuses malformed replies with SASLGATE_ERR_KDC_BAD_REPLY', () => {
    const good = MIT.alicePreauthRequired
    assertBadReply(good.subarray(0, good.length - 1))
    assertBadReply(Buffer.concat([good, Buffer.from([0])]))
    assertBadReply(hex('7e00'))
    assertBadReply(hex('7e 02 30 00')) // no pvno
    assertBadReply(tlv(0x7e, seq(ctx(0, int(4)), ctx(1, int(30)), ctx(6, int(25))))) // pvno 4
    assertBadReply(tlv(0x7e, seq(ctx(0, int(5)), ctx(1, int(11)), ctx(6, int(25))))) // msg-type
    assertBadReply(tlv(0x7e, seq(ctx(0, int(5)), ctx(1, int(30))))) // no error-code
    assertBadReply(krbError(25, undefined, [ctx(6, int(24))])) // duplicate error-code
    assertBadReply(tlv(0x7e, seq(ctx(0, int(5)), ctx(1, int(30)), ctx(6, int(25)), int(1))))
    assertBadReply(tlv(0x7e, seq(ctx(0, int(5)), ctx(1, int(30)), ctx(6, octets(Buffer.alloc(1))))))
    assertBadReply(Buffer.concat([tlv(0x7e, seq(ctx(0, int(5)))).subarray(0, 2), hex('3000')]))
    assertBadReply(asRep(undefined, 13)) // AS-REP tag, TGS msg-type
    assertBadReply(hex('6b 80 00 00')) // indefinite length
  })
})

describe('s2kIterations', () => {
  it('defaults by enctype when s2kparams is absent or empty', () => {
    assert.equal(s2kIterations(17), 4096)
    assert.equal(s2kIterations(18, Buffer.alloc(0)), 4096)
    assert.equal(s2kIterations(19), 32768)
    assert.equal(s2kIterations(20), 32768)
    assert.equal(s2kIterations(25), 32768)
    assert.equal(s2kIterations(26), 32768)
  })

  it('reads a 4-byte big-endian count; 0 means 2^32', () => {
    assert.equal(s2kIterations(18, u32(4096)), 4096)
    assert.equal(s2kIterations(17, hex('00ffffff')), 0xffffff)
    assert.equal(s2kIterations(20, hex('ffffffff')), 0xffffffff)
    assert.equal(s2kIterations(18, u32(0)), 2 ** 32)
  })

  it('enctypes without an iteration count give undefined', () => {
    assert.equal(s2kIterations(23, u32(1_000_000)), undefined)
    assert.equal(s2kIterations(16), undefined)
    assert.equal(s2kIterations(-128, Buffer.alloc(3)), undefined)
  })

  it('throws SASLGATE_ERR_UNSAFE_S2K on a malformed s2kparams', () => {
    for (const params of [Buffer.alloc(3), Buffer.alloc(5), Buffer.alloc(1)]) {
      assert.throws(
        () => s2kIterations(18, params),
        (err: unknown) => isSaslgateError(err, 'SASLGATE_ERR_UNSAFE_S2K'),
      )
    }
  })
})

describe('checkS2kSafety', () => {
  const check = (entry: Buffer, max?: number) =>
    checkS2kSafety(inspectKdcReply(preauthRequired(entry)), max)

  it('default ceiling is per enctype: 4x its default count', () => {
    for (const [etype, ceiling] of [
      [17, 16_384],
      [18, 16_384],
      [19, 131_072],
      [20, 131_072],
      [25, 131_072],
      [26, 131_072],
    ] as const) {
      assert.equal(s2kCeiling(etype), ceiling)
      assert.deepEqual(check(entry2(etype, 's', u32(ceiling))), { ok: true }, `${etype}`)
      assert.deepEqual(check(entry2(etype, 's', u32(ceiling + 1))), {
        ok: false,
        reason: 'too_many_iterations',
        etype,
        iterations: ceiling + 1,
      })
    }
    // The old global 100,000 let an AES-SHA1 reply ask ~24x the normal work: no more.
    assert.equal(check(entry2(18, 's', u32(100_000))).ok, false)
    assert.equal(s2kCeiling(23), undefined)
  })

  it('refuses absurd counts: 0xFFFFFF, 2^32-1 and 0 (= 2^32)', () => {
    for (const [etype, count, iterations] of [
      [17, 0xffffff, 0xffffff],
      [19, 0xffffffff, 0xffffffff],
      [18, 0, 2 ** 32],
      [26, 0x200000, 0x200000],
    ]) {
      assert.deepEqual(check(entry2(etype!, undefined, u32(count!))), {
        ok: false,
        reason: 'too_many_iterations',
        etype,
        iterations,
      })
    }
  })

  it('refuses counts below the enctype default (libkrb5 refuses them too)', () => {
    assert.deepEqual(check(entry2(18, 's', u32(4095))), {
      ok: false,
      reason: 'too_few_iterations',
      etype: 18,
      iterations: 4095,
    })
    assert.equal(check(entry2(20, 's', u32(4096))).ok, false)
    assert.deepEqual(check(entry2(20, 's', u32(32768))), { ok: true })
  })

  it('an override (kerberos.maxS2kIterations > 0) is one ceiling for every enctype', () => {
    assert.deepEqual(check(entry2(18, 's', u32(50_000)), 60_000), { ok: true })
    assert.equal(check(entry2(18, 's', u32(50_000)), 40_000).ok, false)
    assert.equal(check(entry2(18, 's', u32(500_000)), 1_000_000).ok, true)
    assert.equal(check(entry2(20, 's', u32(32_768)), 20_000).ok, false)
    assert.deepEqual(check(entry2(18, 's', u32(16_385)), 0).ok, false)
    for (const bad of [-1, 1.5, Number.NaN]) {
      assert.throws(
        () => check(entry2(18), bad),
        (err: unknown) => isSaslgateError(err, 'SASLGATE_ERR_CONFIG'),
      )
    }
  })

  it('refuses malformed s2kparams, ignores enctypes without a count', () => {
    assert.deepEqual(check(entry2(18, 's', Buffer.alloc(3))), {
      ok: false,
      reason: 'bad_s2kparams',
      etype: 18,
    })
    assert.deepEqual(check(entry2(23, 's', u32(0xffffffff))), { ok: true })
  })

  it('any offending entry among many refuses the reply', () => {
    const info = inspectKdcReply(
      preauthRequired(entry2(18, 'a'), entry2(17, 'b', u32(4096)), entry2(20, 'c', u32(1e7))),
    )
    assert.deepEqual(checkS2kSafety(info), {
      ok: false,
      reason: 'too_many_iterations',
      etype: 20,
      iterations: 1e7,
    })
  })

  it('is ok for replies without string-to-key parameters', () => {
    assert.deepEqual(checkS2kSafety({ kind: 'unknown' }), { ok: true })
    assert.deepEqual(checkS2kSafety(inspectKdcReply(krbError(6))), { ok: true })
  })
})

describe('checkEnctypes (the allow-list, kerberos.enctypes)', () => {
  const AES = parseEnctypes(DEFAULT_ENCTYPES)

  it('the default allow-list is AES with SHA-1 and SHA-2, aes256 first', () => {
    assert.deepEqual(AES, [18, 17, 20, 19])
    assert.deepEqual(parseEnctypes(['rc4-hmac', 'ARCFOUR-HMAC', 'aes256-cts']), [23, 18])
    for (const bad of [[], ['aes512-cts'], ['des-cbc-crc']]) {
      assert.throws(
        () => parseEnctypes(bad),
        (err: unknown) =>
          isSaslgateError(err, 'SASLGATE_ERR_CONFIG') &&
          (err as Error).message.includes('kerberos.enctypes'),
      )
    }
  })

  it('refuses an rc4-only or des3-only hint (a downgrade), in KRB-ERROR and AS-REP', () => {
    for (const etype of [23, 16, 24]) {
      assert.deepEqual(checkEnctypes(inspectKdcReply(preauthRequired(entry2(etype))), AES), {
        ok: false,
        reason: 'no_allowed_enctype',
        offered: [etype],
      })
    }
    const as = inspectKdcReply(asRep(seq(paData(19, eTypeInfo2(entry2(23, 'x'))))))
    assert.equal(checkEnctypes(as, AES).ok, false)
    // the old PA-ETYPE-INFO, read by libkrb5 when there is no PA-ETYPE-INFO2
    const old = inspectKdcReply(
      krbError(
        25,
        methodData(paData(11, seq(seq(ctx(0, int(23)), ctx(1, octets(Buffer.from('x'))))))),
      ),
    )
    assert.equal(checkEnctypes(old, AES).ok, false)
    // allowed when configured
    assert.equal(checkEnctypes(inspectKdcReply(preauthRequired(entry2(23))), [23]).ok, true)
  })

  it('picks what libkrb5 picks: the first allowed enctype in allow-list order', () => {
    const info = inspectKdcReply(
      preauthRequired(entry2(23, 'r'), entry2(17, 'salt17'), entry2(18, 'salt18', u32(8192))),
    )
    const r = checkEnctypes(info, AES)
    assert.ok(r.ok)
    assert.equal(r.choice.etype, 18)
    assert.equal(latin1(r.choice.salt), 'salt18')
    assert.equal(r.choice.s2kparams?.readUInt32BE(0), 8192)
    const r2 = checkEnctypes(info, [17, 18])
    assert.ok(r2.ok)
    assert.equal(r2.choice.etype, 17)
  })

  it('no hint: the first allowed enctype with the PA-PW-SALT or the default salt', () => {
    const encTs = methodData(paData(2, Buffer.alloc(0)))
    const none = checkEnctypes(inspectKdcReply(krbError(25, encTs)), AES)
    assert.deepEqual(none, { ok: true, choice: { etype: 18 } })
    // an error other than PREAUTH_REQUIRED carries no offer to judge
    assert.deepEqual(checkEnctypes(inspectKdcReply(krbError(6)), AES), {
      ok: true,
      choice: { etype: 18 },
    })
    const pw = checkEnctypes(
      inspectKdcReply(krbError(25, methodData(paData(3, Buffer.from('PWsalt'))))),
      AES,
    )
    assert.ok(pw.ok)
    assert.equal(latin1(pw.choice.salt), 'PWsalt')
  })

  it('refuses a PREAUTH_REQUIRED with no hint and no usable method (MIT: no key of an allowed enctype)', () => {
    // What MIT 1.20 sends for a principal with only an rc4 key: PA-FX-FAST and PA-FX-COOKIE.
    const mit = methodData(paData(136, Buffer.alloc(0)), paData(133, Buffer.from('MIT')))
    assert.deepEqual(checkEnctypes(inspectKdcReply(krbError(25, mit)), AES), {
      ok: false,
      reason: 'no_allowed_enctype',
      offered: [],
    })
    assert.equal(checkEnctypes(inspectKdcReply(krbError(25)), AES).ok, false)
    const spake = methodData(paData(151, Buffer.alloc(0)))
    assert.equal(checkEnctypes(inspectKdcReply(krbError(25, spake)), AES).ok, true)
  })

  it('refuses two PA-ETYPE-INFO2 (which one libkrb5 reads is a parser detail)', () => {
    const info = inspectKdcReply(
      krbError(
        25,
        methodData(paData(19, eTypeInfo2(entry2(23))), paData(19, eTypeInfo2(entry2(18)))),
      ),
    )
    assert.equal(checkEnctypes(info, AES).ok, false)
  })
})

describe('fuzz (fast-check)', () => {
  const inspectOrBadReply = (buf: Buffer): KdcReplyInfo | undefined => {
    try {
      return inspectKdcReply(buf)
    } catch (err) {
      assert.ok(isSaslgateError(err, 'SASLGATE_ERR_KDC_BAD_REPLY'), `unexpected ${String(err)}`)
      return undefined
    }
  }
  const safetyNeverThrows = (info: KdcReplyInfo | undefined) => {
    if (info) assert.equal(typeof checkS2kSafety(info).ok, 'boolean')
  }

  it('random bytes: a classification or SASLGATE_ERR_KDC_BAD_REPLY', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0x7e, 0x6b, 0x6d, 0x30),
        fc.uint8Array({ maxLength: 200 }),
        (first, rest) => safetyNeverThrows(inspectOrBadReply(Buffer.from([first, ...rest]))),
      ),
      { numRuns: 3000 },
    )
  })

  it('mutated MIT replies: a classification or SASLGATE_ERR_KDC_BAD_REPLY', () => {
    const replies = Object.values(MIT)
    fc.assert(
      fc.property(
        fc.nat(replies.length - 1),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.option(fc.nat()),
        (which, edits, cut) => {
          const buf = Buffer.from(replies[which]!)
          for (const [at, value] of edits) buf[at % buf.length] = value
          const input = cut === null ? buf : buf.subarray(0, cut % (buf.length + 1))
          safetyNeverThrows(inspectOrBadReply(input))
        },
      ),
      { numRuns: 3000 },
    )
  })

  it('any s2kparams: safe only within [default, max]', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(17, 18, 19, 20),
        fc.uint8Array({ minLength: 0, maxLength: 6 }),
        (etype, params) => {
          const p = Buffer.from(params)
          const result = checkS2kSafety(inspectKdcReply(preauthRequired(entry2(etype, 's', p))))
          if (p.length !== 0 && p.length !== 4) assert.equal(result.ok, false)
          else {
            const n = p.length === 0 ? 0 : p.readUInt32BE(0)
            const count = p.length === 0 ? (etype < 19 ? 4096 : 32768) : n === 0 ? 2 ** 32 : n
            const min = etype < 19 ? 4096 : 32768
            assert.equal(result.ok, count >= min && count <= 4 * min)
          }
        },
      ),
      { numRuns: 2000 },
    )
  })
})
