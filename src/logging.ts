/**
 * The process logger: pino, JSON lines on stderr (journald, Kubernetes).
 *
 * A log line must never cost an answer: when stderr cannot take a line (disk full behind a
 * file redirect, a closed pipe), pino's default destination throws or retries forever and
 * the process stops answering. Here writes are synchronous and small, and a failed write is
 * counted and dropped.
 */
import { type Logger, pino } from 'pino'

let dropped = 0

/** Log lines lost because stderr refused them (disk full, closed pipe). */
export function droppedLogLines(): number {
  return dropped
}

export function createLogger(level: string, role: string): Logger {
  const destination = pino.destination({ dest: 2, sync: true, minLength: 0, maxLength: 1 << 20 })
  destination.on('error', () => {
    dropped++
  })
  destination.on('drop', () => {
    dropped++
  })
  return pino({ level, base: { role } }, destination)
}
