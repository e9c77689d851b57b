/**
 * Negotiate on the shim: one SPNEGO exchange (`POST /v1/session`, the front-end's host
 * keytab) earns a session token that every RPC then carries as a bearer token. The token
 * is renewed in the background before it expires and dropped when a replica refuses it.
 * Any replica accepts it (its key derives from the keytab all replicas share).
 */
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { SaslgateError } from '../errors.js'
import { SESSION_PATH } from '../service/negotiate-route.js'
import type { TlsClientMaterial } from './endpoint-client.js'
import { NegotiateInitiator } from './negotiate-initiator.js'
import type { CallerCredentials } from './remote-authenticator.js'

/** Renew when this share of the lifetime is left. */
const RENEW_AT = 0.2
const FETCH_TIMEOUT_MS = 3000

interface Session {
  header: string
  expiresAt: number
}

export interface SessionCredentials extends CallerCredentials {
  close(): Promise<void>
}

export function sessionCredentials(
  config: Config,
  tls: TlsClientMaterial,
  logger: Logger,
): SessionCredentials {
  const c = config.shim
  // A private in-memory ccache: never the service user's default /tmp/krb5cc_<uid>, and
  // never a stale ticket from it. The shim's krb5.conf should say
  // `dns_canonicalize_hostname = false` (else one DNS look-up per token).
  const initiator = new NegotiateInitiator({
    service: c.negotiateService,
    timeoutMs: FETCH_TIMEOUT_MS,
    ccache: 'MEMORY:saslgate-shim',
    ...(c.clientKeytab !== '' ? { clientKeytab: c.clientKeytab } : {}),
  })
  let session: Session | undefined
  let fetching: Promise<Session> | undefined
  let renewTimer: NodeJS.Timeout | undefined
  let closed = false
  let next = 0

  const fetchSession = async (): Promise<Session> => {
    const token = await initiator.token()
    let lastErr: unknown
    // Any replica will do; walk the list until one answers.
    for (let i = 0; i < c.upstreams.length; i++) {
      const url = new URL(SESSION_PATH, c.upstreams[(next + i) % c.upstreams.length])
      try {
        const body = await post(url, `Negotiate ${token}`, tls)
        next = (next + i + 1) % c.upstreams.length
        const parsed = JSON.parse(body) as { token?: unknown; expiresInMs?: unknown }
        if (typeof parsed.token !== 'string' || typeof parsed.expiresInMs !== 'number')
          throw new Error('malformed session reply')
        return { header: `Bearer ${parsed.token}`, expiresAt: Date.now() + parsed.expiresInMs }
      } catch (err) {
        lastErr = err
      }
    }
    throw lastErr ?? new Error('no upstream')
  }

  const refresh = (): Promise<Session> => {
    fetching ??= fetchSession()
      .then((s) => {
        session = s
        scheduleRenew(s)
        logger.info({ expiresInMs: s.expiresAt - Date.now() }, 'Negotiate session established')
        return s
      })
      .catch((err) => {
        logger.error({ err: String((err as Error)?.message ?? err) }, 'Negotiate session failed')
        throw new SaslgateError('SASLGATE_ERR_NEGOTIATE', 'no Negotiate session with the service', {
          cause: err,
        })
      })
      .finally(() => {
        fetching = undefined
      })
    return fetching
  }

  const scheduleRenew = (s: Session) => {
    clearTimeout(renewTimer)
    if (closed) return
    const life = s.expiresAt - Date.now()
    renewTimer = setTimeout(
      () => refresh().catch(() => {}),
      Math.max(1000, life * (1 - RENEW_AT)),
    ).unref()
  }

  return {
    async authorization(signal: AbortSignal) {
      const s = session
      if (s !== undefined && s.expiresAt - Date.now() > 1000) return s.header
      const fresh = await Promise.race([
        refresh(),
        new Promise<never>((_, reject) => {
          if (signal.aborted) reject(signal.reason)
          signal.addEventListener('abort', () => reject(signal.reason), { once: true })
        }),
      ])
      return fresh.header
    },
    rejected() {
      session = undefined
    },
    async close() {
      closed = true
      clearTimeout(renewTimer)
      await initiator.close()
    },
  }
}

function post(url: URL, authorization: string, tls: TlsClientMaterial): Promise<string> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:'
    const req = (secure ? httpsRequest : httpRequest)(
      url,
      {
        method: 'POST',
        headers: { authorization, 'content-length': '0' },
        timeout: FETCH_TIMEOUT_MS,
        ...(secure ? { ...tls, minVersion: 'TLSv1.2' as const } : {}),
      },
      (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (d: Buffer) => {
          size += d.length
          if (size > 16_384) req.destroy(new Error('session reply too large'))
          else chunks.push(d)
        })
        res.on('end', () => {
          if (res.statusCode === 200) resolve(Buffer.concat(chunks).toString('utf8'))
          else reject(new Error(`session request answered HTTP ${res.statusCode}`))
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error('session request timed out')))
    req.on('error', reject)
    req.end()
  })
}
