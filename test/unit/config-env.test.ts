/**
 * The config loader's handling of SASLGATE_* variables it does not know: Kubernetes service
 * links (name and value shapes) are ignored and reported, anything else stops the start naming
 * the variable, with the closest real option for a near miss.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  didYouMean,
  envName,
  hasServiceLinkName,
  isServiceLinkVariable,
  loadConfig,
  options,
} from '../../src/config.js'

const load = (env: Record<string, string>) => {
  let ignored: string[] = []
  const config = loadConfig({
    env,
    onIgnoredEnv: (names) => {
      ignored = names
    },
  })
  return { config, ignored }
}

describe('SASLGATE_* variables that are not options', () => {
  test('no option has an environment name of the service-link shape (a link can never set one)', () => {
    for (const [name] of options())
      assert.ok(!hasServiceLinkName(envName(name)), `${envName(name)} looks like a service link`)
  })

  test('service-link names with service-link values are ignored and reported', () => {
    const links = {
      SASLGATE_SERVICE_HOST: '10.0.0.7',
      SASLGATE_SERVICE_PORT: '8443',
      SASLGATE_SERVICE_PORT_RPC: '8443',
      SASLGATE_PORT: 'tcp://10.0.0.7:8443',
      SASLGATE_PORT_8443_TCP: 'tcp://10.0.0.7:8443',
      SASLGATE_PORT_8443_TCP_PROTO: 'tcp',
      SASLGATE_PORT_8443_TCP_PORT: '8443',
      SASLGATE_PORT_8443_TCP_ADDR: '10.0.0.7',
      SASLGATE_VALKEY_SERVICE_HOST: 'fd00::7',
      SASLGATE_VALKEY_PORT: 'tcp://[fd00::7]:6379',
      SASLGATE_METRICS_PORT_9090_TCP_PROTO: 'tcp',
    }
    const { config, ignored } = load({ ...links, SASLGATE_SERVICE_LISTEN: '0.0.0.0:9443' })
    assert.deepEqual(ignored, Object.keys(links).sort())
    assert.equal(config.service.listen, '0.0.0.0:9443')
    assert.deepEqual(load({ SASLGATE_LOG_LEVEL: 'warn' }).ignored, [], 'nothing to report')
  })

  test('a service-link name with a value Kubernetes never writes is refused', () => {
    for (const [name, value] of [
      ['SASLGATE_SERVICE_PORT', '0.0.0.0:8443'],
      ['SASLGATE_SERVICE_HOST', 'saslgate.example.org'],
      ['SASLGATE_PORT', '8443'],
      ['SASLGATE_PORT_8443_TCP_PROTO', 'http'],
    ] as const) {
      assert.equal(isServiceLinkVariable(name, value), false, `${name}=${value}`)
      assert.throws(
        () => load({ [name]: value }),
        new RegExp(`${name}: unknown environment variable`),
      )
    }
  })

  test('a near miss names the variable and the option it resembles (exit 78 from the CLI)', () => {
    for (const [typo, meant] of [
      ['SASLGATE_SERVICE_LISTN', 'SASLGATE_SERVICE_LISTEN'],
      ['SASLGATE_KERBEROS_KEYTABS', 'SASLGATE_KERBEROS_KEYTAB'],
      ['SASLGATE_KERBEROS_VERIFYPRINCIPAL', 'SASLGATE_KERBEROS_VERIFY_PRINCIPAL'],
    ] as const) {
      assert.throws(
        () => load({ [typo]: 'x' }),
        (err: Error) =>
          (err as { code?: string }).code === 'SASLGATE_ERR_CONFIG' &&
          err.message ===
            `config option ${typo}: unknown environment variable (did you mean ${meant}?)`,
      )
    }
    // far from every option: no suggestion
    assert.throws(
      () => load({ SASLGATE_FROBNICATE: '1' }),
      /SASLGATE_FROBNICATE: unknown environment variable$/,
    )
  })

  test('--set and config files suggest too', () => {
    assert.throws(
      () => loadConfig({ settings: { 'pipeline.deadlinMs': '100' } }),
      /pipeline\.deadlinMs: unknown option \(did you mean pipeline\.deadlineMs\?\)/,
    )
    assert.equal(didYouMean('kerberos', ['kerberos', 'realm']), ' (did you mean kerberos?)')
    assert.equal(didYouMean('zzz', ['kerberos', 'realm']), '')
  })
})
