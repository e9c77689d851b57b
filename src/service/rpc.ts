/**
 * The RPC handlers of `proto/saslgate/v1`: validation, then the authenticator. A handler
 * only runs for an authenticated caller (the app's auth hook refuses everyone else before
 * the body is read; the interceptor here refuses again, as defence in depth).
 */

import type { MessageInitShape } from '@bufbuild/protobuf'
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextKey,
  type Interceptor,
} from '@connectrpc/connect'
import type { Authenticator } from '../authenticator.js'
import type { Decision as InternalDecision } from '../errors.js'
import {
  type AuthenticateRequest,
  type AuthenticateResponseSchema,
  AuthService,
  Decision,
} from '../gen/saslgate/v1/auth_pb.js'
import { HealthService, ServingStatus } from '../gen/saslgate/v1/health_pb.js'
import { MAX_FIELD_BYTES } from '../saslauthd/codec.js'
import type { Caller } from './caller-auth.js'

/** The authenticated caller of the RPC, set by the app from its auth hook. */
export const kCaller = createContextKey<Caller | undefined>(undefined, {
  description: 'authenticated caller',
})

const DECISIONS: Record<InternalDecision, Decision> = {
  ok: Decision.OK,
  invalid: Decision.INVALID,
  unavailable: Decision.UNAVAILABLE,
}

export interface RpcDeps {
  authenticator: Authenticator
  ready: () => boolean
  /** Runs one RPC inside a server span whose parent comes from the caller's trace headers. */
  traceRpc?: <T>(header: (name: string) => string | undefined, fn: () => Promise<T>) => Promise<T>
  /** One RPC answered (metrics): `code` is `ok` or the Connect error code. */
  onRpc?: (method: string, code: string, ms: number) => void
  /** Called once per decided RPC (logs, metrics). */
  onAnswer?: (event: { caller: Caller; decision: InternalDecision; error?: unknown }) => void
}

/** Refuses any call without an authenticated caller. */
export const requireCaller: Interceptor = (next) => async (req) => {
  if (req.contextValues.get(kCaller) === undefined)
    throw new ConnectError('caller not authenticated', Code.Unauthenticated)
  return next(req)
}

/** Field limits match the saslauthd wire format (256 bytes per field). */
function checkField(name: string, value: string | Uint8Array): void {
  const bytes = typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length
  if (bytes > MAX_FIELD_BYTES)
    throw new ConnectError(
      `field ${name} is longer than ${MAX_FIELD_BYTES} bytes`,
      Code.InvalidArgument,
    )
}

/**
 * The Authenticate implementation, shared by Connect's handler and the direct binary path
 * (connect-routes.ts). `ctx` needs only the abort signal and the context values.
 */
export function authenticateHandler(deps: RpcDeps) {
  return async (
    req: AuthenticateRequest,
    ctx: {
      signal: AbortSignal
      values: ContextValues
      header?: (name: string) => string | undefined
    },
  ): Promise<MessageInitShape<typeof AuthenticateResponseSchema>> => {
    const t0 = performance.now()
    const run = () => decide(req, ctx)
    try {
      const res = await (deps.traceRpc !== undefined
        ? deps.traceRpc(ctx.header ?? (() => undefined), run)
        : run())
      deps.onRpc?.('Authenticate', 'ok', performance.now() - t0)
      return res
    } catch (err) {
      const code = err instanceof ConnectError ? Code[err.code] : 'Internal'
      deps.onRpc?.('Authenticate', code.toLowerCase(), performance.now() - t0)
      throw err
    }
  }
  async function decide(
    req: AuthenticateRequest,
    ctx: { signal: AbortSignal; values: ContextValues },
  ): Promise<MessageInitShape<typeof AuthenticateResponseSchema>> {
    const caller = ctx.values.get(kCaller)
    if (caller === undefined)
      throw new ConnectError('caller not authenticated', Code.Unauthenticated)
    const password = Buffer.from(req.password)
    req.password.fill(0)
    try {
      checkField('login', req.login)
      checkField('password', password)
      checkField('service', req.service)
      checkField('realm', req.realm)
      checkField('client_address', req.clientAddress)
      const result = await deps.authenticator.authenticate({
        login: req.login,
        password,
        service: req.service,
        realm: req.realm,
        ...(req.clientAddress !== '' ? { clientAddress: req.clientAddress } : {}),
        signal: ctx.signal,
      })
      deps.onAnswer?.({ caller, decision: result.decision })
      return {
        decision: DECISIONS[result.decision],
        retryAfterMs: Math.max(0, Math.min(2 ** 32 - 1, Math.round(result.retryAfterMs ?? 0))),
      }
    } catch (err) {
      if (err instanceof ConnectError) throw err
      // Fail closed: an internal error is `unavailable`, never `ok`.
      deps.onAnswer?.({ caller, decision: 'unavailable', error: err })
      return { decision: Decision.UNAVAILABLE, retryAfterMs: 1000 }
    } finally {
      password.fill(0)
    }
  }
}

export function routes(deps: RpcDeps): (router: ConnectRouter) => void {
  const handler = authenticateHandler(deps)
  return (router) => {
    router.service(AuthService, {
      authenticate: (req, ctx) =>
        handler(req, {
          signal: ctx.signal,
          values: ctx.values,
          header: (name) => ctx.requestHeader.get(name) ?? undefined,
        }),
    })
    router.service(HealthService, {
      check() {
        return {
          status: deps.ready() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING,
        }
      },
    })
  }
}
