/**
 * Reading the files a test realm's KDCs append to (logs), without failing on missing ones.
 */
import { open } from 'node:fs/promises'

export async function fileSize(path: string): Promise<number> {
  try {
    const h = await open(path, 'r')
    try {
      return (await h.stat()).size
    } finally {
      await h.close()
    }
  } catch {
    return 0
  }
}

export async function readFrom(path: string, offset: number): Promise<Buffer> {
  let h: Awaited<ReturnType<typeof open>>
  try {
    h = await open(path, 'r')
  } catch {
    return Buffer.alloc(0)
  }
  try {
    const size = (await h.stat()).size
    if (size <= offset) return Buffer.alloc(0)
    const buf = Buffer.alloc(size - offset)
    const { bytesRead } = await h.read(buf, 0, buf.length, offset)
    return buf.subarray(0, bytesRead)
  } finally {
    await h.close()
  }
}
