/**
 * What the retry on the primary KDC costs a check on loopback: the new password through a
 * replica that still has the old one and the retry on the primary, against the same password
 * checked on the primary alone. Real MIT KDCs (src/testing/realm.ts), sequential checks; CPU
 * is this process's (event loop and libuv pool: PBKDF2, libkrb5), the KDCs' excluded.
 *
 *   node --import tsx bench/primary-retry.ts [checks per case, default 200]
 */
import { performance } from 'node:perf_hooks'
import { krb5 } from '../src/kerberos/native.js'
import { KdcClient } from '../src/kerberos/transport.js'
import { KerberosVerifier } from '../src/kerberos/verifier.js'
import { startRealm, startRogueKdc } from '../src/testing/realm.js'

const N = Number(process.argv[2] ?? 200)
const NEW = 'Carol-new-pw-2'

const primary = await startRealm({ users: [{ name: 'carol', password: NEW }] })
const replica = await startRogueKdc(primary.name, [{ name: 'carol', password: 'Carol-old-pw-1' }])
try {
  krb5().configure(primary.krb5ConfPath)
  const p = `127.0.0.1:${primary.kdcs[0]!.port}`
  const r = `127.0.0.1:${replica.kdcs[0]!.port}`
  const verifier = (kdcs: string[]) =>
    new KerberosVerifier({
      transport: new KdcClient({
        realms: { [primary.name]: kdcs },
        primaries: { [primary.name]: [p] },
      }),
      verifyPrincipal: () => primary.servicePrincipal,
      keytab: primary.keytabPath,
      retryOnPrimary: true,
    })
  const cases = {
    'primary only': verifier([p]),
    'replica, then retry on primary': verifier([r, p]),
  }
  for (const [name, v] of Object.entries(cases)) {
    const ms: number[] = []
    let trips = 0
    let cpu: NodeJS.CpuUsage | undefined
    for (let i = 0; i < N + 10; i++) {
      const t0 = performance.now()
      const res = await v.verify(
        primary.principal('carol'),
        Buffer.from(NEW),
        AbortSignal.timeout(3000),
        {
          reserveRetry: async () => true,
        },
      )
      if (res.reason !== 'ok') throw new Error(`${name}: ${res.reason}`)
      if (i === 9) cpu = process.cpuUsage()
      if (i >= 10) {
        ms.push(performance.now() - t0)
        trips += res.roundTrips
      }
    }
    const used = process.cpuUsage(cpu)
    const cpuMs = ((used.user + used.system) / 1000 / N).toFixed(2)
    ms.sort((a, b) => a - b)
    const q = (f: number) => ms[Math.floor(f * (ms.length - 1))]!.toFixed(2)
    console.log(
      `${name}: median ${q(0.5)} ms, p90 ${q(0.9)} ms, round trips ${trips / N}, CPU ${cpuMs} ms/check (n=${N})`,
    )
    await v.close()
  }
} finally {
  await replica.close()
  await primary.close()
}
