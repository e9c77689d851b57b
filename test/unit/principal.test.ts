import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { isSaslgateError } from '../../src/errors.js'
import {
  createPrincipalMapper,
  DEFAULT_PRINCIPAL_MAPPER_OPTIONS,
  type PrincipalMapperOptions,
} from '../../src/pipeline/principal.js'

const REFUSED = { ok: false, reason: 'unmappable_login' }

const ok = (name: string, realm: string) => ({
  ok: true,
  principal: `${name}@${realm}`,
  realm,
  name,
})

const site = createPrincipalMapper({
  defaultRealm: 'EXAMPLE.EDU',
  realms: ['EXAMPLE.EDU', 'STAFF.EXAMPLE.EDU', 'other.org'],
  domainRealms: { 'example.edu': 'EXAMPLE.EDU', 'Mail.Example.Edu': 'EXAMPLE.EDU' },
})

describe('defaults', () => {
  it('one exported object holds every default', () => {
    assert.deepEqual(DEFAULT_PRINCIPAL_MAPPER_OPTIONS, {
      defaultRealm: '',
      realms: [],
      domainRealms: {},
      allowInstances: false,
      stripDomain: false,
      maxLoginBytes: 256,
    })
    assert.ok(Object.isFrozen(DEFAULT_PRINCIPAL_MAPPER_OPTIONS))
  })

  it('without realms only the default realm is allowed', () => {
    const m = createPrincipalMapper({ defaultRealm: 'example.edu' })
    assert.deepEqual(m.map('alice', ''), ok('alice', 'EXAMPLE.EDU'))
    assert.deepEqual(m.map('alice@example.edu', ''), ok('alice', 'EXAMPLE.EDU'))
    assert.deepEqual(m.map('alice@other.org', ''), REFUSED)
  })
})

describe('mapping', () => {
  it('no domain: the default realm', () => {
    assert.deepEqual(site.map('alice', ''), ok('alice', 'EXAMPLE.EDU'))
    assert.deepEqual(site.map('Alice.Smith-2_x', ''), ok('Alice.Smith-2_x', 'EXAMPLE.EDU'))
  })

  it('user@domain in the login (realm field empty)', () => {
    assert.deepEqual(site.map('alice@example.edu', ''), ok('alice', 'EXAMPLE.EDU'))
    assert.deepEqual(site.map('alice@MAIL.example.EDU', ''), ok('alice', 'EXAMPLE.EDU'))
  })

  it('the domain in the realm field', () => {
    assert.deepEqual(site.map('alice', 'example.edu'), ok('alice', 'EXAMPLE.EDU'))
    assert.deepEqual(site.map('alice', 'mail.example.edu'), ok('alice', 'EXAMPLE.EDU'))
  })

  it('both: they must agree (any case)', () => {
    assert.deepEqual(site.map('alice@example.edu', 'EXAMPLE.EDU'), ok('alice', 'EXAMPLE.EDU'))
    assert.deepEqual(site.map('alice@example.edu', 'other.org'), REFUSED)
  })

  it('an unmapped domain is its uppercased realm when that realm is allowed', () => {
    assert.deepEqual(site.map('bob@staff.example.edu', ''), ok('bob', 'STAFF.EXAMPLE.EDU'))
    assert.deepEqual(site.map('bob', 'OTHER.ORG'), ok('bob', 'OTHER.ORG'))
    assert.deepEqual(site.map('bob', 'Other.Org'), ok('bob', 'OTHER.ORG'))
  })

  it('unknown domains and realms are refused', () => {
    assert.deepEqual(site.map('alice@evil.com', ''), REFUSED)
    assert.deepEqual(site.map('alice', 'EVIL.COM'), REFUSED)
    assert.deepEqual(site.map('alice', 'example'), REFUSED)
  })

  it('keeps the case of the name', () => {
    assert.deepEqual(site.map('Alice', ''), ok('Alice', 'EXAMPLE.EDU'))
  })

  it('accepts non-ASCII letters in the name', () => {
    assert.deepEqual(site.map('jürgen', ''), ok('jürgen', 'EXAMPLE.EDU'))
  })
})

describe('refusals', () => {
  const cases: [string, string, string][] = [
    ['empty login', '', ''],
    ['only a domain', '@example.edu', ''],
    ['empty domain', 'alice@', ''],
    ['@ left over', 'a@b@example.edu', ''],
    ['@ in the realm field', 'alice', 'a@example.edu'],
    ['NUL in the login', 'alice\0', ''],
    ['NUL in the realm field', 'alice', 'example.edu\0'],
    ['control character', 'ali\x01ce', ''],
    ['DEL', 'alice\x7f', ''],
    ['C1 control', 'alice\x85', ''],
    ['newline', 'alice\n', ''],
    ['space', 'alice smith', ''],
    ['leading space', ' alice', ''],
    ['tab', 'alice\t', ''],
    ['no-break space', 'alice\u00a0', ''],
    ['ideographic space', 'alice\u3000', ''],
    ['zero-width space', 'ali\u200bce', ''],
    ['bidi override', 'alice\u202e', ''],
    ['replacement character', 'alice\ufffd', ''],
    ['lone surrogate', 'alice\ud800', ''],
    ['backslash (krb5 escape)', 'alice\\', ''],
    ['escaped @', 'alice\\@OTHER.ORG', ''],
    ['instance', 'alice/admin', ''],
    ['instance in the domain', 'alice@example.edu/x', ''],
    ['slash in the realm field', 'alice', 'example.edu/x'],
    ['non-ASCII domain', 'alice@exämple.edu', ''],
    ['Kelvin sign in the domain', 'alice@\u212aexample.edu', ''],
    ['space in the realm field', 'alice', ' example.edu'],
    ['whitespace realm field', 'alice', ' '],
    ['over-long login (257 bytes)', 'a'.repeat(257), ''],
    ['over-long login (multi-byte)', 'ü'.repeat(129), ''],
    ['over-long realm field', 'alice', `${'a'.repeat(250)}.example.edu`],
  ]
  for (const [name, login, realm] of cases) {
    it(`refuses ${name}`, () => assert.deepEqual(site.map(login, realm), REFUSED))
  }

  it('accepts exactly 256 bytes', () => {
    const login = 'a'.repeat(256)
    assert.equal(site.map(login, '').ok, true)
    const multi = `${'ü'.repeat(127)}ab`
    assert.equal(Buffer.byteLength(multi), 256)
    assert.equal(site.map(multi, '').ok, true)
  })

  it('refuses non-string input', () => {
    assert.deepEqual(site.map(undefined as unknown as string, ''), REFUSED)
    assert.deepEqual(site.map('alice', null as unknown as string), REFUSED)
  })
})

describe('options', () => {
  it('allowInstances accepts user/instance, never empty components', () => {
    const m = createPrincipalMapper({ defaultRealm: 'EXAMPLE.EDU', allowInstances: true })
    assert.deepEqual(m.map('alice/admin', ''), ok('alice/admin', 'EXAMPLE.EDU'))
    assert.deepEqual(
      m.map('host/mx.example.edu@example.edu', ''),
      ok('host/mx.example.edu', 'EXAMPLE.EDU'),
    )
    for (const login of ['/admin', 'alice/', 'alice//admin', '/']) {
      assert.deepEqual(m.map(login, ''), REFUSED, login)
    }
  })

  it('stripDomain ignores the domain and uses the default realm', () => {
    const m = createPrincipalMapper({ defaultRealm: 'EXAMPLE.EDU', stripDomain: true })
    assert.deepEqual(m.map('alice@anything.org', ''), ok('alice', 'EXAMPLE.EDU'))
    assert.deepEqual(m.map('alice', 'anything.org'), ok('alice', 'EXAMPLE.EDU'))
    assert.deepEqual(m.map('alice@a.org', 'b.org'), REFUSED, 'they still must agree')
    assert.deepEqual(m.map('a@b@c.org', ''), REFUSED)
  })

  it('maxLoginBytes is configurable', () => {
    const m = createPrincipalMapper({ defaultRealm: 'EXAMPLE.EDU', maxLoginBytes: 8 })
    assert.equal(m.map('a'.repeat(8), '').ok, true)
    assert.equal(m.map('a'.repeat(9), '').ok, false)
  })

  it('refuses bad configurations with SASLGATE_ERR_CONFIG', () => {
    const bad: Partial<PrincipalMapperOptions>[] = [
      {},
      { defaultRealm: '' },
      { defaultRealm: 'EXAMPLE EDU' },
      { defaultRealm: 'A@B' },
      { defaultRealm: 'A/B' },
      { defaultRealm: 'A\0B' },
      { defaultRealm: 'EXAMPLE.EDU', realms: ['OTHER.ORG'] },
      { defaultRealm: 'EXAMPLE.EDU', realms: ['EXAMPLE.EDU', ''] },
      { defaultRealm: 'EXAMPLE.EDU', domainRealms: { 'x.org': 'X.ORG' } },
      { defaultRealm: 'EXAMPLE.EDU', domainRealms: { '': 'EXAMPLE.EDU' } },
      { defaultRealm: 'EXAMPLE.EDU', domainRealms: { 'a b': 'EXAMPLE.EDU' } },
      {
        defaultRealm: 'EXAMPLE.EDU',
        domainRealms: { 'x.org': 'EXAMPLE.EDU', 'X.ORG': 'EXAMPLE.EDU' },
      },
      { defaultRealm: 'EXAMPLE.EDU', maxLoginBytes: 0 },
      { defaultRealm: 'EXAMPLE.EDU', maxLoginBytes: 1.5 },
    ]
    for (const options of bad) {
      assert.throws(
        () => createPrincipalMapper(options),
        (err: unknown) => isSaslgateError(err, 'SASLGATE_ERR_CONFIG'),
        JSON.stringify(options),
      )
    }
  })

  it('uppercases configured realms', () => {
    const m = createPrincipalMapper({
      defaultRealm: 'example.edu',
      realms: ['example.edu', 'staff.example.edu'],
      domainRealms: { 'staff.example.com': 'staff.example.edu' },
    })
    assert.deepEqual(m.map('x@staff.example.com', ''), ok('x', 'STAFF.EXAMPLE.EDU'))
    assert.deepEqual(m.map('x', 'staff.example.edu'), ok('x', 'STAFF.EXAMPLE.EDU'))
  })
})

describe('properties (fast-check)', () => {
  const mappers = [
    site,
    createPrincipalMapper({ defaultRealm: 'EXAMPLE.EDU', allowInstances: true }),
    createPrincipalMapper({ defaultRealm: 'EXAMPLE.EDU', stripDomain: true }),
  ]
  const anyString = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({
      unit: fc.constantFrom('a', '@', '/', '\\', '.', ' ', '\0', 'E', 'x'),
      maxLength: 20,
    }),
  )

  it('never throws; a mapped principal is always well-formed and allowed', () => {
    const allowed = new Set(['EXAMPLE.EDU', 'STAFF.EXAMPLE.EDU', 'OTHER.ORG'])
    fc.assert(
      fc.property(fc.nat(mappers.length - 1), anyString, anyString, (i, login, realm) => {
        const r = mappers[i]!.map(login, realm)
        if (!r.ok) {
          assert.deepEqual(r, REFUSED)
          return
        }
        assert.equal(r.principal, `${r.name}@${r.realm}`)
        assert.ok(allowed.has(r.realm))
        assert.ok(r.name.length > 0)
        assert.ok(!r.name.includes('@') && !r.name.includes('\\') && !r.name.includes('\0'))
        assert.ok(!/\s/u.test(r.principal))
        assert.ok(Buffer.byteLength(login) <= 256)
        if (i !== 1) assert.ok(!r.name.includes('/'))
        // The name is the login up to its last '@', unchanged.
        assert.ok(login === r.name || login.startsWith(`${r.name}@`))
      }),
      { numRuns: 5000 },
    )
  })

  it('plain logins in the default realm always map', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9._-]{1,64}$/), (name) => {
        assert.deepEqual(site.map(name, ''), ok(name, 'EXAMPLE.EDU'))
        assert.deepEqual(site.map(`${name}@example.edu`, ''), ok(name, 'EXAMPLE.EDU'))
        assert.deepEqual(site.map(name, 'EXAMPLE.EDU'), ok(name, 'EXAMPLE.EDU'))
      }),
      { numRuns: 500 },
    )
  })
})
