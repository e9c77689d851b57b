// krb5.conf (MIT profile format) reading, on sample files in a temporary directory.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { loadConfig } from '../../src/config.js'
import { isSaslgateError } from '../../src/errors.js'
import {
  DEFAULT_KRB5_CONF_PATH,
  krb5ConfPath,
  parseKrb5Conf,
  readKrb5Conf,
} from '../../src/kerberos/krb5-conf.js'
import { resolveKerberosSettings } from '../../src/kerberos/setup.js'
import { parseKdcAddress } from '../../src/kerberos/transport.js'

let dir = ''
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'saslgate-krb5conf-'))
})
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function write(name: string, text: string): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, text)
  return file
}

function isConfigError(pattern: RegExp) {
  return (err: unknown) => isSaslgateError(err, 'SASLGATE_ERR_CONFIG') && pattern.test(err.message)
}

const MAIN = `# a preamble before any section is ignored, even if it looks = odd
this line is ignored too
module /x/y:z

[libdefaults]
\tdefault_realm = EXAMPLE.ORG
  default_realm = NOT.THE.FIRST
; a semicolon comment
\tdns_lookup_kdc = false
\tticket_lifetime = "10h"

[realms]
\tEXAMPLE.ORG = {
\t\tkdc = kdc1.example.org
\t\tkdc = kdc2.example.org:750
\t\tkdc = [2001:db8::53]:88
\t\tkdc = 2001:db8::54
\t\tkdc = https://kkdcp.example.org/KdcProxy
\t\tadmin_server = kdc1.example.org
\t\tauth_to_local_names = {
\t\t\t# nested relations are parsed and ignored
\t\t\talice = root
\t\t}
\t}
\tOTHER.ORG =
\t{
\t\tkdc = 192.0.2.7:88
\t}*
\t__proto__ = {
\t\tkdc = 192.0.2.66
\t}

[domain_realm]*
\t.Example.org = EXAMPLE.ORG
\texample.org = EXAMPLE.ORG
\t.other.org = OTHER.ORG
\t.other.org = IGNORED.ORG

include INCLUDE_FILE
includedir INCLUDE_DIR

[realms]
\tEXAMPLE.ORG = {
\t\tkdc* = kdc3.example.org
\t}
`

describe('readKrb5Conf', () => {
  test('sections, nesting, comments, includes, several kdc lines, IPv6', async () => {
    const included = await write(
      'included.conf',
      `ignored preamble
[realms]
  INCLUDED.ORG = {
    kdc = "kdc.included.org:88"
  }
`,
    )
    const confDir = join(dir, 'conf.d')
    await mkdir(confDir)
    await writeFile(join(confDir, 'b.conf'), '[realms]\n DIR.ORG = {\n  kdc = kdc-b.dir.org\n }\n')
    await writeFile(join(confDir, 'a_file'), '[realms]\n DIR.ORG = {\n  kdc = kdc-a.dir.org\n }\n')
    await writeFile(join(confDir, 'skipped.bak'), 'this is not parsed [ at all')
    await writeFile(join(confDir, '.hidden.conf'), 'this is not parsed [ at all')
    const main = await write(
      'main.conf',
      MAIN.replace('INCLUDE_FILE', included).replace('INCLUDE_DIR', 'conf.d'),
    )

    const conf = await readKrb5Conf(main, {})
    assert.equal(conf.defaultRealm, 'EXAMPLE.ORG')
    assert.deepEqual(conf.realms.EXAMPLE_ORG, undefined)
    assert.deepEqual(conf.realms['EXAMPLE.ORG'], {
      kdc: [
        'kdc1.example.org',
        'kdc2.example.org:750',
        '[2001:db8::53]:88',
        '2001:db8::54',
        'kdc3.example.org',
      ],
      primaryKdc: [],
    })
    assert.deepEqual(conf.realms['OTHER.ORG'], { kdc: ['192.0.2.7:88'], primaryKdc: [] })
    assert.deepEqual(conf.realms['INCLUDED.ORG'], { kdc: ['kdc.included.org:88'], primaryKdc: [] })
    assert.deepEqual(conf.realms['DIR.ORG'], {
      kdc: ['kdc-a.dir.org', 'kdc-b.dir.org'],
      primaryKdc: [],
    })
    assert.deepEqual(Object.keys(conf.realms).sort(), [
      'DIR.ORG',
      'EXAMPLE.ORG',
      'INCLUDED.ORG',
      'OTHER.ORG',
      '__proto__',
    ])
    assert.ok(Object.hasOwn(conf.realms, '__proto__'), 'an own property, not the prototype')
    assert.equal(({} as Record<string, unknown>).kdc, undefined)
    assert.deepEqual(conf.domainRealm, {
      '.example.org': 'EXAMPLE.ORG',
      'example.org': 'EXAMPLE.ORG',
      '.other.org': 'OTHER.ORG',
    })
    assert.deepEqual(conf.sources, [
      main,
      included,
      join(confDir, 'a_file'),
      join(confDir, 'b.conf'),
    ])

    // What the file says is what the transport accepts.
    for (const { kdc } of Object.values(conf.realms)) for (const k of kdc) parseKdcAddress(k)
    assert.equal(parseKdcAddress('2001:db8::54').key, '[2001:db8::54]:88')
  })

  test('primary_kdc, else the older master_kdc, per realm', async () => {
    const conf = await parseKrb5Conf(
      [
        '[realms]',
        '  NEW.ORG = {',
        '    kdc = replica1.new.org',
        '    kdc = primary.new.org',
        '    primary_kdc = primary.new.org:88',
        '    master_kdc = old-name-ignored.new.org',
        '  }',
        '  OLD.ORG = {',
        '    kdc = kdc.old.org',
        '    master_kdc = master.old.org',
        '    master_kdc = https://kkdcp.old.org/',
        '  }',
        '  NONE.ORG = {',
        '    kdc = kdc.none.org',
        '  }',
        '',
      ].join('\n'),
    )
    assert.deepEqual(conf.realms['NEW.ORG']?.primaryKdc, ['primary.new.org:88'])
    assert.deepEqual(conf.realms['OLD.ORG']?.primaryKdc, ['master.old.org'])
    assert.deepEqual(conf.realms['NONE.ORG']?.primaryKdc, [])
    for (const { primaryKdc } of Object.values(conf.realms)) {
      for (const k of primaryKdc) parseKdcAddress(k)
    }
  })

  test('a missing file gives an empty configuration', async () => {
    const empty = { realms: {}, domainRealm: {}, sources: [] }
    assert.deepEqual(await readKrb5Conf(join(dir, 'nope.conf'), {}), empty)
    assert.deepEqual(await readKrb5Conf(undefined, { KRB5_CONFIG: join(dir, 'nope.conf') }), empty)
  })

  test('KRB5_CONFIG: the first existing entry of the list, else /etc/krb5.conf', async () => {
    const second = await write('second.conf', '[libdefaults]\n default_realm = SECOND.ORG\n')
    const env = { KRB5_CONFIG: `${join(dir, 'missing.conf')}::${second}:${join(dir, 'main.conf')}` }
    assert.equal(await krb5ConfPath(env), second)
    assert.equal((await readKrb5Conf(undefined, env)).defaultRealm, 'SECOND.ORG')
    assert.equal(await krb5ConfPath({ KRB5_CONFIG: '' }), undefined)
    const fallback = await krb5ConfPath({})
    assert.equal(fallback, existsSync(DEFAULT_KRB5_CONF_PATH) ? DEFAULT_KRB5_CONF_PATH : undefined)
  })

  test('syntax errors name the file and line', async () => {
    const cases: Array<[string, RegExp]> = [
      ['[realms\n', /:1: bad section header/],
      ['[realms]\n }\n', /:2: } without \{/],
      ['[realms]\n R = {\n  [libdefaults]\n', /:3: section header inside/],
      ['[libdefaults]\n default_realm\n', /:2: expected tag = value/],
      ['[libdefaults]\n a b = c\n', /:2: bad tag/],
      ['[realms]\n R =\n kdc = x\n', /:3: expected \{/],
      ['[realms]\n R = { junk\n', /:2: junk after \{/],
      [
        `[realms]\ninclude ${join(dir, 'absent.conf')}\n`,
        /:2: cannot read .*absent\.conf \(missing\)/,
      ],
      [`includedir ${join(dir, 'absent.d')}\n`, /:1: cannot read directory/],
    ]
    for (const [text, pattern] of cases) {
      const file = await write('bad.conf', text)
      await assert.rejects(readKrb5Conf(file, {}), isConfigError(pattern), text)
    }
  })

  test('include loops and depth are bounded', async () => {
    const a = join(dir, 'loop-a.conf')
    const b = join(dir, 'loop-b.conf')
    await writeFile(a, `include ${b}\n`)
    await writeFile(b, `include ${a}\n`)
    await assert.rejects(readKrb5Conf(a, {}), isConfigError(/include loop/))

    for (let i = 0; i < 12; i++) {
      await writeFile(join(dir, `deep-${i}.conf`), `include deep-${i + 1}.conf\n`)
    }
    await writeFile(join(dir, 'deep-12.conf'), '[libdefaults]\n default_realm = DEEP\n')
    await assert.rejects(readKrb5Conf(join(dir, 'deep-0.conf'), {}), isConfigError(/nested deeper/))
    const shallow = await readKrb5Conf(join(dir, 'deep-6.conf'), {})
    assert.equal(shallow.defaultRealm, 'DEEP')
  })

  test('quoted values and CRLF line ends', async () => {
    const conf = await parseKrb5Conf(
      '[libdefaults]\r\n default_realm = "QUOTED.ORG" trailing\r\n[realms]\r\n Q = {\r\n  kdc = "a\\\\b"\r\n }\r\n',
    )
    assert.equal(conf.defaultRealm, 'QUOTED.ORG')
    assert.deepEqual(conf.realms.Q, { kdc: ['a\\b'], primaryKdc: [] })
  })

  test("this machine's /etc/krb5.conf parses, and its KDCs are valid addresses", async (t) => {
    if (!existsSync(DEFAULT_KRB5_CONF_PATH)) return t.skip('no /etc/krb5.conf here')
    const conf = await readKrb5Conf(DEFAULT_KRB5_CONF_PATH, {})
    assert.deepEqual(conf.sources[0], DEFAULT_KRB5_CONF_PATH)
    for (const { kdc } of Object.values(conf.realms)) for (const k of kdc) parseKdcAddress(k)
  })
})

describe('primary KDCs in the Kerberos settings', () => {
  const settings = async (conf: string, set: Record<string, string>) => {
    const path = await write(`settings-${Object.keys(set).join('-') || 'none'}.conf`, conf)
    return resolveKerberosSettings(
      loadConfig({ env: {}, settings: { 'kerberos.config': path, ...set } }),
      {},
    )
  }
  const CONF = [
    '[libdefaults]',
    '  default_realm = A.ORG',
    '[realms]',
    '  A.ORG = {',
    '    kdc = replica.a.org',
    '    master_kdc = primary.a.org',
    '  }',
    '  B.ORG = {',
    '    kdc = kdc.b.org',
    '  }',
    '',
  ].join('\n')

  test('from krb5.conf; kerberos.primaryKdcs overrides it per realm', async () => {
    const fromConf = await settings(CONF, {})
    assert.deepEqual(fromConf.primaryKdcs, { 'A.ORG': ['primary.a.org'] })
    const overridden = await settings(CONF, {
      'kerberos.primaryKdcs': 'a.org=p1.a.org:88,p2.a.org; B.ORG=p.b.org',
    })
    assert.deepEqual(overridden.primaryKdcs, {
      'A.ORG': ['p1.a.org:88', 'p2.a.org'],
      'B.ORG': ['p.b.org'],
    })
  })

  test('kerberos.retryOnPrimary without a primary for the default realm is refused at start', async () => {
    const noPrimary = CONF.replace('    master_kdc = primary.a.org\n', '')
    await assert.rejects(
      settings(noPrimary, { 'kerberos.retryOnPrimary': 'true' }),
      (e) =>
        isSaslgateError(e, 'SASLGATE_ERR_CONFIG') &&
        /kerberos\.retryOnPrimary: no primary KDC for realm A\.ORG/.test(e.message),
    )
    const ok = await settings(CONF, { 'kerberos.retryOnPrimary': 'true' })
    assert.deepEqual(ok.primaryKdcs['A.ORG'], ['primary.a.org'])
  })
})
