/**
 * Typed access to saslgate's libkrb5 addon (native/). The addon never touches the network;
 * see native/src/session.h.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

export interface StepResult {
  /** 0 or a libkrb5 error code (e.g. codes.KRB5KDC_ERR_PREAUTH_FAILED). */
  code: number
  /** libkrb5 wants another round trip: send `out` to a KDC of `realm`. */
  continue: boolean
  out: Buffer | null
  realm: string | null
  /** libkrb5's message for `code` (may name principals, never a password). */
  message: string | null
}

export interface SessionOptions {
  /** The user's principal, fully qualified (`user@REALM`). */
  client: string
  /** The verify principal, fully qualified (`host/name@REALM`). */
  server: string
  /** Get the service ticket in the AS exchange itself (2 round trips) instead of a TGS exchange. */
  asService: boolean
  /**
   * The verified ticket must carry the INITIAL flag (it came from an AS exchange, not a TGS
   * one); default: `asService`. Only meaningful in AS mode.
   */
  requireInitial?: boolean
  /** The only enctypes the AS exchange asks for, in preference order (required, non-empty). */
  enctypes: readonly number[]
  ticketLifetimeS?: number
}

export interface NativeSession {
  asStart(password: Buffer): Promise<StepResult>
  /** Restarts the AS exchange from `key` (a MEMORY keytab): no string-to-key after this. */
  useKey(enctype: number, key: Buffer): Promise<StepResult>
  /** libkrb5's string-to-key, once (null salt: the default salt), then as `useKey`. */
  usePassword(
    enctype: number,
    password: Buffer,
    salt: Buffer | null,
    s2kparams: Buffer | null,
  ): Promise<StepResult>
  /**
   * A new AS exchange from the key `useKey`/`usePassword` installed, while the exchange it
   * restarted has not completed (the retry on the primary KDC): no second string-to-key.
   */
  asRestart(): Promise<StepResult>
  /** The client's default salt (realm and name components); not while an operation runs. */
  defaultSalt(): Buffer
  asStep(reply: Buffer): Promise<StepResult>
  tgsStart(): Promise<StepResult>
  tgsStep(reply: Buffer): Promise<StepResult>
  verify(keytab?: string): Promise<StepResult>
  close(): void
}

export interface Krb5Codes {
  KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN: number
  KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN: number
  KRB5KDC_ERR_PREAUTH_FAILED: number
  KRB5KDC_ERR_PREAUTH_REQUIRED: number
  KRB5KDC_ERR_KEY_EXP: number
  KRB5KDC_ERR_CLIENT_REVOKED: number
  KRB5KDC_ERR_POLICY: number
  KRB5KDC_ERR_NAME_EXP: number
  KRB5KDC_ERR_ETYPE_NOSUPP: number
  KRB5KRB_AP_ERR_BAD_INTEGRITY: number
  KRB5KRB_AP_ERR_MODIFIED: number
  KRB5KRB_AP_ERR_BADMATCH: number
  KRB5KRB_AP_ERR_SKEW: number
  KRB5KRB_ERR_RESPONSE_TOO_BIG: number
  KRB5KDC_ERR_SVC_UNAVAILABLE: number
  KRB5_KDCREP_MODIFIED: number
  KRB5_KT_NOTFOUND: number
  KRB5_KT_KVNONOTFOUND: number
  KRB5_PREAUTH_FAILED: number
  KRB5_GET_IN_TKT_LOOP: number
  KRB5KRB_AP_ERR_TKT_INVALID: number
  KRB5KRB_AP_ERR_TKT_NYV: number
  KRB5KRB_AP_ERR_TKT_EXPIRED: number
  KRB5_CONFIG_ETYPE_NOSUPP: number
  KRB5_PROG_ETYPE_NOSUPP: number
}

/** Core dumps as they stand after the addon turned them off at load (native/src/hardening.h). */
export interface CoreDumpState {
  /** prctl(PR_GET_DUMPABLE): 0 is off (no core file, no same-uid ptrace or /proc/PID/mem). */
  dumpable: number
  /** RLIMIT_CORE soft and hard limit in bytes; -1 for unlimited or unreadable. */
  softLimit: number
  hardLimit: number
  /** What failed, or null. */
  error: string | null
}

interface Addon {
  /** Set once, when the addon is loaded: it turns core dumps off before anything else runs. */
  coreDumps: CoreDumpState
  Session: new (options: SessionOptions) => NativeSession
  configure(profilePath: string): void
  /**
   * `service/<this host>` (no realm) as libkrb5's krb5_sname_to_principal(NULL, service,
   * KRB5_NT_SRV_HST) makes it under the profile `configure` set: gethostname(), then, as
   * dns_canonicalize_hostname and rdns say, a forward look-up (canonical name) and a reverse
   * one, lowercased; or qualify_shortname when canonicalisation is off. Blocks on those
   * look-ups: called once at start. Throws (with `krb5Code`) when libkrb5 fails.
   */
  hostServicePrincipal(service: string): string
  codes: Krb5Codes
}

const candidates = [
  '../../native/build/Release/saslgate_krb5.node',
  '../native/build/Release/saslgate_krb5.node',
]

function load(): Addon {
  const require = createRequire(import.meta.url)
  for (const rel of candidates) {
    const url = new URL(rel, import.meta.url)
    if (existsSync(fileURLToPath(url))) return require(fileURLToPath(url)) as Addon
  }
  throw new Error(
    'saslgate: the libkrb5 addon is not built; run `npm run build:native` (needs libkrb5-dev, g++, make)',
  )
}

let addon: Addon | undefined

/** The addon, loaded on first use. */
export function krb5(): Addon {
  addon ??= load()
  return addon
}
