/**
 * The recording (spoofing) KDC's own parts (src/testing/recording-kdc.ts, krb-messages.ts, krb-crypto.ts).
 * That they agree with libkrb5 is shown where they are used: test/integration/
 * kerberos-spoofing.test.ts reads libkrb5's PA-ENC-TIMESTAMPs with them.
 */
import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { inspectKdcReply } from '../../src/kerberos/etype-info.js'
import { aesDecrypt, aesEncrypt, KeyUsage } from '../../src/testing/krb-crypto.js'
import {
  derCtx,
  derInt,
  derOctets,
  derSeq,
  encodeKrbError,
  readAsReq,
  tlv,
} from '../../src/testing/krb-messages.js'
import { startRecordingKdc } from '../../src/testing/recording-kdc.js'

describe('krb-crypto (RFC 3962 profile)', () => {
  test('encrypt/decrypt round trip at every length around the CTS block edges', () => {
    for (const keyBytes of [16, 32]) {
      const key = Buffer.alloc(keyBytes, 7)
      for (const n of [0, 1, 15, 16, 17, 31, 32, 33, 100]) {
        const plain = Buffer.from(Array.from({ length: n }, (_, i) => i & 0xff))
        const ct = aesEncrypt(key, KeyUsage.paEncTimestamp, plain)
        assert.equal(ct.length, 16 + n + 12)
        assert.deepEqual(aesDecrypt(key, KeyUsage.paEncTimestamp, ct), plain, `${keyBytes}/${n}`)
      }
    }
  })

  test('another key, another usage or a flipped bit do not open it', () => {
    const key = Buffer.alloc(32, 1)
    const ct = aesEncrypt(key, KeyUsage.asRepEncPart, Buffer.from('encrypted part'))
    assert.equal(aesDecrypt(Buffer.alloc(32, 2), KeyUsage.asRepEncPart, ct), undefined)
    assert.equal(aesDecrypt(key, KeyUsage.paEncTimestamp, ct), undefined)
    const flipped = Buffer.from(ct)
    flipped[5]! ^= 1
    assert.equal(aesDecrypt(key, KeyUsage.asRepEncPart, flipped), undefined)
    assert.equal(aesDecrypt(key, KeyUsage.asRepEncPart, Buffer.alloc(10)), undefined)
  })
})

describe('krb-messages', () => {
  test('encodeKrbError is read back by the product inspection as libkrb5 would see it', () => {
    const reply = encodeKrbError({
      errorCode: 25,
      realm: 'EXAMPLE.TEST',
      client: ['alice'],
      etypeInfo2: [{ etype: 23 }, { etype: 18, salt: 'EXAMPLE.TESTalice', iterations: 16_384 }],
    })
    const info = inspectKdcReply(reply)
    assert.equal(info.kind, 'krb-error')
    assert.ok(info.kind === 'krb-error')
    assert.equal(info.errorCode, 25)
    assert.deepEqual(info.paTypes, [19, 2])
    assert.deepEqual(
      info.eTypeInfo2?.map((e) => [e.etype, e.salt?.toString(), e.s2kparams?.readUInt32BE(0)]),
      [
        [23, undefined, undefined],
        [18, 'EXAMPLE.TESTalice', 16_384],
      ],
    )
  })

  test('readAsReq reads padata types, the PA-ENC-TIMESTAMP and the enctype list', () => {
    const encTs = derSeq(derCtx(0, derInt(18)), derCtx(2, derOctets(Buffer.from('cipher'))))
    const padata = derSeq(
      derSeq(derCtx(1, derInt(2)), derCtx(2, derOctets(encTs))),
      derSeq(derCtx(1, derInt(149)), derCtx(2, derOctets(Buffer.alloc(0)))),
    )
    const body = derSeq(derCtx(7, derInt(12345)), derCtx(8, derSeq(derInt(18), derInt(17))))
    const asReq = tlv(
      0x6a,
      derSeq(derCtx(1, derInt(5)), derCtx(2, derInt(10)), derCtx(3, padata), derCtx(4, body)),
    )
    assert.deepEqual(readAsReq(asReq), {
      padataTypes: [2, 149],
      encTimestampEtype: 18,
      encTimestampCipher: Buffer.from('cipher'),
      etypes: [18, 17],
    })
    assert.equal(readAsReq(Buffer.from('garbage')), undefined)
    assert.equal(readAsReq(tlv(0x6c, derSeq())), undefined) // a TGS-REQ
  })
})

describe('startRecordingKdc', () => {
  test('records every request and answers from its script; close is idempotent', async () => {
    const kdc = await startRecordingKdc({
      answer: (req, i) => (i === 1 ? 'drop' : Buffer.concat([Buffer.from(`R${i}:`), req])),
    })
    const sock = createSocket('udp4')
    try {
      sock.send('first', kdc.port, kdc.host)
      const [reply] = (await once(sock, 'message')) as [Buffer]
      assert.equal(reply.toString(), 'R0:first')
      sock.send('second', kdc.port, kdc.host) // dropped
      sock.send('third', kdc.port, kdc.host)
      const [third] = (await once(sock, 'message')) as [Buffer]
      assert.equal(third.toString(), 'R2:third')
      assert.deepEqual(
        kdc.requests.map((r) => [r.bytes.toString(), r.asReq]),
        [
          ['first', undefined],
          ['second', undefined],
          ['third', undefined],
        ],
      )
    } finally {
      sock.close()
      await Promise.all([kdc.close(), kdc.close()])
    }
  })
})
