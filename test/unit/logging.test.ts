/** The journald level prefix and the syslog auth lines, on real file descriptors where it matters. */
import assert from 'node:assert/strict'
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { createLogger, isJournalStream, syslogPriority } from '../../src/logging.js'
import { syslogDecisionLine } from '../../src/telemetry/syslog-line.js'

function capture() {
  const lines: string[] = []
  return { lines, destination: { write: (s: string) => lines.push(s) } }
}

test('under the journal each line carries its sd-daemon level prefix; elsewhere plain JSON', () => {
  const j = capture()
  const log = createLogger('debug', 'test', { journal: true, destination: j.destination })
  log.error('e')
  log.warn('w')
  log.info('i')
  log.debug('d')
  log.fatal('f')
  assert.deepEqual(
    j.lines.map((l) => l.slice(0, l.indexOf('{'))),
    ['<3>', '<4>', '<6>', '<7>', '<2>'],
  )
  for (const l of j.lines) JSON.parse(l.slice(3)) // the rest is still one JSON object
  const p = capture()
  createLogger('info', 'test', { journal: false, destination: p.destination }).warn('w')
  assert.equal(p.lines[0]?.[0], '{')
  assert.equal(syslogPriority(10), 7)
})

test('JOURNAL_STREAM counts only when it names this very descriptor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'saslgate-journal-'))
  const fd = openSync(join(dir, 'f'), 'w')
  try {
    const st = fstatSync(fd, { bigint: true })
    assert.equal(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd), true)
    assert.equal(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }, fd), false)
    assert.equal(isJournalStream({}, fd), false)
    assert.equal(isJournalStream({ JOURNAL_STREAM: 'garbage' }, fd), false)
  } finally {
    closeSync(fd)
    rmSync(dir, { recursive: true, force: true })
  }
})

test('syslog decision lines: facility auth, level by decision, no field can break the line', () => {
  assert.equal(
    syslogDecisionLine({ decision: 'ok', reason: 'ok', user: 'h:0123456789abcdef' }, 42),
    '<38>saslgate[42]: auth success: [user=h:0123456789abcdef] [mech=kerberos5] [reason=ok]\n',
  )
  assert.match(
    syslogDecisionLine({ decision: 'invalid', reason: 'invalid_credentials' }, 1),
    /^<37>saslgate\[1\]: auth failure: \[mech=kerberos5\]/,
  )
  assert.match(
    syslogDecisionLine({ decision: 'unavailable', reason: 'kdc_unavailable' }, 1),
    /^<36>saslgate\[1\]: auth unavailable:/,
  )
  const forged = syslogDecisionLine(
    { decision: 'invalid', reason: 'x', user: 'bob] [reason=ok]\n<38>fake', service: 'imap\r' },
    1,
  )
  assert.equal(forged.split('\n').length, 2, 'one line')
  assert.ok(!forged.includes('bob] '), forged)
})
