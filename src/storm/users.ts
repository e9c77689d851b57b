/** Synthetic users and a password dictionary for the storm and the benchmarks. */
import type { Credential } from './load-engine.js'

/** `n` users `stormuser0001`... with distinct known passwords no dictionary word equals. */
export function makeUsers(n: number): Credential[] {
  const out: Credential[] = []
  for (let i = 1; i <= n; i++) {
    const id = String(i).padStart(4, '0')
    out.push({ login: `stormuser${id}`, password: `Legit-${id}-pass!` })
  }
  return out
}

const BASE = [
  '123456',
  'password',
  'qwerty',
  'letmein',
  'welcome',
  'admin',
  'iloveyou',
  'monkey',
  'dragon',
  'sunshine',
  'football',
  'princess',
  'master',
  'trustno1',
  'abc123',
  'shadow',
  'baseball',
  'superman',
  'michael',
  'secret',
]

/** `size` wrong passwords (common words with suffixes), repeated by the bots. */
export function makeDictionary(size: number): string[] {
  const out: string[] = []
  for (let i = 0; out.length < size; i++) {
    const word = BASE[i % BASE.length] as string
    const round = Math.floor(i / BASE.length)
    out.push(round === 0 ? word : `${word}${round}`)
  }
  return out
}

/** Random guesses: `share` of logins from `targets`, the rest unknown names. */
export function makeGuesses(
  targets: readonly string[],
  dictionary: readonly string[],
  count: number,
  rand: () => number,
  unknownShare = 0.5,
): Credential[] {
  const out: Credential[] = []
  for (let i = 0; i < count; i++) {
    const unknown = targets.length === 0 || rand() < unknownShare
    const login = unknown
      ? `nosuch${String(Math.floor(rand() * 5000)).padStart(4, '0')}`
      : (targets[Math.floor(rand() * targets.length)] as string)
    out.push({ login, password: dictionary[Math.floor(rand() * dictionary.length)] as string })
  }
  return out
}
