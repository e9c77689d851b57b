/**
 * The chart's `helm test` login pod, its script run for real: rendered by tools/helm-render
 * from ci/production-values.yaml, then run by node against a real `saslgate serve` (token
 * auth) and a real MIT KDC. The pod's mount points (/etc/saslgate/...) are moved into a
 * temporary directory, the only change made to the script.
 */
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  realmUsers,
  runBounded,
  type StartedService,
  startService,
  writeTokenFile,
} from '../../src/testing/deployment.js'
import { type Realm, startRealm } from '../../src/testing/realm.js'
import { CHART, objectsOf, render } from '../deploy/helm.js'

const PASSWORD = 'helm-Test-pass-1'
const TOKEN = 'helm-test-token-0123456789abcdef0123456789'

let realm: Realm
let dir: string
let svc: StartedService
let script: string

before(async () => {
  realm = await startRealm({ users: realmUsers({ 'saslgate-helm-test': PASSWORD }) })
  dir = await mkdtemp(join(tmpdir(), 'saslgate-helm-test-'))
  const tokenFile = writeTokenFile(dir, TOKEN, 'service-token')
  svc = await startService({ realm, tokenFile, args: ['--set', 'service.insecure=true'] })
  const r = render(CHART, { valueFiles: [join(CHART, 'ci/production-values.yaml')] })
  const pod = objectsOf(r, 'Pod')[0] as { spec: { containers: Array<{ command: string[] }> } }
  script = pod.spec.containers[0]!.command.at(-1)!.replaceAll('/etc/saslgate/', `${dir}/`)
  mkdirSync(join(dir, 'token'))
  mkdirSync(join(dir, 'test'))
  // As the Secret holds it: a comment, the token, a second token (rotation).
  writeFileSync(
    join(dir, 'token/token'),
    `# shims\n${TOKEN}\nsecond-token-0123456789abcdef0123456789\n`,
  )
})

after(async () => {
  await svc?.proc.stop()
  await realm?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

const runHook = (login: string) =>
  runBounded(process.execPath, ['-e', script], {
    env: { PATH: process.env.PATH ?? '', SASLGATE_TEST_URL: svc.url, SASLGATE_TEST_LOGIN: login },
    timeoutMs: 30_000,
  })

describe('helm test login hook against a real service', () => {
  test('the right password passes; a wrong one and a wrong token fail; no password printed', async () => {
    writeFileSync(join(dir, 'test/password'), `${PASSWORD}\n`) // kubectl create secret adds no newline; tolerated
    const ok = await runHook('saslgate-helm-test')
    assert.equal(ok.code, 0, ok.stdout + ok.stderr)
    assert.match(ok.stdout, /^HTTP 200: DECISION_OK$/m)

    writeFileSync(join(dir, 'test/password'), 'not-the-password')
    const bad = await runHook('saslgate-helm-test')
    assert.equal(bad.code, 1)
    assert.match(bad.stdout, /HTTP 200: DECISION_INVALID/)

    writeFileSync(join(dir, 'token/token'), 'wrong-token-0123456789abcdef0123456789abc\n')
    const unauth = await runHook('saslgate-helm-test')
    assert.equal(unauth.code, 1)
    assert.match(unauth.stdout, /HTTP 401/)
    for (const r of [ok, bad, unauth])
      assert.doesNotMatch(r.stdout + r.stderr, /helm-Test-pass|not-the-password/)
  })
})
