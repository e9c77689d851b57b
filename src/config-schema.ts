import { DEFAULT_ENCTYPES } from './kerberos/enctypes.js'
import { DEFAULT_VERIFIER_OPTIONS as V } from './kerberos/verifier.js'
import { DEFAULT_PIPELINE_OPTIONS as P } from './pipeline/pipeline.js'

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
const list = (doc: string, def: readonly string[] = []) =>
  ({ type: 'list', default: def, doc }) as const
const map = (doc: string) =>
  ({ type: 'map', default: {} as Readonly<Record<string, string>>, doc }) as const
const mapList = (doc: string) =>
  ({ type: 'mapList', default: {} as Readonly<Record<string, readonly string[]>>, doc }) as const

export const SCHEMA = {
  realm: {
    default: s('', 'Realm for logins without a domain; empty: `default_realm` from krb5.conf.'),
    allowed: list('Realms logins may map to; empty: just the default realm.'),
    domainRealms: map('Mail domain -> realm, e.g. `{example.edu: EXAMPLE.EDU}`.'),
    allowInstances: b(
      false,
      'Accept logins with a `/` instance (`user/admin`); off like most sites want.',
    ),
  },
  kerberos: {
    config: s(
      '',
      'krb5.conf to read KDCs and default_realm from; empty: `KRB5_CONFIG`, else /etc/krb5.conf.',
    ),
    keytab: s('', 'Keytab with the verify principal; empty: `KRB5_KTNAME`, else /etc/krb5.keytab.'),
    verifyPrincipal: s(
      '',
      'Service principal tickets are verified against; empty: `host/<canonical hostname>` as libkrb5 makes it, like saslauthd.',
    ),
    serviceTicketVia: e(
      'as',
      ['as', 'tgs'],
      '`as`: service ticket in the AS exchange (2 round trips); `tgs`: separate TGS exchange (3).',
    ),
    kdcs: mapList('Realm -> KDC list (`host[:port]`); overrides krb5.conf `[realms] kdc`.'),
    primaryKdcs: mapList(
      'Realm -> primary KDCs (`host[:port]`) for `kerberos.retryOnPrimary`; overrides krb5.conf `primary_kdc` (or `master_kdc`).',
    ),
    retryOnPrimary: b(
      V.retryOnPrimary,
      "Redo a replica's wrong-password or unknown-user verdict once on the primary KDC, as libkrb5 does; costs a second budget unit.",
    ),
    udpAttemptTimeoutMs: i(
      400,
      20,
      30_000,
      'Wait for one KDC over UDP before trying the next; raise for distant KDCs.',
    ),
    tcpAttemptTimeoutMs: i(1000, 20, 30_000, 'Wait for one KDC over TCP before trying the next.'),
    enctypes: list(
      'Enctypes the AS exchange may use, by MIT name, preferred first; a KDC hint offering none is refused.',
      DEFAULT_ENCTYPES,
    ),
    requireDefaultSalt: b(
      false,
      "Refuse KDC hints whose salt is not the principal's default (realm+name); on when no principal has a special salt.",
    ),
    maxS2kIterations: i(
      0,
      0,
      16_777_215,
      'Most PBKDF2 iterations a KDC reply may ask: 0 = 4x the enctype default (16384 AES-SHA1, 131072 AES-SHA2); N = N for all.',
    ),
    deriveKeys: b(
      true,
      'Derive AES keys with OpenSSL (node:crypto) instead of libk5crypto: ~3x less CPU per check.',
    ),
    breakerResetTimeoutMs: i(
      5000,
      100,
      600_000,
      'How long an open KDC breaker waits before a half-open probe.',
    ),
    breakerVolumeThreshold: i(
      3,
      1,
      1000,
      'Failures needed in the window before a KDC breaker may open.',
    ),
    breakerErrorThresholdPercentage: i(
      50,
      1,
      100,
      'Failure percentage in the window that opens a KDC breaker.',
    ),
  },
  saslauthd: {
    socket: s('', 'saslauthd socket path to serve (e.g. /run/saslauthd/mux); empty: no socket.'),
    socketMode: s(
      '0777',
      'Socket file mode (octal); saslauthd uses 0777 and relies on the directory (root:sasl 0710).',
    ),
    socketGroup: s('', 'Group for the socket file; empty: leave as created.'),
    fields: e(
      'auto',
      ['auto', '4', '5'],
      'Request form: 4 fields (libsasl2 2.1.x), 5 (with client address), or detect.',
    ),
    readTimeoutMs: i(
      5000,
      50,
      600_000,
      'A client that has not sent a whole request by then is answered NO and closed.',
    ),
    answerDeadlineMs: i(
      2000,
      50,
      600_000,
      'Hard bound on every answer: NO at this deadline whatever is going on.',
    ),
    maxConnections: i(8192, 1, 1_000_000, 'Open connections beyond this get NO at once.'),
  },
  pipeline: {
    deadlineMs: i(
      P.deadlineMs,
      100,
      60_000,
      'Bound on one decision; keep it below the front door deadline (saslauthd.answerDeadlineMs).',
    ),
    answerReserveMs: i(
      P.answerReserveMs,
      0,
      10_000,
      'Time kept after giving up on the KDC to answer; raise on a loaded event loop.',
    ),
    positiveTtlMs: i(
      P.positiveTtlMs,
      0,
      7 * 24 * 3_600_000,
      'Known-good passwords answer OK this long without a KDC; lower to honour password changes sooner.',
    ),
    negativeTtlMs: i(
      P.negativeTtlMs,
      0,
      24 * 3_600_000,
      'Known-bad passwords answer NO this long without a KDC; raise against slow dictionaries.',
    ),
    maxPositiveEntries: i(
      P.maxPositiveEntries,
      0,
      10_000_000,
      'Positive cache bound (entries, ~200 bytes each); raise above your active user count.',
    ),
    maxNegativeEntries: i(
      P.maxNegativeEntries,
      0,
      10_000_000,
      'Negative cache bound (entries); raise when storms replay larger dictionaries.',
    ),
    offlineMaxStalenessMs: i(
      P.offlineMaxStalenessMs,
      0,
      30 * 24 * 3_600_000,
      'Oldest positive verdict that still lets a user in when no KDC answers; 0 disables offline OKs.',
    ),
    staleOkOnUnavailable: b(
      P.staleOkOnUnavailable,
      'Also let known-good credentials in when one KDC check fails (timeout, shed); off = strict.',
    ),
    guardWindowMs: i(
      P.guardWindowMs,
      1000,
      24 * 3_600_000,
      'Failure-count window per principal; keep >= the KDC policy failurecountinterval.',
    ),
    guardThreshold: i(
      P.guardThreshold,
      1,
      1000,
      'Failures in the window before a principal backs off; lower for stricter blocking.',
    ),
    guardBackoffBaseMs: i(
      P.guardBackoffBaseMs,
      1,
      3_600_000,
      'First backoff of a blocked principal.',
    ),
    guardBackoffFactor: i(P.guardBackoffFactor, 1, 16, 'Backoff growth per further failure.'),
    guardBackoffMaxMs: i(P.guardBackoffMaxMs, 1, 24 * 3_600_000, 'Longest backoff.'),
    maxKdcFailuresPerWindow: i(
      P.maxKdcFailuresPerWindow,
      1,
      1000,
      'Unknown passwords sent to the KDC per principal per window; keep BELOW the KDC maxfailure.',
    ),
    guardMaxPrincipals: i(
      P.guardMaxPrincipals,
      100,
      10_000_000,
      'Principals tracked in memory by the guard; raise for very large sites.',
    ),
    maxKdcInFlight: i(
      P.maxKdcInFlight,
      1,
      10_000,
      'KDC checks in flight at once; raise with KDC capacity (~1,000 checks/s per krb5kdc).',
    ),
    maxQueue: i(
      P.maxQueue,
      0,
      1_000_000,
      'Requests waiting for a KDC slot; beyond this they are shed as unavailable.',
    ),
    minCheckMs: i(
      P.minCheckMs,
      0,
      60_000,
      'Shortest useful KDC check; with less time left a request is shed at once. Raise for distant KDCs.',
    ),
    initialCheckEstimateMs: i(
      P.initialCheckEstimateMs,
      1,
      60_000,
      'First guess of a check duration before any was measured.',
    ),
    kdcStartSpacingMaxMs: i(
      P.kdcStartSpacingMaxMs,
      0,
      10_000,
      'Longest gap kept between two KDC check starts (spreads bursts); 0 starts checks at once.',
    ),
    cleanPasswordKdcReserve: i(
      P.cleanPasswordKdcReserve,
      0,
      1000,
      'Of maxKdcFailuresPerWindow, KDC checks kept for passwords tried nowhere else: lets users under attack log in for the first time; 0 off.',
    ),
    cleanReserveHoldMs: i(
      P.cleanReserveHoldMs,
      0,
      10_000,
      'A clean password waits this long before taking the reserve (a spray shows on a second principal meanwhile).',
    ),
    sprayPrincipals: i(
      P.sprayPrincipals,
      2,
      1000,
      'A password tried on this many principals within the guard window is a spray, never clean.',
    ),
    suspectAddressFailures: i(
      P.suspectAddressFailures,
      1,
      1_000_000,
      'Failed logins from one client address (5-field frames) in the window that make its passwords not clean.',
    ),
  },
  service: {
    listen: s(
      '127.0.0.1:8443',
      'HOST:PORT of the RPC endpoint (`--listen`); TLS when `tlsCert` is set, else plain HTTP/1.1 and h2c.',
    ),
    adminListen: s(
      '',
      'HOST:PORT serving only /healthz, /readyz and /metrics over plain HTTP (probes, scrapes); empty: none.',
    ),
    tokenFile: s(
      '',
      'File with bearer tokens callers may send (one per line, >= 32 chars); empty: no token auth.',
    ),
    tlsCert: s('', 'PEM certificate chain of the service; with `tlsKey` turns TLS on.'),
    tlsKey: s('', 'PEM private key of the service (a file: never a flag value).'),
    clientCa: s(
      '',
      'PEM CA bundle: callers presenting a certificate it signed are authenticated (mTLS).',
    ),
    clientNames: list(
      'Allowed client certificate names (CN or DNS SAN); empty: any certificate from `clientCa`.',
    ),
    negotiate: b(false, 'Accept HTTP Negotiate (SPNEGO/Kerberos) from the shims.'),
    negotiatePrincipal: s(
      '',
      'Acceptor principal for Negotiate, e.g. `HTTP/saslgate.example.org`; required with `negotiate` (only its keys key the session tokens).',
    ),
    negotiateKeytab: s('', 'Keytab for Negotiate; empty: `kerberos.keytab`.'),
    negotiateAllow: list(
      'Client principals allowed via Negotiate (`host/fe1.example.org@EXAMPLE.ORG`); required with `negotiate`.',
    ),
    sessionTtlMs: i(
      600_000,
      10_000,
      24 * 3_600_000,
      'Lifetime of the session token a Negotiate exchange earns; shorter revokes faster, costs more exchanges.',
    ),
    drainTimeoutMs: i(
      10_000,
      0,
      600_000,
      'On SIGTERM: readiness goes false, then in-flight RPCs get this long before the process exits.',
    ),
    readyKdcWindowMs: i(
      60_000,
      1_000,
      3_600_000,
      '/readyz is ready while a KDC of the default realm answered this recently (a probe asks when idle), or offline mode has a known-good user.',
    ),
    readyDelayMs: i(
      0,
      0,
      60_000,
      'On SIGTERM: keep serving while reporting not ready this long (lets load balancers notice).',
    ),
    bodyLimitBytes: i(
      8192,
      256,
      1_048_576,
      'Largest RPC body accepted; larger gets `resource_exhausted` (HTTP 429).',
    ),
    maxConnections: i(10_000, 1, 1_000_000, 'Open connections beyond this are refused.'),
    insecure: b(
      false,
      'Allow plain HTTP (no `tlsCert`) on a non-loopback `listen` address: only behind a TLS-terminating proxy or mesh.',
    ),
  },
  shim: {
    adminListen: s(
      '',
      'HOST:PORT serving /healthz, /readyz and /metrics of the shim over plain HTTP; empty: none.',
    ),
    upstreams: list(
      'Service URLs (`https://saslgate.example.org:8443`); a name resolving to several addresses spreads over all.',
    ),
    tokenFile: s('', 'File holding the bearer token the shim presents; empty: none.'),
    ca: s('', 'PEM CA bundle to verify the service certificate; empty: the system CAs.'),
    tlsCert: s('', 'PEM client certificate the shim presents (mTLS).'),
    tlsKey: s('', 'PEM private key of the client certificate.'),
    negotiateService: s(
      '',
      'Use Negotiate: the service principal as `HTTP@saslgate.example.org`; empty: no Negotiate.',
    ),
    clientKeytab: s(
      '',
      'Keytab the shim authenticates with for Negotiate; empty: `KRB5_CLIENT_KTNAME`, else /etc/krb5.keytab.',
    ),
    deadlineMs: i(
      1900,
      50,
      60_000,
      'End-to-end bound of one RPC including failover; keep below `saslauthd.answerDeadlineMs`.',
    ),
    attemptTimeoutMs: i(
      600,
      10,
      60_000,
      'A replica silent this long gets the request sent to another one too (hedged), first answer wins.',
    ),
    ejectMs: i(
      5000,
      100,
      600_000,
      'A replica that failed is skipped this long before it is tried again.',
    ),
    resolveIntervalMs: i(
      10_000,
      1000,
      3_600_000,
      'How often upstream names are re-resolved (pods come and go).',
    ),
    connectionMaxAgeMs: i(
      60_000,
      1000,
      3_600_000,
      'Connections are replaced after this, so load re-spreads across replicas behind one address.',
    ),
    maxConnectionsPerUpstream: i(
      256,
      1,
      100_000,
      'Connections open at once to one upstream address; requests beyond wait for one.',
    ),
    insecure: b(
      false,
      'Allow `http://` upstreams to hosts other than loopback (passwords in the clear): only over a trusted tunnel.',
    ),
  },
  state: {
    url: s(
      '',
      'Valkey/Redis URL for guard state shared by replicas (redis://host:6379/0); empty: in memory.',
    ),
    keyPrefix: s(
      'saslgate:guard:',
      'Prefix of every key; change it to share one Valkey between deployments.',
    ),
    callTimeoutMs: i(
      25,
      1,
      10_000,
      'Longest wait for one Valkey call before the guard answers from local memory.',
    ),
  },
  telemetry: {
    principals: e(
      'hash',
      ['plain', 'hash', 'omit'],
      'Principal names in traces and logs: as they are, as a keyed hash (`h:` + 16 hex), or left out.',
    ),
    principalKeyFile: s(
      '',
      'Key file for `hash` (>= 16 bytes; same key on every replica gives the same hash); empty: random per process.',
    ),
    decisionLogsPerSecond: i(
      20,
      1,
      100_000,
      'Decision log lines per second per reason; the rest are counted and summarised every 10 s.',
    ),
  },
  log: {
    level: e(
      'info',
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      'pino log level.',
    ),
    syslog: b(
      false,
      'One `auth success`/`auth failure` line per decision on stdout with a syslog `auth` PRI prefix (journald files it as facility auth), like saslauthd.',
    ),
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
