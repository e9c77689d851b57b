// Which libkrb5 results are verdicts on the user (cached, counted) and which are not.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { decisionOf } from '../../src/errors.js'
import {
  KdcError,
  KRB5_ERROR_BASE,
  Krb5Local,
  reasonForAsCode,
  reasonForTgsCode,
  reasonForVerifyCode,
} from '../../src/kerberos/krb5-verdicts.js'
import { krb5 } from '../../src/kerberos/native.js'

const kdc = (n: number) => KRB5_ERROR_BASE + n
const EINVAL = 22
const ENOMEM = 12

describe('krb5-verdicts', () => {
  test("the codes are libkrb5 1.20's (checked against the addon)", () => {
    const c = krb5().codes
    assert.equal(kdc(KdcError.PREAUTH_FAILED), c.KRB5KDC_ERR_PREAUTH_FAILED)
    assert.equal(kdc(KdcError.C_PRINCIPAL_UNKNOWN), c.KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN)
    assert.equal(kdc(KdcError.S_PRINCIPAL_UNKNOWN), c.KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN)
    assert.equal(kdc(KdcError.SVC_UNAVAILABLE), c.KRB5KDC_ERR_SVC_UNAVAILABLE)
    assert.equal(kdc(KdcError.AP_ERR_BAD_INTEGRITY), c.KRB5KRB_AP_ERR_BAD_INTEGRITY)
    assert.equal(kdc(KdcError.AP_ERR_SKEW), c.KRB5KRB_AP_ERR_SKEW)
    assert.equal(kdc(KdcError.KEY_EXPIRED), c.KRB5KDC_ERR_KEY_EXP)
    assert.equal(Krb5Local.KDCREP_MODIFIED, c.KRB5_KDCREP_MODIFIED)
    assert.equal(Krb5Local.KT_NOTFOUND, c.KRB5_KT_NOTFOUND)
    assert.equal(Krb5Local.KT_KVNONOTFOUND, c.KRB5_KT_KVNONOTFOUND)
    assert.equal(Krb5Local.PREAUTH_FAILED, c.KRB5_PREAUTH_FAILED)
  })

  test('AS: a wrong password only after pre-authentication went out', () => {
    assert.equal(reasonForAsCode(kdc(KdcError.PREAUTH_FAILED), true), 'bad_password')
    assert.equal(reasonForAsCode(kdc(KdcError.PREAUTH_FAILED), false), 'kdc_refused')
    // an AS-REP that does not decrypt: the "wrong password" of a principal without preauth,
    // a forgery once the KDC accepted our pre-authentication
    assert.equal(reasonForAsCode(kdc(KdcError.AP_ERR_BAD_INTEGRITY), false), 'bad_password')
    assert.equal(reasonForAsCode(kdc(KdcError.AP_ERR_BAD_INTEGRITY), true), 'kdc_reply_modified')
    assert.equal(reasonForAsCode(kdc(KdcError.AP_ERR_MODIFIED), true), 'kdc_reply_modified')
  })

  test('AS and TGS: verdicts on the account', () => {
    for (const f of [(c: number) => reasonForAsCode(c, true), reasonForTgsCode]) {
      assert.equal(f(kdc(KdcError.C_PRINCIPAL_UNKNOWN)), 'unknown_principal')
      assert.equal(f(kdc(KdcError.KEY_EXPIRED)), 'password_expired')
      assert.equal(f(kdc(KdcError.CLIENT_REVOKED)), 'principal_locked')
      assert.equal(f(kdc(KdcError.POLICY)), 'principal_disabled')
      assert.equal(f(kdc(KdcError.NAME_EXP)), 'principal_disabled')
      assert.equal(f(kdc(KdcError.CLIENT_NOTYET)), 'principal_disabled')
    }
  })

  test('everything else is unavailable: never cached, never counted', () => {
    const cases: Array<[number, string]> = [
      [kdc(KdcError.SVC_UNAVAILABLE), 'kdc_unavailable'],
      [kdc(KdcError.S_PRINCIPAL_UNKNOWN), 'verify_principal_unknown'],
      [kdc(KdcError.AP_ERR_SKEW), 'kdc_clock_skew'],
      [Krb5Local.KDCREP_MODIFIED, 'kdc_reply_modified'],
      [Krb5Local.KDCREP_SKEW, 'kdc_clock_skew'],
      [Krb5Local.KT_NOTFOUND, 'krb5_local_error'],
      [Krb5Local.ERR_BAD_S2K_PARAMS, 'krb5_local_error'],
      [Krb5Local.PREAUTH_FAILED, 'krb5_local_error'],
      [EINVAL, 'krb5_local_error'],
      [ENOMEM, 'krb5_local_error'],
      [-1, 'krb5_local_error'],
      [kdc(60), 'kdc_refused'], // KRB_ERR_GENERIC
      [kdc(68), 'kdc_refused'], // WRONG_REALM
    ]
    for (const [code, reason] of cases) {
      for (const r of [reasonForAsCode(code, true), reasonForAsCode(code, false)]) {
        assert.equal(r, reason, `AS ${code}`)
        assert.equal(decisionOf(r), 'unavailable')
      }
      assert.equal(decisionOf(reasonForTgsCode(code)), 'unavailable', `TGS ${code}`)
    }
  })

  test('TGS: integrity and password errors say nothing about the password', () => {
    for (const n of [KdcError.AP_ERR_BAD_INTEGRITY, KdcError.AP_ERR_MODIFIED]) {
      assert.equal(reasonForTgsCode(kdc(n)), 'kdc_reply_modified')
    }
    assert.equal(decisionOf(reasonForTgsCode(kdc(KdcError.PREAUTH_FAILED))), 'unavailable')
  })

  test('verify: a ticket the keytab refuses is verify_failed; an unusable keytab is local', () => {
    assert.equal(reasonForVerifyCode(kdc(KdcError.AP_ERR_BAD_INTEGRITY)), 'verify_failed')
    assert.equal(reasonForVerifyCode(krb5().codes.KRB5KRB_AP_ERR_BADMATCH), 'verify_failed')
    assert.equal(reasonForVerifyCode(Krb5Local.KT_KVNONOTFOUND), 'verify_failed')
    assert.equal(reasonForVerifyCode(Krb5Local.KT_NOTFOUND), 'krb5_local_error')
    assert.equal(reasonForVerifyCode(2), 'krb5_local_error') // ENOENT: no keytab file
  })
})
