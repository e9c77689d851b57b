/**
 * A throw-away PKI for tests and benchmarks, made with the `openssl` command: a CA, a server
 * certificate for 127.0.0.1/localhost, client certificates, and a second unrelated CA.
 * Everything lives in one temp dir that `close()` removes.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { SaslgateError } from '../errors.js'

const run = promisify(execFile)

export interface CertFiles {
  cert: string
  key: string
}

export interface TestPki {
  readonly dir: string
  /** CA certificate (PEM) that signed `server` and `issue()`d client certificates. */
  readonly ca: string
  readonly server: CertFiles
  /** A client certificate with the given CN, signed by `ca` (or by `otherCa` when `foreign`). */
  issueClient(cn: string, options?: { foreign?: boolean }): Promise<CertFiles>
  /** An unrelated CA: its certificates must be refused. */
  readonly otherCa: string
  close(): Promise<void>
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd, timeout: 20_000 })
  } catch (err) {
    throw new SaslgateError(
      'SASLGATE_ERR_TEST_REALM',
      `openssl ${args[0]} failed: ${(err as Error).message}`,
    )
  }
}

async function makeCa(dir: string, name: string): Promise<CertFiles> {
  const key = join(dir, `${name}.key`)
  const cert = join(dir, `${name}.pem`)
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  )
  return { cert, key }
}

async function issue(
  dir: string,
  ca: CertFiles,
  name: string,
  cn: string,
  ext: string,
): Promise<CertFiles> {
  const key = join(dir, `${name}.key`)
  const csr = join(dir, `${name}.csr`)
  const cert = join(dir, `${name}.pem`)
  const extFile = join(dir, `${name}.ext`)
  await writeFile(extFile, `${ext}\n`)
  await openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      `/CN=${cn}`,
    ],
    dir,
  )
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-CAcreateserial',
      '-out',
      cert,
      '-days',
      '2',
      '-extfile',
      extFile,
    ],
    dir,
  )
  return { cert, key }
}

export async function startPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'saslgate-pki-'))
  try {
    const ca = await makeCa(dir, 'saslgate-test-ca')
    const other = await makeCa(dir, 'other-ca')
    const server = await issue(
      dir,
      ca,
      'server',
      'saslgate.test',
      'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:saslgate.test\nextendedKeyUsage=serverAuth',
    )
    let n = 0
    return {
      dir,
      ca: ca.cert,
      otherCa: other.cert,
      server,
      issueClient: (cn, options = {}) =>
        issue(
          dir,
          options.foreign ? other : ca,
          `client${++n}`,
          cn,
          `subjectAltName=DNS:${cn}\nextendedKeyUsage=clientAuth`,
        ),
      close: () => rm(dir, { recursive: true, force: true }),
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}
