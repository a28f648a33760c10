/**
 * Helpers of the physical-control tests: is kairo-hw built, and FIFOs that stand in for a device
 * fd (pollable, readable and writable from both ends) so that the addon's parsers of kernel
 * records can be fed exact bytes on a machine without the device.
 */
import { spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { hw, type KairoHw } from '../../drivers/physical/native.js'
import { requirePart } from '../lib/parts.js'

/** The addon, or undefined with `t` skipped (failed under KAIRO_REQUIRE_ALL=1). */
export function requireHw(t: Test): KairoHw | undefined {
  let why = ''
  try {
    return hw()
  } catch (err) {
    why = (err as Error).message
  }
  requirePart(t as unknown as Parameters<typeof requirePart>[0], false, why)
  return undefined
}

/** A FIFO in a fresh directory, removed at t's teardown. `writer()` opens its write end. */
export function fifo(t: Test): { path: string; writer: () => number } {
  const dir = mkdtempSync(join(tmpdir(), 'kairo-hw-'))
  const path = join(dir, 'dev')
  const r = spawnSync('mkfifo', [path])
  if (r.status !== 0) throw new Error(`mkfifo ${path} failed: ${r.stderr}`)
  const fds: number[] = []
  t.teardown(() => {
    for (const fd of fds) {
      try {
        closeSync(fd)
      } catch {
        // already closed by the test
      }
    }
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    path,
    writer: () => {
      // O_RDWR: opening never blocks waiting for a reader, and the FIFO stays open while we hold it.
      const fd = openSync(path, 'r+')
      fds.push(fd)
      return fd
    },
  }
}

/** struct rfkill_event (8 bytes) or, with `reasons`, the 9-byte extended one. */
export function rfkillEventBytes(e: { index: number; type: number; op: number; soft: boolean; hard: boolean; reasons?: number }): Buffer {
  const b = Buffer.alloc(e.reasons === undefined ? 8 : 9)
  b.writeUInt32LE(e.index, 0)
  b[4] = e.type
  b[5] = e.op
  b[6] = e.soft ? 1 : 0
  b[7] = e.hard ? 1 : 0
  if (e.reasons !== undefined) b[8] = e.reasons
  return b
}

/** struct gpio_v2_line_event (48 bytes, little-endian as on every Linux the gateway runs on). */
export function gpioEventBytes(e: { timestampNs: bigint; id: number; offset: number; seqno: number; lineSeqno: number }): Buffer {
  const b = Buffer.alloc(48)
  b.writeBigUInt64LE(e.timestampNs, 0)
  b.writeUInt32LE(e.id, 8)
  b.writeUInt32LE(e.offset, 12)
  b.writeUInt32LE(e.seqno, 16)
  b.writeUInt32LE(e.lineSeqno, 20)
  return b
}
