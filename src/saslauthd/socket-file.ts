/**
 * The unix socket file: stale-socket detection before listening, permissions after, removal
 * on close (only if the file is still ours).
 */
import { execFile } from 'node:child_process'
import { accessSync, constants, statSync } from 'node:fs'
import { chmod, chown, lstat, readFile, unlink } from 'node:fs/promises'
import { connect } from 'node:net'
import { dirname } from 'node:path'
import { SaslgateError } from '../errors.js'

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err
    ? String((err as { code: unknown }).code)
    : undefined
}

/** Longest unix socket path (sun_path is 108 bytes on Linux, one for the NUL). */
const MAX_SOCKET_PATH_BYTES = 107

/**
 * Why a socket path cannot be used, for the operator: the errno and what to do about it.
 * `what` starts the message (`cannot listen on PATH`).
 */
export function socketPathError(what: string, path: string, err: unknown): SaslgateError {
  const dir = dirname(path)
  let code = errnoOf(err) ?? 'error'
  // Node reports a unix socket bind into a missing directory as EACCES: ask the directory.
  if (code === 'EACCES' || code === 'ENOENT') code = directoryProblem(dir) ?? code
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined
  let hint: string
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES)
    hint = `unix socket paths are limited to ${MAX_SOCKET_PATH_BYTES} bytes; choose a shorter one`
  else if (code === 'ENOENT')
    hint = `the directory ${dir} does not exist: create it (systemd: RuntimeDirectory= in the unit, as the shipped units do; by hand: install -d -m 0750 -g sasl ${dir})`
  else if (code === 'EACCES' || code === 'EPERM')
    hint = `this process${uid !== undefined ? ` (uid ${uid})` : ''} may not create files in ${dir}: run as its owner or a member of its group with group write (Debian's /run/saslauthd: group sasl), or use a directory of its own`
  else if (code === 'ENOTDIR') hint = `a component of ${dir} is not a directory`
  else if (code === 'EROFS')
    hint = `${dir} is on a read-only file system (systemd ProtectSystem=strict: list it in ReadWritePaths= or use RuntimeDirectory=)`
  else hint = (err as Error | undefined)?.message ?? String(err)
  return new SaslgateError('SASLGATE_ERR_SOCKET_PATH', `${what}: ${code}: ${hint}`, { cause: err })
}

/** ENOENT, ENOTDIR or EACCES for a directory a socket cannot be created in; undefined if fine. */
function directoryProblem(dir: string): string | undefined {
  try {
    if (!statSync(dir).isDirectory()) return 'ENOTDIR'
    accessSync(dir, constants.W_OK | constants.X_OK)
    return undefined
  } catch (e) {
    return errnoOf(e)
  }
}

/** Resolves to true if a process accepts connections on `path`, false if refused (stale). */
export function probeSocket(path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const sock = connect({ path })
    const timer = setTimeout(() => {
      // Connect did not complete: something holds the socket but is not accepting (backlog
      // full); treat it as live rather than stealing the path from a running process.
      sock.destroy()
      resolve(true)
    }, timeoutMs)
    timer.unref()
    sock.once('connect', () => {
      clearTimeout(timer)
      sock.destroy()
      resolve(true)
    })
    sock.once('error', (err) => {
      clearTimeout(timer)
      sock.destroy()
      const code = errnoOf(err)
      if (code === 'ECONNREFUSED') resolve(false)
      else if (code === 'ENOENT') resolve(false)
      else reject(err)
    })
  })
}

/**
 * Makes `path` ready to listen on: absent is fine; a stale socket (connection refused) is
 * removed; a live socket or anything that is not a socket is refused.
 */
export async function prepareSocketPath(path: string, probeTimeoutMs: number): Promise<void> {
  let st: Awaited<ReturnType<typeof lstat>>
  try {
    st = await lstat(path)
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return
    throw socketPathError(`cannot inspect socket path ${path}`, path, err)
  }
  if (!st.isSocket()) {
    throw new SaslgateError(
      'SASLGATE_ERR_SOCKET_PATH',
      `socket path ${path} exists and is not a socket; refusing to replace it`,
    )
  }
  let live: boolean
  try {
    live = await probeSocket(path, probeTimeoutMs)
  } catch (err) {
    throw new SaslgateError('SASLGATE_ERR_SOCKET_PATH', `cannot probe socket ${path}`, {
      cause: err,
    })
  }
  if (live) {
    throw new SaslgateError(
      'SASLGATE_ERR_SOCKET_IN_USE',
      `another process answers on ${path}; refusing to start (saslauthd still running? ` +
        'systemctl stop saslauthd && systemctl mask saslauthd; or another saslgate on that path)',
    )
  }
  try {
    await unlink(path)
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') {
      throw socketPathError(`cannot remove stale socket ${path}`, path, err)
    }
  }
}

function getentGroup(name: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    execFile('getent', ['group', name], { timeout: timeoutMs }, (err, stdout) => {
      if (err) return resolve(undefined)
      const gid = Number(String(stdout).split(':')[2])
      resolve(Number.isInteger(gid) && gid >= 0 ? gid : undefined)
    })
  })
}

/** A group name or id to a gid: /etc/group first, then `getent group` (NSS). */
export async function resolveGroupId(group: string | number, timeoutMs = 2000): Promise<number> {
  if (typeof group === 'number') {
    if (Number.isInteger(group) && group >= 0) return group
  } else if (/^\d+$/.test(group)) {
    return Number(group)
  } else {
    let text = ''
    try {
      text = await readFile('/etc/group', 'utf8')
    } catch {
      // fall through to getent
    }
    for (const line of text.split('\n')) {
      const [name, , gid] = line.split(':')
      if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid)
    }
    const gid = await getentGroup(group, timeoutMs)
    if (gid !== undefined) return gid
  }
  throw new SaslgateError('SASLGATE_ERR_CONFIG', `socketGroup: unknown group ${String(group)}`)
}

/** chmod (and chgrp when a group is given) the socket file; returns its inode. */
export async function applySocketPermissions(
  path: string,
  mode: number,
  group: string | number | undefined,
): Promise<number> {
  try {
    await chmod(path, mode)
    if (group !== undefined) await chown(path, -1, await resolveGroupId(group))
    return (await lstat(path)).ino
  } catch (err) {
    if (err instanceof SaslgateError) throw err
    throw socketPathError(`cannot set permissions on ${path}`, path, err)
  }
}

/** Removes the socket file if it is still the one we created (same inode). Never throws. */
export async function removeSocketFile(path: string, ino: number | undefined): Promise<void> {
  try {
    const st = await lstat(path)
    if (!st.isSocket() || (ino !== undefined && st.ino !== ino)) return
    await unlink(path)
  } catch {
    // already gone, or not ours to remove
  }
}
