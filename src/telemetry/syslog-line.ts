/**
 * `log.syslog`: one line per decision in the syslog `auth` facility, like saslauthd's
 * `auth success: [user=...]` / `auth failure: [user=...]` lines in /var/log/auth.log.
 *
 * What was chosen and why: Node's dgram has no unix datagram sockets, so saslgate cannot
 * send to /dev/log itself, and a native syslog(3) call would block the event loop whenever
 * the log socket's queue is full (in a storm, when the lines matter most). Instead each
 * line goes to stdout as `<PRI>saslgate[PID]: MESSAGE` (RFC 3164's PRI and TAG; no timestamp
 * or host, the receiver adds them). Under systemd, journald reads the `<PRI>` prefix of a
 * stdout line (SyslogLevelPrefix=yes, its default) as facility and level: the entry gets
 * SYSLOG_FACILITY=4 (auth), and rsyslog's journal import files it under auth.* as it did
 * saslauthd's. Elsewhere stdout carries the same text; `| logger --prio-prefix -t saslgate`
 * sends it to syslog.
 *
 * Never a password; the user as `telemetry.principals` says (plain, keyed hash, omitted).
 */
import { pino } from 'pino'
import type { Decision } from '../errors.js'

/** LOG_AUTH (4) << 3. */
const AUTH_FACILITY = 4 << 3
const LEVEL: Record<Decision, number> = {
  ok: 6, // info
  invalid: 5, // notice
  unavailable: 4, // warning: the user could not be checked at all
}

export interface SyslogDecision {
  decision: Decision
  reason: string
  /** The principal label (`telemetry.principals`); undefined: left out. */
  user?: string | undefined
  service?: string | undefined
}

/** Characters a log reader could mistake for a new line or a field end. */
function clean(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are the point
  return value.replace(/[\u0000-\u001f\u007f\]]/g, '?')
}

export function syslogDecisionLine(e: SyslogDecision, pid = process.pid): string {
  const pri = AUTH_FACILITY + LEVEL[e.decision]
  const what =
    e.decision === 'ok'
      ? 'auth success'
      : e.decision === 'invalid'
        ? 'auth failure'
        : 'auth unavailable'
  const fields = [
    ...(e.user !== undefined ? [`[user=${clean(e.user)}]`] : []),
    ...(e.service !== undefined ? [`[service=${clean(e.service)}]`] : []),
    '[mech=kerberos5]',
    `[reason=${clean(e.reason)}]`,
  ]
  return `<${pri}>saslgate[${pid}]: ${what}: ${fields.join(' ')}\n`
}

/** Writes lines to stdout, synchronously; a line stdout refuses is dropped, never waited on. */
export function stdoutSyslogSink(): (line: string) => void {
  const out = pino.destination({ dest: 1, sync: true, minLength: 0 })
  out.on('error', () => {})
  return (line) => {
    try {
      out.write(line)
    } catch {
      // dropped: a log line must never cost an answer
    }
  }
}
