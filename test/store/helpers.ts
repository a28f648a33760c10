/** Shared bits of the store tests: temporary directories, and a journal file wrapper that counts and fails on demand. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { JournalFile } from '../../appliance/store/journal.js'

/** A fresh temporary directory, removed when the test `t` ends. */
export function tempDir(t: { teardown(fn: () => void): void }, prefix = 'kairo-store-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Counts the calls on a journal file, keeps the image as of the last datasync, and can fail a write. */
export class FileSpy {
  writes = 0
  datasyncs = 0
  syncs = 0
  /** Bytes written since the last datasync, by position. */
  private unsynced: Array<{ position: number; bytes: Buffer }> = []
  /** What a datasync has made durable (positions as written). */
  synced = Buffer.alloc(0)
  /** When set, the next write writes this many bytes to the file, then throws ENOSPC. */
  failNextWriteAfter: number | undefined

  wrap = (file: JournalFile): JournalFile => ({
    write: async (buffer, offset, length, position) => {
      this.writes++
      if (this.failNextWriteAfter !== undefined) {
        const n = Math.min(this.failNextWriteAfter, length)
        this.failNextWriteAfter = undefined
        if (n > 0) await file.write(buffer, offset, n, position)
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
      }
      const r = await file.write(buffer, offset, length, position)
      this.unsynced.push({ position, bytes: Buffer.from(buffer.subarray(offset, offset + r.bytesWritten)) })
      return r
    },
    datasync: async () => {
      const pending = this.unsynced
      this.unsynced = []
      await file.datasync()
      this.datasyncs++
      for (const w of pending) {
        const end = w.position + w.bytes.length
        if (end > this.synced.length) {
          const grown = Buffer.alloc(end)
          this.synced.copy(grown)
          this.synced = grown
        }
        w.bytes.copy(this.synced, w.position)
      }
    },
    sync: async () => {
      this.syncs++
      await file.sync()
    },
    truncate: async (len) => {
      this.unsynced = []
      if (len < this.synced.length) this.synced = Buffer.from(this.synced.subarray(0, len))
      await file.truncate(len)
    },
    close: () => file.close(),
  })
}
