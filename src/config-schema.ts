/**
 * The configuration schema: every option, its type, its default and one sentence on it.
 * Only this file and config.ts know option names; modules receive typed sections.
 */

export type Leaf =
  | { type: 'string'; default: string; doc: string; secretPath?: boolean }
  | { type: 'int'; default: number; min: number; max: number; doc: string }
  | { type: 'bool'; default: boolean; doc: string }
  | { type: 'enum'; default: string; values: readonly string[]; doc: string }
  | { type: 'list'; default: readonly string[]; doc: string }
  | { type: 'map'; default: Readonly<Record<string, string>>; doc: string }
  | { type: 'mapList'; default: Readonly<Record<string, readonly string[]>>; doc: string }

const s = (def: string, doc: string) => ({ type: 'string', default: def, doc }) as const
const i = (def: number, min: number, max: number, doc: string) =>
  ({ type: 'int', default: def, min, max, doc }) as const
const b = (def: boolean, doc: string) => ({ type: 'bool', default: def, doc }) as const
const e = <V extends string>(def: NoInfer<V>, values: readonly V[], doc: string) =>
  ({ type: 'enum', default: def, values, doc }) as const
const list = (doc: string) => ({ type: 'list', default: [] as readonly string[], doc }) as const
const map = (doc: string) =>
  ({ type: 'map', default: {} as Readonly<Record<string, string>>, doc }) as const
const mapList = (doc: string) =>
  ({ type: 'mapList', default: {} as Readonly<Record<string, readonly string[]>>, doc }) as const

export const SCHEMA = {
  realm: {
    default: s('', 'Realm for logins without a domain; empty: `default_realm` from krb5.conf.'),
    allowed: list('Realms logins may map to; empty: just the default realm.'),
    domainRealms: map('Mail domain -> realm, e.g. `{example.edu: EXAMPLE.EDU}`.'),
    allowInstances: b(false, 'Accept logins with a `/` instance (`user/admin`); off like most sites want.'),
  },
  kerberos: {
    config: s('', 'krb5.conf to read KDCs and default_realm from; empty: `KRB5_CONFIG`, else /etc/krb5.conf.'),
    keytab: s('', 'Keytab with the verify principal; empty: `KRB5_KTNAME`, else /etc/krb5.keytab.'),
    verifyPrincipal: s('', 'Service principal tickets are verified against; empty: `host/<hostname>` like saslauthd.'),
    serviceTicketVia: e('as', ['as', 'tgs'], '`as`: service ticket in the AS exchange (2 round trips); `tgs`: separate TGS exchange (3).'),
    kdcs: mapList('Realm -> KDC list (`host[:port]`); overrides krb5.conf `[realms] kdc`.'),
    checkDeadlineMs: i(1800, 100, 60_000, 'Overall bound on one uncached check; past it the answer is `unavailable`.'),
    udpAttemptTimeoutMs: i(400, 20, 30_000, 'Wait for one KDC over UDP before trying the next; raise for distant KDCs.'),
    tcpAttemptTimeoutMs: i(1000, 20, 30_000, 'Wait for one KDC over TCP before trying the next.'),
    maxS2kIterations: i(100_000, 4096, 16_777_215, 'Refuse KDC replies asking more PBKDF2 iterations (a spoofed reply must not burn CPU).'),
    deriveKeys: b(true, 'Derive AES keys with OpenSSL (node:crypto) instead of libk5crypto: ~3x less CPU per check.'),
    breakerResetTimeoutMs: i(5000, 100, 600_000, 'How long an open KDC breaker waits before a half-open probe.'),
    breakerVolumeThreshold: i(3, 1, 1000, 'Failures needed in the window before a KDC breaker may open.'),
    breakerErrorThresholdPercentage: i(50, 1, 100, 'Failure percentage in the window that opens a KDC breaker.'),
  },
  saslauthd: {
    socket: s('', 'saslauthd socket path to serve (e.g. /run/saslauthd/mux); empty: no socket.'),
    socketMode: s('0777', 'Socket file mode (octal); saslauthd uses 0777 and relies on the directory (root:sasl 0710).'),
    socketGroup: s('', 'Group for the socket file; empty: leave as created.'),
    fields: e('auto', ['auto', '4', '5'], 'Request form: 4 fields (libsasl2 2.1.x), 5 (with client address), or detect.'),
    readTimeoutMs: i(5000, 50, 600_000, 'A client that has not sent a whole request by then is answered NO and closed.'),
    answerDeadlineMs: i(2000, 50, 600_000, 'Hard bound on every answer: NO at this deadline whatever is going on.'),
    maxConnections: i(8192, 1, 1_000_000, 'Open connections beyond this get NO at once.'),
  },
  log: {
    level: e('info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'pino log level.'),
  },
} as const

export type Schema = typeof SCHEMA

type LeafValue<L> = L extends { type: 'string' }
  ? string
  : L extends { type: 'int' }
    ? number
    : L extends { type: 'bool' }
      ? boolean
      : L extends { type: 'enum'; values: readonly (infer V)[] }
        ? V
        : L extends { type: 'list' }
          ? readonly string[]
          : L extends { type: 'map' }
            ? Readonly<Record<string, string>>
            : L extends { type: 'mapList' }
              ? Readonly<Record<string, readonly string[]>>
              : never

/** The validated, frozen configuration. */
export type Config = {
  readonly [S in keyof Schema]: { readonly [K in keyof Schema[S]]: LeafValue<Schema[S][K]> }
}
