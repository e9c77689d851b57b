/**
 * A saslauthd client that behaves like libsasl2's `checkpw.c`: one request per connection
 * (connect, write the frame, read the reply until its length or EOF, close), plus the client-side
 * give-up timeout that libsasl2 lacks and imapd effectively has (default 5 s).
 *
 * Plain async code, no test-framework imports: the demo and the load worker use it.
 */
import { connect, type Socket } from 'node:net'
import { decodeReply, encodeRequest } from '../saslauthd/codec.js'

/** Longest pause between connect attempts while the server's listen backlog is full. */
const CONNECT_RETRY_MAX_MS = 8

export const DEFAULT_SASLAUTHD_CLIENT_OPTIONS = {
  /** Give up (and close the connection) after this long without a whole reply. */
  timeoutMs: 5_000,
  service: 'imap',
  realm: '',
}

export interface SaslauthdClientOptions {
  timeoutMs?: number
  service?: string
  realm?: string
}

export interface SaslauthdCheckResult {
  /** True only for a whole reply starting with `OK`. */
  ok: boolean
  /** The reply text (`OK`, `NO ...`), empty when none arrived. */
  reply: string
  latencyMs: number
  timedOut: boolean
  /** Connection error code or reply decoding problem; never contains the password. */
  error?: string
}

/** Sends one check over a new connection to `socketPath`. Never rejects. */
export function saslauthdCheck(
  socketPath: string,
  login: string,
  password: string,
  options: SaslauthdClientOptions = {},
): Promise<SaslauthdCheckResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_SASLAUTHD_CLIENT_OPTIONS.timeoutMs
  const service = options.service ?? DEFAULT_SASLAUTHD_CLIENT_OPTIONS.service
  const realm = options.realm ?? DEFAULT_SASLAUTHD_CLIENT_OPTIONS.realm
  const frame = encodeRequest({ login, password, service, realm })
  const t0 = performance.now()
  return new Promise((resolve) => {
    let settled = false
    let buf = Buffer.alloc(0)
    let socket: Socket | undefined
    let retryTimer: NodeJS.Timeout | undefined
    let retryDelayMs = 1
    const finish = (r: Omit<SaslauthdCheckResult, 'latencyMs'>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(retryTimer)
      socket?.destroy()
      resolve({ ...r, latencyMs: performance.now() - t0 })
    }
    const timer = setTimeout(
      () => finish({ ok: false, reply: '', timedOut: true, error: 'timeout' }),
      timeoutMs,
    )
    // Not unref()ed: while connects wait for a full backlog, the timers are all that keeps a
    // load worker alive, and each is bounded by timeoutMs.
    const parse = (ended: boolean) => {
      const r = decodeReply(buf, ended)
      if (r.status === 'need-more') return
      if (r.status === 'error') finish({ ok: false, reply: '', timedOut: false, error: r.reason })
      else finish({ ok: r.ok, reply: r.text, timedOut: false })
    }
    const attempt = () => {
      if (settled) return
      const s = connect({ path: socketPath })
      socket = s
      let connected = false
      s.on('connect', () => {
        connected = true
        s.write(frame)
      })
      s.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk])
        parse(false)
      })
      s.on('end', () => parse(true))
      s.on('close', () => {
        if (connected) parse(true)
      })
      s.on('error', (err: NodeJS.ErrnoException) => {
        if (!connected && err.code === 'EAGAIN') {
          // Listen backlog full: libsasl2's blocking connect() would wait for room; so do we.
          s.destroy()
          retryTimer = setTimeout(attempt, retryDelayMs)
          retryDelayMs = Math.min(CONNECT_RETRY_MAX_MS, retryDelayMs * 2)
          return
        }
        finish({ ok: false, reply: '', timedOut: false, error: err.code ?? 'socket error' })
      })
    }
    attempt()
  })
}
