/**
 * The default verify principal comes from libkrb5 itself (krb5_sname_to_principal with
 * KRB5_NT_SRV_HST, through the addon), so krb5.conf's canonicalisation settings apply as they
 * do for saslauthd. Shown with settings that need no DNS: canonicalisation off and
 * `qualify_shortname` (MIT 1.18+), which libkrb5 appends to a short host name.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { loadConfig } from '../../src/config.js'
import { resolveKerberosSettings } from '../../src/kerberos/setup.js'

const dir = mkdtempSync(join(tmpdir(), 'saslgate-vp-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function conf(name: string, libdefaults: string): string {
  const path = join(dir, name)
  writeFileSync(
    path,
    `[libdefaults]\n default_realm = VP.TEST\n${libdefaults}[realms]\n VP.TEST = {\n  kdc = 127.0.0.1:1\n }\n`,
  )
  return path
}

async function defaultPrincipal(path: string): Promise<string> {
  const config = loadConfig({ env: {}, settings: { 'kerberos.config': path } })
  return (await resolveKerberosSettings(config, {})).verifyPrincipal('VP.TEST')
}

const short = hostname().toLowerCase().split('.')[0]!

test('canonicalisation off: libkrb5 qualifies a short host name with qualify_shortname', async () => {
  const p = await defaultPrincipal(
    conf('q.conf', ' dns_canonicalize_hostname = false\n qualify_shortname = mail.example.org\n'),
  )
  if (hostname().includes('.')) assert.equal(p, `host/${hostname().toLowerCase()}@VP.TEST`)
  else assert.equal(p, `host/${short}.mail.example.org@VP.TEST`)
})

test('canonicalisation off and no qualification: the host name as gethostname() gives it, lowercased', async () => {
  const p = await defaultPrincipal(
    conf('n.conf', ' dns_canonicalize_hostname = false\n qualify_shortname = ""\n'),
  )
  assert.equal(p, `host/${hostname().toLowerCase()}@VP.TEST`)
})

test('an explicit kerberos.verifyPrincipal is used as given', async () => {
  const config = loadConfig({
    env: {},
    settings: { 'kerberos.config': conf('e.conf', ''), 'kerberos.verifyPrincipal': 'imap/x' },
  })
  assert.equal(
    (await resolveKerberosSettings(config, {})).verifyPrincipal('VP.TEST'),
    'imap/x@VP.TEST',
  )
})
