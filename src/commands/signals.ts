/**
 * SIGHUP for the long-running commands. Node's default for SIGHUP is to exit at once, without
 * a word and without draining: an operator's `systemctl reload` or `kill -HUP` out of habit
 * (saslauthd and most daemons take it) would drop every login in flight. Until a reload exists,
 * the signal is ignored with a log line saying so.
 */
import type { Logger } from 'pino'

/** Ignores SIGHUP with a warning per signal; returns the function that removes the handler. */
export function ignoreSighup(logger: Logger): () => void {
  const onHup = () =>
    logger.warn(
      { signal: 'SIGHUP' },
      'SIGHUP ignored: saslgate cannot reload its configuration yet; restart it to apply changes',
    )
  process.on('SIGHUP', onHup)
  return () => process.off('SIGHUP', onHup)
}
