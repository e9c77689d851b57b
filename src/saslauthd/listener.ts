/**
 * The saslauthd unix socket listener: the drop-in front door for libsasl2 (Cyrus imapd,
 * Postfix, testsaslauthd). One request per connection, answered before a hard deadline
 * whatever the authenticator does (fail closed: NO), because libsasl2 waits forever.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Authenticator, AuthResult } from '../authenticator.js'
import { type Decision, type Reason, Reasons, SaslgateError } from '../errors.js'
import { encodeReply, type FieldMode, FrameDecoder, type SaslauthdFrame } from './codec.js'
import {
  applySocketPermissions,
  prepareSocketPath,
  removeSocketFile,
  socketPathError,
} from './socket-file.js'

type LogFn = (obj: Record<string, unknown>, msg?: string) => void

/** The part of a pino logger the listener uses. */
export interface ListenerLogger {
  info: LogFn
  warn: LogFn
  error: LogFn
  debug: LogFn
}

const noop: LogFn = () => {}
export const NOOP_LOGGER: ListenerLogger = Object.freeze({
  info: noop,
  warn: noop,
  error: noop,
  debug: noop,
})

/** One decision, for metrics and logs. Never carries the password. */
export interface SaslauthdDecisionEvent {
  decision: Decision
  reason: Reason
  /** `decode`, `listener`, or the authenticator's stage. */
  stage: string
  /** Finer cause from the listener: a frame error reason, `read_timeout`, `max_connections`, ... */
  detail?: string
  /** From accepting the connection to handing the reply to the socket. */
  latencyMs: number
  /** Time spent waiting for the authenticator (when it was called). */
  authMs?: number
  fieldCount?: 4 | 5
  login?: string
  service?: string
  realm?: string
  clientAddress?: string
  /** False when the client was gone before the reply could be written. */
  delivered: boolean
}

export interface SaslauthdListenerOptions {
  socketPath: string
  authenticator: Authenticator
  /** Request form: `4` (libsasl2 2.1.x), `5` (cyrus-sasl master), `auto` (detect). */
  fields?: FieldMode
  /** Permissions of the socket file (saslauthd uses 0777; access is controlled by the directory). */
  socketMode?: number
  /** Group owning the socket file (name or gid). */
  socketGroup?: string | number
  /** A client that has not sent a whole frame this long after connecting gets NO. */
  readTimeoutMs?: number
  /** Every request is answered before this (NO if the authenticator is not done). */
  answerDeadlineMs?: number
  /** Connections beyond this get NO and are closed at once. */
  maxConnections?: number
  /** `auto` mode: after four fields with nothing more buffered, wait this long for a fifth.
   * 0 (the default) waits only for the rest of this event-loop turn (`setImmediate`): libsasl2
   * and testsaslauthd write a whole request with one writev(2), so a fifth field comes in the
   * same chunk; a client that writes it separately later gets NO (trailing bytes) unless this
   * is raised. */
  fiveFieldGraceMs?: number
  /** After replying, wait at most this long for the client's EOF before closing. */
  drainTimeoutMs?: number
  /** listen(2) backlog (the kernel caps it at net.core.somaxconn). */
  backlog?: number
  /** Connect timeout when probing an existing socket file for a live owner. */
  probeTimeoutMs?: number
  /** At most one "maxConnections reached" warning per this interval. */
  overloadLogIntervalMs?: number
  logger?: ListenerLogger
  onDecision?: (event: SaslauthdDecisionEvent) => void
}

export const DEFAULT_SASLAUTHD_LISTENER = Object.freeze({
  fields: 'auto' as FieldMode,
  socketMode: 0o777,
  readTimeoutMs: 5000,
  answerDeadlineMs: 2000,
  maxConnections: 8192,
  fiveFieldGraceMs: 0,
  drainTimeoutMs: 1000,
  backlog: 4096,
  probeTimeoutMs: 1000,
  overloadLogIntervalMs: 10_000,
})

export interface SaslauthdListenerStats {
  listening: boolean
  /** Sockets currently open (including ones being drained after their reply). */
  openConnections: number
  /** Requests decoded and waiting for their answer. */
  inFlight: number
  /** authenticate() calls not settled yet (can outlive their request after the deadline). */
  authenticatorPending: number
  accepted: number
  answered: number
  rejectedOverCapacity: number
}

type ConnState = 'reading' | 'grace' | 'deciding' | 'draining'

interface Connection {
  socket: Socket
  state: ConnState
  decoder: FrameDecoder
  acceptedAt: number
  readTimer?: NodeJS.Timeout
  stageTimer?: NodeJS.Timeout
  /** The zero-length five-field grace (`fiveFieldGraceMs: 0`). */
  graceImmediate?: NodeJS.Immediate
  controller?: AbortController
  frame?: SaslauthdFrame
  fieldCount?: 4 | 5
  authStartedAt?: number
  deadlineAt?: number
  readEnded: boolean
  gone: boolean
  decided: boolean
}

const DECISIONS: ReadonlySet<string> = new Set(['ok', 'invalid', 'unavailable'])

function positiveInt(name: string, v: number, allowZero = false): number {
  if (!Number.isInteger(v) || v < (allowZero ? 0 : 1)) {
    throw new SaslgateError('SASLGATE_ERR_CONFIG', `${name} must be a positive integer`)
  }
  return v
}

/** Waits for `p` at most `ms` (never rejects; the timer is cleared either way). */
function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    timer.unref()
    const done = () => {
      clearTimeout(timer)
      resolve()
    }
    p.then(done, done)
  })
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err
    ? String((err as { code: unknown }).code)
    : undefined
}

export class SaslauthdListener {
  readonly socketPath: string
  readonly #auth: Authenticator
  readonly #opts: Required<
    Omit<SaslauthdListenerOptions, 'socketPath' | 'authenticator' | 'socketGroup' | 'onDecision'>
  >
  readonly #group: string | number | undefined
  readonly #onDecision: ((event: SaslauthdDecisionEvent) => void) | undefined
  readonly #log: ListenerLogger
  readonly #server: Server
  readonly #conns = new Set<Connection>()
  #listenPromise: Promise<void> | undefined
  #closePromise: Promise<void> | undefined
  #listening = false
  #closing = false
  #ino: number | undefined
  #inFlight = 0
  #authPending = 0
  #accepted = 0
  #answered = 0
  #rejected = 0
  #rejectedSinceLog = 0
  #lastOverloadLogAt = Number.NEGATIVE_INFINITY
  #waiters: Array<{ ready: () => boolean; done: () => void }> = []

  constructor(options: SaslauthdListenerOptions) {
    const d = DEFAULT_SASLAUTHD_LISTENER
    if (typeof options.socketPath !== 'string' || options.socketPath.length === 0) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'socketPath must be a non-empty path')
    }
    if (typeof options.authenticator?.authenticate !== 'function') {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'authenticator must implement authenticate()')
    }
    const fields = options.fields ?? d.fields
    if (fields !== '4' && fields !== '5' && fields !== 'auto') {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', "fields must be '4', '5' or 'auto'")
    }
    const socketMode = options.socketMode ?? d.socketMode
    if (!Number.isInteger(socketMode) || socketMode < 0 || socketMode > 0o7777) {
      throw new SaslgateError('SASLGATE_ERR_CONFIG', 'socketMode must be a file mode (0 to 0o7777)')
    }
    this.socketPath = options.socketPath
    this.#auth = options.authenticator
    this.#group = options.socketGroup
    this.#onDecision = options.onDecision
    this.#log = options.logger ?? NOOP_LOGGER
    this.#opts = {
      fields,
      socketMode,
      readTimeoutMs: positiveInt('readTimeoutMs', options.readTimeoutMs ?? d.readTimeoutMs),
      answerDeadlineMs: positiveInt(
        'answerDeadlineMs',
        options.answerDeadlineMs ?? d.answerDeadlineMs,
      ),
      maxConnections: positiveInt('maxConnections', options.maxConnections ?? d.maxConnections),
      fiveFieldGraceMs: positiveInt(
        'fiveFieldGraceMs',
        options.fiveFieldGraceMs ?? d.fiveFieldGraceMs,
        true,
      ),
      drainTimeoutMs: positiveInt('drainTimeoutMs', options.drainTimeoutMs ?? d.drainTimeoutMs),
      backlog: positiveInt('backlog', options.backlog ?? d.backlog),
      probeTimeoutMs: positiveInt('probeTimeoutMs', options.probeTimeoutMs ?? d.probeTimeoutMs),
      overloadLogIntervalMs: positiveInt(
        'overloadLogIntervalMs',
        options.overloadLogIntervalMs ?? d.overloadLogIntervalMs,
        true,
      ),
      logger: this.#log,
    }
    this.#server = createServer({ allowHalfOpen: true }, (socket) => this.#onConnection(socket))
  }

  /** Takes over the socket path (refusing a live one), listens, applies permissions. */
  listen(): Promise<void> {
    if (this.#closing) {
      return Promise.reject(new SaslgateError('SASLGATE_ERR_CLOSED', 'the listener was closed'))
    }
    this.#listenPromise ??= this.#listen()
    return this.#listenPromise
  }

  async #listen(): Promise<void> {
    await prepareSocketPath(this.socketPath, this.#opts.probeTimeoutMs)
    if (this.#closing) throw new SaslgateError('SASLGATE_ERR_CLOSED', 'the listener was closed')
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        reject(
          errCode(err) === 'EADDRINUSE'
            ? new SaslgateError('SASLGATE_ERR_SOCKET_IN_USE', `${this.socketPath} is in use`, {
                cause: err,
              })
            : socketPathError(`cannot listen on ${this.socketPath}`, this.socketPath, err),
        )
      }
      this.#server.once('error', onError)
      this.#server.listen({ path: this.socketPath, backlog: this.#opts.backlog }, () => {
        this.#server.off('error', onError)
        resolve()
      })
    })
    // Accept errors (EMFILE under a connection flood) can repeat per connection: rate-limit.
    let lastErrorLogAt = Number.NEGATIVE_INFINITY
    let suppressed = 0
    this.#server.on('error', (err) => {
      const now = performance.now()
      if (now - lastErrorLogAt < this.#opts.overloadLogIntervalMs) {
        suppressed++
        return
      }
      this.#log.error(
        { err: err.message, code: errCode(err), suppressed },
        'saslauthd listener socket error',
      )
      lastErrorLogAt = now
      suppressed = 0
    })
    try {
      this.#ino = await applySocketPermissions(this.socketPath, this.#opts.socketMode, this.#group)
    } catch (err) {
      await new Promise<void>((resolve) => this.#server.close(() => resolve()))
      await removeSocketFile(this.socketPath, undefined)
      throw err
    }
    this.#listening = true
    this.#log.info(
      { socketPath: this.socketPath, fields: this.#opts.fields, mode: this.#opts.socketMode },
      'saslauthd listener ready',
    )
  }

  stats(): SaslauthdListenerStats {
    return {
      listening: this.#listening && !this.#closing,
      openConnections: this.#conns.size,
      inFlight: this.#inFlight,
      authenticatorPending: this.#authPending,
      accepted: this.#accepted,
      answered: this.#answered,
      rejectedOverCapacity: this.#rejected,
    }
  }

  /**
   * Stops accepting, answers what is in flight (bounded by answerDeadlineMs), closes the
   * remaining connections and removes the socket file. Does not close the authenticator.
   */
  close(): Promise<void> {
    this.#closePromise ??= this.#close()
    return this.#closePromise
  }

  async #close(): Promise<void> {
    this.#closing = true
    if (this.#listenPromise !== undefined) await this.#listenPromise.catch(() => {})
    const serverClosed = new Promise<void>((resolve) => {
      if (!this.#server.listening) return resolve()
      this.#server.close(() => resolve())
    })
    // Clients that have not sent a request yet will not get one answered: tell them now.
    for (const conn of this.#conns) {
      if (conn.state === 'reading') {
        this.#answer(conn, 'unavailable', 'shed', 'listener', 'shutting_down')
      }
    }
    await this.#waitUntil(() => this.#busy() === 0, this.#opts.answerDeadlineMs + 100)
    for (const conn of this.#conns) this.#destroyWhenFlushed(conn.socket, 100)
    await this.#waitUntil(() => this.#conns.size === 0, 500)
    await bounded(serverClosed, 500)
    if (this.#listening) await removeSocketFile(this.socketPath, this.#ino)
    this.#listening = false
    this.#log.info({ socketPath: this.socketPath }, 'saslauthd listener closed')
  }

  /** Resolves when `ready()` holds (checked on every state change) or after `boundMs`. */
  #waitUntil(ready: () => boolean, boundMs: number): Promise<void> {
    if (ready()) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(done, boundMs)
      timer.unref()
      function done() {
        clearTimeout(timer)
        resolve()
      }
      this.#waiters.push({ ready, done })
    })
  }

  #busy(): number {
    let grace = 0
    for (const conn of this.#conns) if (conn.state === 'grace') grace++
    return this.#inFlight + grace
  }

  #checkIdle(): void {
    if (this.#waiters.length === 0) return
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) {
      if (w.ready()) w.done()
      else this.#waiters.push(w)
    }
  }

  #destroyWhenFlushed(socket: Socket, boundMs: number): void {
    if (socket.destroyed) return
    if (socket.writableLength === 0) {
      socket.destroy()
      return
    }
    const timer = setTimeout(() => socket.destroy(), boundMs)
    timer.unref()
    socket.once('drain', () => {
      clearTimeout(timer)
      socket.destroy()
    })
  }

  #onConnection(socket: Socket): void {
    const conn: Connection = {
      socket,
      state: 'reading',
      decoder: new FrameDecoder(this.#opts.fields),
      acceptedAt: performance.now(),
      readEnded: false,
      gone: false,
      decided: false,
    }
    this.#conns.add(conn)
    socket.on('data', (chunk: Buffer) => this.#onData(conn, chunk))
    socket.on('end', () => this.#onEnd(conn))
    socket.on('error', (err) => {
      this.#log.debug({ code: errCode(err) }, 'saslauthd client socket error')
    })
    socket.on('close', () => this.#onClose(conn))
    if (this.#closing) {
      this.#answer(conn, 'unavailable', 'shed', 'listener', 'shutting_down')
      return
    }
    this.#accepted++
    if (this.#conns.size > this.#opts.maxConnections) {
      this.#rejected++
      this.#rejectedSinceLog++
      const now = performance.now()
      if (now - this.#lastOverloadLogAt >= this.#opts.overloadLogIntervalMs) {
        this.#log.warn(
          {
            maxConnections: this.#opts.maxConnections,
            openConnections: this.#conns.size,
            rejected: this.#rejectedSinceLog,
          },
          'saslauthd listener at maxConnections: answering NO to new connections',
        )
        this.#lastOverloadLogAt = now
        this.#rejectedSinceLog = 0
      }
      this.#answer(conn, 'unavailable', 'shed', 'listener', 'max_connections')
      return
    }
    conn.readTimer = setTimeout(() => this.#onReadTimeout(conn), this.#opts.readTimeoutMs)
    conn.readTimer.unref()
  }

  #onData(conn: Connection, chunk: Buffer): void {
    switch (conn.state) {
      case 'reading':
      case 'grace':
        this.#handleDecode(conn, conn.decoder.push(chunk))
        return
      case 'deciding':
        // Bytes after a whole frame: not a libsasl2 client. Fail closed.
        conn.controller?.abort(new SaslgateError('SASLGATE_ERR_FRAME', 'trailing bytes'))
        this.#answer(conn, 'invalid', 'malformed_request', 'decode', 'trailing_garbage')
        return
      case 'draining':
        return // read to EOF, discarding
    }
  }

  #onEnd(conn: Connection): void {
    conn.readEnded = true
    if (conn.state === 'reading' || conn.state === 'grace') {
      this.#handleDecode(conn, conn.decoder.end())
    } else if (conn.state === 'draining') {
      conn.socket.destroy()
    }
  }

  #onClose(conn: Connection): void {
    conn.gone = true
    this.#conns.delete(conn)
    clearTimeout(conn.readTimer)
    if (conn.state === 'deciding') {
      // The deadline timer stays: it settles the request (undelivered) if the authenticator
      // does not, so every request produces exactly one decision event within the deadline.
      conn.controller?.abort(new SaslgateError('SASLGATE_ERR_ABORTED', 'the client went away'))
      this.#checkIdle()
      return
    }
    clearTimeout(conn.stageTimer)
    clearImmediate(conn.graceImmediate)
    if (conn.state === 'grace') conn.state = 'reading'
    this.#checkIdle()
  }

  #onReadTimeout(conn: Connection): void {
    if (conn.state !== 'reading' && conn.state !== 'grace') return
    this.#answer(conn, 'invalid', 'malformed_request', 'decode', 'read_timeout')
  }

  #handleDecode(conn: Connection, r: ReturnType<FrameDecoder['push']>): void {
    switch (r.status) {
      case 'need-more':
        if (conn.state === 'grace') {
          // Part of a fifth field arrived: keep reading under the read timeout.
          clearTimeout(conn.stageTimer)
          clearImmediate(conn.graceImmediate)
          conn.state = 'reading'
          this.#checkIdle()
        }
        return
      case 'maybe-complete':
        if (conn.state === 'reading') {
          conn.state = 'grace'
          const endGrace = () => {
            if (conn.state === 'grace') this.#handleDecode(conn, conn.decoder.end())
          }
          if (this.#opts.fiveFieldGraceMs === 0) {
            // Bytes already read in this poll phase are handled before the check phase.
            conn.graceImmediate = setImmediate(endGrace)
          } else {
            conn.stageTimer = setTimeout(endGrace, this.#opts.fiveFieldGraceMs)
            conn.stageTimer.unref()
          }
        }
        return
      case 'frame':
        this.#decide(conn, r.frame, r.fieldCount)
        return
      case 'error':
        this.#answer(conn, 'invalid', 'malformed_request', 'decode', r.reason)
        return
    }
  }

  #decide(conn: Connection, frame: SaslauthdFrame, fieldCount: 4 | 5): void {
    clearTimeout(conn.readTimer)
    clearTimeout(conn.stageTimer)
    clearImmediate(conn.graceImmediate)
    conn.state = 'deciding'
    conn.frame = frame
    conn.fieldCount = fieldCount
    this.#inFlight++
    const controller = new AbortController()
    conn.controller = controller
    conn.authStartedAt = performance.now()
    conn.deadlineAt = conn.authStartedAt + this.#opts.answerDeadlineMs
    conn.stageTimer = setTimeout(() => {
      controller.abort(new SaslgateError('SASLGATE_ERR_DEADLINE', 'answer deadline passed'))
      this.#answer(conn, 'unavailable', 'deadline', 'listener')
    }, this.#opts.answerDeadlineMs)
    conn.stageTimer.unref()
    const request = {
      login: frame.login,
      password: frame.password,
      service: frame.service,
      realm: frame.realm,
      signal: controller.signal,
      ...(frame.clientAddress !== undefined ? { clientAddress: frame.clientAddress } : {}),
    }
    let pending: Promise<AuthResult>
    try {
      pending = Promise.resolve(this.#auth.authenticate(request))
    } catch (err) {
      pending = Promise.reject(err)
    }
    this.#authPending++
    // The frame's password is wiped once the authenticator has settled (it is answered by
    // then, or was at the deadline): not at the deadline itself, since an authenticator still
    // running may yet read it, and zeros sent on as a password would be a wrong guess.
    const wipe = () => frame.password.fill(0)
    pending.then(
      (result) => {
        this.#authPending--
        try {
          this.#onResult(conn, result)
        } finally {
          wipe()
        }
      },
      (err: unknown) => {
        this.#authPending--
        wipe()
        if (conn.decided) return
        this.#log.warn(
          { code: errCode(err), err: err instanceof Error ? err.name : typeof err },
          'authenticator failed; answering NO',
        )
        this.#answer(conn, 'unavailable', 'internal_error', 'listener', 'authenticator_threw')
      },
    )
  }

  #onResult(conn: Connection, result: AuthResult): void {
    if (conn.decided) return
    const valid =
      typeof result === 'object' &&
      result !== null &&
      DECISIONS.has(result.decision) &&
      typeof result.reason === 'string' &&
      Object.hasOwn(Reasons, result.reason)
    if (!valid) {
      this.#answer(conn, 'unavailable', 'internal_error', 'listener', 'bad_result')
      return
    }
    if (result.decision === 'ok' && performance.now() > (conn.deadlineAt ?? 0)) {
      this.#answer(conn, 'unavailable', 'deadline', 'listener', 'late_ok')
      return
    }
    const stage = typeof result.stage === 'string' ? result.stage : 'unknown'
    this.#answer(conn, result.decision, result.reason, stage)
  }

  #answer(
    conn: Connection,
    decision: Decision,
    reason: Reason,
    stage: string,
    detail?: string,
  ): void {
    if (conn.decided) return
    conn.decided = true
    clearTimeout(conn.readTimer)
    clearTimeout(conn.stageTimer)
    clearImmediate(conn.graceImmediate)
    if (conn.state === 'deciding') this.#inFlight--
    conn.state = 'draining'
    const now = performance.now()
    const event: SaslauthdDecisionEvent = {
      decision,
      reason,
      stage,
      latencyMs: now - conn.acceptedAt,
      delivered: false,
    }
    if (detail !== undefined) event.detail = detail
    if (conn.authStartedAt !== undefined) event.authMs = now - conn.authStartedAt
    if (conn.frame !== undefined) {
      event.fieldCount = conn.fieldCount ?? 4
      event.login = conn.frame.login
      event.service = conn.frame.service
      event.realm = conn.frame.realm
      if (conn.frame.clientAddress !== undefined) event.clientAddress = conn.frame.clientAddress
      conn.frame = undefined
    }
    this.#checkIdle()
    if (conn.gone) {
      this.#emit(event)
      return
    }
    this.#answered++
    const socket = conn.socket
    // A unix socket cannot tell a half-close from a peer that is gone: the write says.
    socket.write(encodeReply(decision), (err) => {
      event.delivered = err === undefined || err === null
      this.#emit(event)
    })
    socket.end()
    if (conn.readEnded) {
      socket.once('finish', () => socket.destroy())
    } else {
      conn.stageTimer = setTimeout(() => socket.destroy(), this.#opts.drainTimeoutMs)
      conn.stageTimer.unref()
    }
  }

  #emit(event: SaslauthdDecisionEvent): void {
    if (this.#onDecision === undefined) return
    try {
      this.#onDecision(event)
    } catch (err) {
      this.#log.error(
        { err: err instanceof Error ? err.message : String(err) },
        'onDecision hook threw',
      )
    }
  }
}
