/**
 * The container image without a Docker engine: the Dockerfile is parsed and checked against the
 * project (the build runs the project's own `npm ci` + `npm run build`, the runtime stage is
 * Node 24 slim with libkrb5's runtime libraries only, non-root, with a health check), and the
 * runtime file list is assembled in a temp dir exactly as the runtime stage copies it (dist/,
 * the addon, production node_modules only, bin/, package.json) and run there.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { envName, options } from '../../src/config.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const ADDON = 'native/build/Release/saslgate_krb5.node'
/** The packages the runtime stage installs, and what they and the Node image bring along. */
const RUNTIME_PACKAGES = ['libkrb5-3', 'libgssapi-krb5-2']
const RUNTIME_CLOSURE = new Set([
  ...RUNTIME_PACKAGES,
  // Depends of libkrb5-3 and libgssapi-krb5-2 (Debian 12)
  'libk5crypto3',
  'libkrb5support0',
  'libcom-err2',
  'libkeyutils1',
  'libssl3',
  // in every node:*-slim image (node itself links them)
  'libc6',
  'libstdc++6',
  'libgcc-s1',
])

interface Instruction {
  stage: string
  cmd: string
  args: string
}

/** Instructions with their stage; continuation lines joined, comments dropped. */
function parseDockerfile(text: string): { args: Map<string, string>; instructions: Instruction[] } {
  const logical: string[] = []
  let current = ''
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw) && current === '') continue
    const line = raw.replace(/\s+$/, '')
    if (line.endsWith('\\')) current += `${line.slice(0, -1)} `
    else {
      current += line
      if (current.trim() !== '') logical.push(current.trim())
      current = ''
    }
  }
  const args = new Map<string, string>()
  const instructions: Instruction[] = []
  let stage = ''
  for (const line of logical) {
    const m = line.match(/^(\w+)\s+(.*)$/s)
    assert.ok(m !== null, `unparsable line: ${line}`)
    const cmd = m[1]!.toUpperCase()
    const rest = m[2]!
    if (cmd === 'ARG' && stage === '') {
      const [k, v] = rest.split('=') as [string, string | undefined]
      args.set(k, v ?? '')
    }
    if (cmd === 'FROM') {
      const f = rest.match(/^(\S+)\s+AS\s+(\S+)$/i)
      assert.ok(f !== null, `every stage is named: FROM ${rest}`)
      stage = f[2]!
    }
    instructions.push({ stage, cmd, args: rest })
  }
  return { args, instructions }
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'))
const of = (stage: string, cmd: string) =>
  dockerfile.instructions.filter((i) => i.stage === stage && i.cmd === cmd)
const fromOf = (stage: string) => of(stage, 'FROM')[0]!.args.split(/\s+/)[0]!

describe('Dockerfile', () => {
  test('stages: toolchain -> build and prod-deps -> runtime, Node 24 slim', () => {
    const stages = dockerfile.instructions.filter((i) => i.cmd === 'FROM').map((i) => i.stage)
    assert.deepEqual(stages, ['toolchain', 'build', 'prod-deps', 'runtime'])
    const image = dockerfile.args.get('NODE_IMAGE')
    assert.match(image ?? '', /^node:24(\.\d+)*(-[a-z]+)?-slim$/)
    const nodeImage = '$' + '{NODE_IMAGE}'
    assert.equal(fromOf('toolchain'), nodeImage)
    assert.equal(fromOf('runtime'), nodeImage)
    assert.equal(fromOf('build'), 'toolchain')
    assert.equal(fromOf('prod-deps'), 'toolchain')
  })

  test("the build stage runs the project's npm ci and npm run build", () => {
    const runs = of('build', 'RUN').map((i) => i.args)
    assert.ok(
      runs.some((r) => /^npm ci( |$)/.test(r) && !r.includes('--omit')),
      runs.join('; '),
    )
    assert.ok(runs.includes('npm run build'), runs.join('; '))
    assert.match(pkg.scripts.build, /build:native/)
    assert.match(pkg.scripts.build, /build:ts/)
    // the same install command as scripts/setup.sh
    const setup = readFileSync(join(ROOT, 'scripts/setup.sh'), 'utf8')
    const npmCi = runs.find((r) => r.startsWith('npm ci'))!
    for (const flag of npmCi.split(/\s+/).slice(2)) assert.ok(setup.includes(flag), flag)
    // what `npm run build` reads is copied in before it
    const copies = of('build', 'COPY').map((i) => i.args)
    for (const needed of ['tsconfig.json', 'tsconfig.build.json', 'native', 'src'])
      assert.ok(
        copies.some((c) => c.split(/\s+/).includes(needed)),
        `build stage copies ${needed}`,
      )
    const toolchain = of('toolchain', 'RUN')
      .map((i) => i.args)
      .join(' ')
    for (const p of ['libkrb5-dev', 'g++', 'make', 'python3']) assert.ok(toolchain.includes(p), p)
    assert.ok(of('toolchain', 'COPY').some((c) => /package\.json package-lock\.json/.test(c.args)))
  })

  test('the prod-deps stage installs production dependencies only', () => {
    const runs = of('prod-deps', 'RUN').map((i) => i.args)
    assert.ok(
      runs.some((r) => /^npm ci .*--omit=dev/.test(r)),
      runs.join('; '),
    )
  })

  test('the runtime stage installs only libkrb5 runtime packages', () => {
    const runs = of('runtime', 'RUN').map((i) => i.args)
    const installs = runs.flatMap((r) =>
      [...r.matchAll(/apt-get install ([^&|;]+)/g)].flatMap((m) =>
        m[1]!.split(/\s+/).filter((w) => w !== '' && !w.startsWith('-')),
      ),
    )
    assert.deepEqual(installs.sort(), [...RUNTIME_PACKAGES].sort())
    assert.ok(runs.some((r) => r.includes('--no-install-recommends')))
    assert.ok(runs.some((r) => r.includes('rm -rf /var/lib/apt/lists')))
  })

  test('the runtime copies what bin/saslgate.js needs and nothing from the build context but bin/ and package.json', () => {
    const copies = of('runtime', 'COPY').map((i) => i.args.split(/\s+/))
    const from = (stage: string, src: string) =>
      copies.some((c) => c[0] === `--from=${stage}` && c[1] === src)
    assert.ok(from('prod-deps', '/src/node_modules'), 'node_modules from prod-deps')
    assert.ok(from('build', '/src/dist'), 'dist from build')
    assert.ok(from('build', `/src/${ADDON}`), 'the addon from build')
    const context = copies.filter((c) => !c[0]!.startsWith('--from')).map((c) => c[0])
    assert.deepEqual(context.sort(), ['bin', 'package.json'])
    // bin/saslgate.js runs dist/cli.js when present; the addon is found from dist/kerberos/
    const bin = readFileSync(join(ROOT, 'bin/saslgate.js'), 'utf8')
    assert.match(bin, /\.\.\/dist\/cli\.js/)
    const native = readFileSync(join(ROOT, 'src/kerberos/native.ts'), 'utf8')
    assert.ok(native.includes(`'../../${ADDON}'`), 'native.ts looks for the addon at ../../native')
    assert.equal(pkg.type, 'module', 'package.json makes dist/*.js ES modules')
    // the build writes dist/ from src/
    const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8'))
    assert.equal(build.compilerOptions.outDir, 'dist')
    assert.equal(build.compilerOptions.rootDir, 'src')
  })

  test('non-root user, health check on the admin port, node as the entry point', () => {
    const users = of('runtime', 'USER').map((i) => i.args)
    assert.equal(users.length, 1)
    const [uid, gid] = users[0]!.split(':')
    assert.ok(
      /^\d+$/.test(uid!) && Number(uid) > 0,
      'numeric non-root uid (runAsNonRoot can check it)',
    )
    assert.ok(gid === undefined || Number(gid) > 0)
    const health = of('runtime', 'HEALTHCHECK').map((i) => i.args)
    assert.equal(health.length, 1)
    assert.match(health[0]!, /CMD \[.*\/healthz/)
    const env = of('runtime', 'ENV')
      .map((i) => i.args)
      .join(' ')
    const admin = env.match(/SASLGATE_SERVICE_ADMIN_LISTEN=\S+:(\d+)/)
    assert.ok(admin !== null, 'the image turns the admin port on')
    assert.ok(health[0]!.includes(`127.0.0.1:${admin[1]}/healthz`), 'health check on that port')
    const known = new Set(options().map(([name]) => envName(name)))
    for (const m of env.matchAll(/(SASLGATE_\w+)=/g))
      assert.ok(known.has(m[1]!), `${m[1]} is not a saslgate option (saslgate would exit 78)`)
    const entry = of('runtime', 'ENTRYPOINT').map((i) => JSON.parse(i.args))
    assert.deepEqual(entry, [['node', '/app/bin/saslgate.js']])
  })

  test('.dockerignore keeps build outputs out and what the build copies in', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
    for (const p of ['node_modules', 'dist', 'native/build', '.git'])
      assert.ok(ignored.includes(p), p)
    const copied = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']
    for (const p of [...copied, 'src', 'native', 'bin']) assert.ok(!ignored.includes(p), p)
  })

  test('the native libraries need nothing outside libkrb5 runtime packages and the Node image', () => {
    for (const file of [ADDON, 'node_modules/kerberos/build/Release/kerberos.node']) {
      assert.ok(existsSync(join(ROOT, file)), `${file} is built (scripts/setup.sh)`)
      // linked libraries, and the ones the kerberos package dlopen()s
      const ldd = execFileSync('ldd', [join(ROOT, file)], { encoding: 'utf8' })
      const linked = [...ldd.matchAll(/=> (\/\S+)/g)].map((m) => m[1]!)
      const strings = readFileSync(join(ROOT, file)).toString('latin1')
      const sonames = [...new Set(strings.match(/lib[\w+-]+\.so\.\d+/g) ?? [])]
      const cache = execFileSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' })
      const opened = sonames
        .map(
          (s) =>
            cache.match(new RegExp(`\\s${s.replace(/[.+]/g, '\\$&')} \\(.*\\) => (\\S+)`))?.[1],
        )
        .filter((p): p is string => p !== undefined)
      // one dpkg call: the package of each library (by its path or the file it links to)
      const libs = [...new Set([...linked, ...opened])]
      const paths = [...new Set(libs.flatMap((l) => [l, realpathSync(l)]))]
      const owners = spawnSync('dpkg', ['-S', ...paths], { encoding: 'utf8' }).stdout
      const ownerOf = new Map<string, string>()
      for (const line of owners.split('\n')) {
        const m = line.match(/^([^:]+)(?::\w+)?: (.+)$/)
        if (m !== null) ownerOf.set(m[2]!, m[1]!)
      }
      for (const lib of libs) {
        const name = ownerOf.get(lib) ?? ownerOf.get(realpathSync(lib)) ?? '?'
        assert.ok(RUNTIME_CLOSURE.has(name), `${file} needs ${lib} from package ${name}`)
      }
    }
  })
})

describe('the runtime file list, assembled and run', () => {
  let app: string

  before(() => {
    app = mkdtempSync(join(tmpdir(), 'saslgate-image-'))
    // dist/ as `npm run build:ts` writes it (type errors are the typecheck's business)
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
    const build = spawnSync(
      process.execPath,
      [
        tsc,
        '-p',
        join(ROOT, 'tsconfig.build.json'),
        '--outDir',
        join(app, 'dist'),
        '--noCheck',
        '--declaration',
        'false',
        '--sourceMap',
        'false',
      ],
      { encoding: 'utf8', timeout: 120_000 },
    )
    assert.equal(build.status, 0, build.stdout + build.stderr)
    mkdirSync(join(app, dirname(ADDON)), { recursive: true })
    execFileSync('cp', [join(ROOT, ADDON), join(app, ADDON)])
    execFileSync('cp', ['-r', join(ROOT, 'bin'), join(ROOT, 'package.json'), app])
    // node_modules as `npm ci --omit=dev` leaves it: the lockfile's non-dev packages
    const byDir = new Map<string, string[]>()
    for (const [path, meta] of Object.entries(lock.packages as Record<string, { dev?: boolean }>)) {
      if (path === '' || meta.dev === true || path.lastIndexOf('node_modules/') !== 0) continue
      const dir = join(app, dirname(path))
      byDir.set(dir, [...(byDir.get(dir) ?? []), join(ROOT, path)])
    }
    for (const [dir, sources] of byDir) {
      mkdirSync(dir, { recursive: true })
      // hard links when /tmp shares the file system, else a copy
      const r = spawnSync('cp', ['-al', ...sources, dir])
      if (r.status !== 0) execFileSync('cp', ['-a', ...sources, dir])
    }
  })

  after(() => {
    if (app !== undefined) rmSync(app, { recursive: true, force: true })
  })

  function run(args: string[]) {
    return spawnSync(process.execPath, args, {
      cwd: app,
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env.PATH, NODE_ENV: 'production' },
    })
  }

  test('no development package is in the production node_modules', () => {
    for (const dev of ['typescript', 'tsx', '@biomejs', 'node-gyp', 'fast-check'])
      assert.ok(!existsSync(join(app, 'node_modules', dev)), dev)
    assert.ok(existsSync(join(app, 'node_modules/kerberos')), 'kerberos is a production dependency')
  })

  test('bin/saslgate.js runs from dist/ (no tsx) and lists the options', () => {
    const r = run(['bin/saslgate.js', 'options'])
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /\| `service\.listen` \|/)
  })

  test('every runtime module loads with production dependencies only, the addon included', () => {
    const skip = new Set(['cli.js'])
    const modules: string[] = []
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name)
        if (e.isDirectory()) walk(p)
        else if (e.name.endsWith('.js') && !skip.has(relative(join(app, 'dist'), p)))
          modules.push(p)
      }
    }
    walk(join(app, 'dist'))
    assert.ok(modules.length > 20, `${modules.length} modules`)
    const script = `
      for (const m of ${JSON.stringify(modules)}) await import(m)
      const { krb5 } = await import('./dist/kerberos/native.js')
      if (typeof krb5().codes.KRB5KDC_ERR_PREAUTH_FAILED !== 'number') throw new Error('addon')
      await import('kerberos')
      console.log('loaded ' + ${modules.length})`
    const r = run(['--input-type=module', '-e', script])
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /loaded \d+/)
  })
})
