/**
 * `saslgate` command line. Signal handling and exit codes live here and nowhere else.
 *
 *   saslgate verify --principal USER[@REALM]     password on stdin; exit 0 ok, 1 invalid, 2 unavailable,
 *                                                 78 configuration (keytab, verify principal, options)
 *   saslgate serve --listen HOST:PORT --token-file F [--tls-cert F --tls-key F --client-ca F]
 *                                                 the RPC service (Kubernetes, N replicas)
 *   saslgate serve --saslauthd-socket PATH        single-host mode: the saslauthd drop-in
 *   saslgate shim --socket PATH --upstream URL[,URL...] --token-file F [--ca F --tls-cert F --tls-key F]
 *                                                 the saslauthd socket on a front-end, asking the service
 *   saslgate demo                                 a throw-away realm, a storm, a summary
 *   saslgate options                              every option with its default (markdown)
 *   saslgate principal-hash LOGIN...              the h:... label logs carry for a user
 *   saslgate --version                            the version from package.json, and Node's
 *
 * Common flags: --config FILE (YAML/JSON), --set section.key=value (repeatable).
 */
import { parseArgs } from 'node:util'
import { type Config, envName, loadConfig, options } from './config.js'
import { isSaslgateError } from './errors.js'
import { createLogger } from './logging.js'

const USAGE = `usage: saslgate <command> [options]

commands:
  verify --principal USER[@REALM]   check a password read from stdin (never from argv);
                                     exit 0 ok, 1 invalid, 2 unavailable, 78 configuration
  serve --listen HOST:PORT --token-file FILE [--tls-cert F --tls-key F --client-ca F]
                                    the RPC service; callers authenticate by token, client
                                    certificate or Negotiate (see the config options)
  serve --saslauthd-socket PATH     answer the saslauthd socket (single-host mode)
  shim --socket PATH --upstream URL[,URL...] --token-file FILE [--ca F --tls-cert F --tls-key F]
                                    answer the saslauthd socket by asking the service
  demo                              throw-away realm + saslgate + a login storm + a summary
  options                           list every option with its default
  principal-hash LOGIN...           the h:... label logs and traces carry for each login
                                     (needs telemetry.principalKeyFile, the logs' key)
  --version                         print the version (and the Node.js runtime's)

common options:
  --config FILE                     YAML or JSON config file
  --set section.key=value           set one option (repeatable); see \`saslgate options\`
  -h, --help
`

/**
 * Exit codes. The systemd units' RestartPreventExitStatus lists usage, socketInUse (and
 * socketPath, the same 73) and config: a restart cannot fix any of them.
 */
const EXIT = {
  ok: 0,
  invalid: 1,
  unavailable: 2,
  usage: 64, // EX_USAGE
  software: 70, // EX_SOFTWARE: an internal error
  socketInUse: 73, // EX_CANTCREAT: another live process answers on the saslauthd socket
  socketPath: 73, // EX_CANTCREAT: the socket cannot be created there (directory, permissions)
  config: 78, // EX_CONFIG: options, krb5.conf, keytab, verify principal
} as const

function fail(message: string, code: number = EXIT.usage): never {
  process.stderr.write(`saslgate: ${message}\n`)
  process.exit(code)
}

function settingsFrom(sets: string[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const s of sets ?? []) {
    const eq = s.indexOf('=')
    if (eq <= 0) fail(`--set expects section.key=value, got "${s}"`)
    out[s.slice(0, eq)] = s.slice(eq + 1)
  }
  return out
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer)
    size += (chunk as Buffer).length
    if (size > 4096) fail('the password on stdin is longer than 4096 bytes')
  }
  let buf = Buffer.concat(chunks)
  // One trailing newline (echo, here-strings) is not part of the password.
  if (buf.at(-1) === 0x0a) buf = buf.subarray(0, buf.at(-2) === 0x0d ? -2 : -1)
  return buf
}

async function cmdVerify(config: Config, principalArg: string | undefined): Promise<number> {
  if (principalArg === undefined) fail('verify needs --principal USER[@REALM]')
  const { resolveKerberosSettings, createVerifier, checkKeytabAtStart } = await import(
    './kerberos/setup.js'
  )
  const { mapperFromConfig } = await import('./authenticate-local.js')
  const settings = await resolveKerberosSettings(config, process.env)
  // A keytab this process cannot use is a configuration failure (exit 78), never "invalid".
  await checkKeytabAtStart(config, settings)
  const mapper = mapperFromConfig(config, settings.defaultRealm)
  const at = principalArg.lastIndexOf('@')
  const mapped =
    at > 0
      ? mapper.map(principalArg.slice(0, at), principalArg.slice(at + 1))
      : mapper.map(principalArg, '')
  const password = await readStdin()
  const verifier = createVerifier(config, settings)
  const started = performance.now()
  try {
    const result = mapped.ok
      ? await verifier.verify(
          mapped.principal,
          password,
          AbortSignal.timeout(config.pipeline.deadlineMs),
          // One operator check, no guard: the retry on the primary has no budget to ask.
          { reserveRetry: async () => true },
        )
      : { reason: mapped.reason, roundTrips: 0 }
    const { Reasons } = await import('./errors.js')
    const decision = Reasons[result.reason].decision
    const ms = (performance.now() - started).toFixed(1)
    const who = mapped.ok ? mapped.principal : principalArg
    process.stdout.write(
      `${decision} (${result.reason}) ${who} in ${ms} ms, ${result.roundTrips} KDC round trips${'retriedOnPrimary' in result && result.retriedOnPrimary ? ' (retried on the primary KDC)' : ''}\n`,
    )
    if (result.reason === 'verify_principal_unknown') {
      const vp = settings.verifyPrincipal(mapped.ok ? mapped.realm : settings.defaultRealm)
      process.stderr.write(
        `saslgate: configuration: the KDC does not know the verify principal ${vp} (S_PRINCIPAL_UNKNOWN): ` +
          `create it (kadmin addprinc -randkey ${vp}) and export its keys into ${settings.keytab}, or set kerberos.verifyPrincipal\n`,
      )
      return EXIT.config
    }
    const clock =
      result.reason === 'verify_failed' ? await clockFailure(result.krb5Code) : undefined
    if (clock !== undefined) {
      // The ticket is checked on this host's clock (not the KDC's): a clock behind by more
      // than libkrb5's clockskew (300 s) sees it "not yet valid", one ahead by more than the
      // ticket's lifetime plus the skew sees it expired. Every right password fails so.
      process.stderr.write(
        `saslgate: configuration: the ticket for ${settings.verifyPrincipal(mapped.ok ? mapped.realm : settings.defaultRealm)} ` +
          `is ${clock} on this host's clock (krb5 error ${result.krb5Code}): ` +
          "this host's clock and the KDC's differ by more than libkrb5's clockskew (300 s) allows; fix time sync (NTP, chrony) here or on the KDC\n",
      )
      return EXIT.config
    }
    if (result.reason === 'verify_failed') {
      // The KDC took the password, but its ticket did not decrypt with our keytab: almost
      // always a stale keytab (the principal was rekeyed), else a KDC that is not the realm's.
      process.stderr.write(
        `saslgate: configuration: the ticket for ${settings.verifyPrincipal(mapped.ok ? mapped.realm : settings.defaultRealm)} ` +
          `did not verify against the keytab ${settings.keytab}${result.krb5Code !== undefined ? ` (krb5 error ${result.krb5Code})` : ''}: ` +
          "export the current key again (its kvno changed), or check that the KDCs are the realm's own\n",
      )
      return EXIT.config
    }
    return decision === 'ok' ? EXIT.ok : decision === 'invalid' ? EXIT.invalid : EXIT.unavailable
  } finally {
    password.fill(0)
    await verifier.close()
  }
}

/** One line per login: `LABEL PRINCIPAL`, or `- LOGIN refused (REASON)` when it does not map. */
async function cmdPrincipalHash(config: Config, logins: readonly string[]): Promise<number> {
  if (logins.length === 0) fail('principal-hash needs one or more logins (alice, alice@REALM)')
  const { principalHashes } = await import('./commands/principal-hash.js')
  const lines = await principalHashes(config, logins)
  if (config.telemetry.principals !== 'hash')
    process.stderr.write(
      `saslgate: note: telemetry.principals is ${config.telemetry.principals}, so the logs do not carry these labels\n`,
    )
  let refused = 0
  for (const l of lines) {
    if (l.label !== undefined) process.stdout.write(`${l.label} ${l.principal}\n`)
    else {
      refused++
      process.stdout.write(`- ${l.login} refused before mapping (${l.refused})\n`)
    }
  }
  return refused === 0 ? EXIT.ok : EXIT.invalid
}

/** Which clock failure a libkrb5 code of the ticket check is, if any. */
async function clockFailure(code: number | undefined): Promise<string | undefined> {
  if (code === undefined) return undefined
  const { krb5 } = await import('./kerberos/native.js')
  const c = krb5().codes
  if (code === c.KRB5KRB_AP_ERR_TKT_NYV) return 'not yet valid'
  if (code === c.KRB5KRB_AP_ERR_TKT_EXPIRED) return 'expired'
  if (code === c.KRB5KRB_AP_ERR_SKEW) return 'outside the clock skew'
  return undefined
}

function cmdOptions(): number {
  const lines = ['| option | environment | default | meaning |', '|---|---|---|---|']
  for (const [name, leaf] of options()) {
    const def = JSON.stringify(leaf.default)
    lines.push(`| \`${name}\` | \`${envName(name)}\` | \`${def}\` | ${leaf.doc} |`)
  }
  process.stdout.write(`${lines.join('\n')}\n`)
  return 0
}

async function startTelemetryFor(serviceName: string) {
  const { startTelemetry } = await import('./telemetry/sdk.js')
  return startTelemetry({ serviceName })
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE)
    return command === undefined ? 64 : 0
  }
  if (command === '--version' || command === 'version') {
    // package.json sits next to dist/ and src/ alike (the .deb ships it: it also says "type": "module").
    const { readFileSync } = await import('node:fs')
    const { version } = JSON.parse(
      readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
    )
    process.stdout.write(`saslgate ${version} (node ${process.version})\n`)
    return 0
  }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: rest,
      options: {
        config: { type: 'string' },
        set: { type: 'string', multiple: true },
        principal: { type: 'string' },
        'saslauthd-socket': { type: 'string' },
        socket: { type: 'string' },
        listen: { type: 'string' },
        upstream: { type: 'string', multiple: true },
        'token-file': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'client-ca': { type: 'string' },
        ca: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        json: { type: 'string' },
        quick: { type: 'boolean' },
        'no-saslauthd': { type: 'boolean' },
        out: { type: 'string' },
      },
      strict: true,
      // Only principal-hash takes positionals (checked below).
      allowPositionals: command === 'principal-hash',
    })
  } catch (err) {
    fail(`${(err as Error).message}\n\n${USAGE}`)
  }
  const v = parsed.values as Record<string, unknown>
  if (v.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  const settings = settingsFrom(v.set as string[] | undefined)
  if (typeof v['saslauthd-socket'] === 'string')
    settings['saslauthd.socket'] = v['saslauthd-socket']
  // Role-specific flags: the same flag names the service's or the shim's option.
  const role = command === 'shim' ? 'shim' : 'service'
  const flag = (name: string, option: string, roles: readonly string[] = [command ?? '']) => {
    if (typeof v[name] !== 'string') return
    if (!roles.includes(command ?? '')) fail(`--${name} is not an option of "${command}"`)
    settings[option] = v[name]
  }
  flag('socket', 'saslauthd.socket', ['shim', 'serve'])
  flag('listen', 'service.listen', ['serve'])
  flag('token-file', `${role}.tokenFile`, ['serve', 'shim'])
  flag('tls-cert', `${role}.tlsCert`, ['serve', 'shim'])
  flag('tls-key', `${role}.tlsKey`, ['serve', 'shim'])
  flag('client-ca', 'service.clientCa', ['serve'])
  flag('ca', 'shim.ca', ['shim'])
  if (Array.isArray(v.upstream)) {
    if (command !== 'shim') fail(`--upstream is not an option of "${command}"`)
    settings['shim.upstreams'] = (v.upstream as string[])
      .flatMap((u) => u.split(','))
      .map((u) => u.trim())
      .filter((u) => u !== '')
  }
  const load = () => {
    let ignored: string[] = []
    const config = loadConfig({
      file: v.config as string | undefined,
      env: process.env,
      settings,
      onIgnoredEnv: (names) => {
        ignored = names
      },
    })
    // Said once at start, never an error: a Service named saslgate* in the namespace is normal.
    if (ignored.length > 0)
      createLogger(config.log.level, command ?? 'saslgate').info(
        { variables: ignored },
        'ignoring Kubernetes service-link variables (they are not saslgate options)',
      )
    return config
  }
  switch (command) {
    case 'verify':
      return cmdVerify(load(), v.principal as string | undefined)
    case 'serve': {
      const config = load()
      // OpenTelemetry starts before the app is imported (configured by OTEL_* only).
      const telemetry = await startTelemetryFor('saslgate-service')
      const { serve } = await import('./commands/serve.js')
      // RPC when asked for (--listen) or when there is nothing else to serve.
      const rpc = typeof v.listen === 'string' || config.saslauthd.socket === ''
      return serve(config, { rpc }, telemetry)
    }
    case 'shim': {
      const config = load()
      const telemetry = await startTelemetryFor('saslgate-shim')
      const { shim } = await import('./commands/shim.js')
      return shim(config, telemetry)
    }
    case 'demo': {
      const { demo } = await import('./commands/demo.js')
      return demo({
        quick: v.quick === true,
        withSaslauthd: v['no-saslauthd'] !== true,
        out: v.out as string | undefined,
      })
    }
    case 'options':
      return cmdOptions()
    case 'principal-hash':
      return cmdPrincipalHash(load(), parsed.positionals)
    default:
      fail(`unknown command "${command}"\n\n${USAGE}`)
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
    // Everything was closed; an exporter still waiting on a missing collector must not keep
    // a stopping service alive (systemd and Kubernetes wait for the exit).
    setTimeout(() => process.exit(code), 2000).unref()
  },
  (err: unknown) => {
    if (isSaslgateError(err, 'SASLGATE_ERR_CONFIG') || isSaslgateError(err, 'SASLGATE_ERR_KEYTAB'))
      fail(err.message, EXIT.config)
    if (isSaslgateError(err, 'SASLGATE_ERR_SOCKET_IN_USE')) fail(err.message, EXIT.socketInUse)
    // The message says why (errno, what to do); a restart cannot fix a missing directory.
    if (isSaslgateError(err, 'SASLGATE_ERR_SOCKET_PATH')) fail(err.message, EXIT.socketPath)
    process.stderr.write(
      `saslgate: ${isSaslgateError(err) ? `${err.code}: ${err.message}` : String((err as Error)?.stack ?? err)}\n`,
    )
    process.exitCode = EXIT.software
  },
)
