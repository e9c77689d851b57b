/**
 * The process logger: pino, JSON lines on stderr (journald, Kubernetes).
 *
 * A log line must never cost an answer: when stderr cannot take a line (disk full behind a
 * file redirect, a closed pipe), pino's default destination throws or retries forever and
 * the process stops answering. Here writes are synchronous and small, and a failed write is
 * counted and dropped.
 *
 * Under systemd, when stderr is the journal (`JOURNAL_STREAM` names stderr's device and
 * inode), each line starts with the sd-daemon level prefix `<3>`..`<7>`, which journald
 * (`SyslogLevelPrefix=yes`, its default) turns into the entry's PRIORITY and strips: so
 * `journalctl -p warning -u saslgate` shows the warnings and errors. Anywhere else (a file,
 * Kubernetes' log collector) the lines stay plain JSON.
 */
import { fstatSync } from 'node:fs'
import { type DestinationStream, type Logger, pino } from 'pino'

let dropped = 0

/** Log lines lost because stderr refused them (disk full, closed pipe). */
export function droppedLogLines(): number {
  return dropped
}

/** pino level number -> syslog priority (sd-daemon.h: SD_CRIT 2 .. SD_DEBUG 7). */
export function syslogPriority(pinoLevel: number): number {
  if (pinoLevel >= 60) return 2 // fatal: crit
  if (pinoLevel >= 50) return 3 // error: err
  if (pinoLevel >= 40) return 4 // warn: warning
  if (pinoLevel >= 30) return 6 // info: info (saslgate has no "notice")
  return 7 // debug, trace
}

/**
 * True when file descriptor `fd` is the stream systemd named in `JOURNAL_STREAM`
 * (`DEVICE:INODE`, systemd.exec(5)): a redirect to a file or a pipe in between says no.
 */
export function isJournalStream(env: NodeJS.ProcessEnv = process.env, fd = 2): boolean {
  const named = env.JOURNAL_STREAM
  if (named === undefined || !/^\d+:\d+$/.test(named)) return false
  try {
    const st = fstatSync(fd, { bigint: true })
    return named === `${st.dev}:${st.ino}`
  } catch {
    return false
  }
}

/** Prefixes each line with `<N>`; pino tells the stream each line's level (its metadata API). */
function levelPrefixed(inner: DestinationStream): DestinationStream {
  const stream = {
    [Symbol.for('pino.metadata')]: true,
    lastLevel: 30,
    write(line: string) {
      inner.write(`<${syslogPriority(stream.lastLevel)}>${line}`)
    },
  }
  return stream
}

export interface LoggerOptions {
  /** Write the journald level prefix; default: when stderr is the journal. */
  journal?: boolean
  /** Where lines go (tests); default stderr. */
  destination?: DestinationStream
}

export function createLogger(level: string, role: string, options: LoggerOptions = {}): Logger {
  let destination = options.destination
  if (destination === undefined) {
    const fd2 = pino.destination({ dest: 2, sync: true, minLength: 0, maxLength: 1 << 20 })
    fd2.on('error', () => {
      dropped++
    })
    fd2.on('drop', () => {
      dropped++
    })
    destination = fd2
  }
  const journal = options.journal ?? isJournalStream()
  return pino({ level, base: { role } }, journal ? levelPrefixed(destination) : destination)
}
