/**
 * Outbox accept throughput, for bench/ to call: `n` sequential accepts (each waits for its own
 * write and fdatasync) against `n` accepts issued by 64 concurrent senders (group commit: one
 * write and one fdatasync for every accept waiting). The numbers depend on the storage's
 * fdatasync latency far more than on the CPU: an SD card on a Pi is much slower than an SSD.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Outbox } from './outbox.js'

/** Concurrent senders in the concurrent run. */
export const BENCH_CONCURRENCY = 64
/** Payload bytes of each benchmark message. */
export const BENCH_PAYLOAD_BYTES = 128

const TO = 'ab'.repeat(16)

async function run(parent: string, n: number, concurrency: number): Promise<number> {
  const dir = await mkdtemp(join(parent, 'outbox-bench-'))
  try {
    const ob = await Outbox.open(dir, { maxMessages: n + 1, maxBytes: (n + 1) * BENCH_PAYLOAD_BYTES, defaultTtlMs: 3_600_000 })
    const payload = Buffer.alloc(BENCH_PAYLOAD_BYTES, 0x5a)
    await ob.accept({ to: TO, type: 1, payload }) // warm-up: file created, code paths compiled
    let next = 1
    const t0 = process.hrtime.bigint()
    await Promise.all(
      Array.from({ length: Math.min(concurrency, n) }, async () => {
        while (next <= n) {
          next++
          await ob.accept({ to: TO, type: 1, payload })
        }
      }),
    )
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    await ob.close()
    return n / seconds
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Accepts per second into an outbox under `dir` (a fresh subdirectory for each run, removed
 * afterwards): `acceptPerS` one at a time, `concurrentAcceptPerS` with 64 accepts in flight.
 */
export async function benchOutbox(dir: string, n: number): Promise<{ acceptPerS: number; concurrentAcceptPerS: number }> {
  if (!Number.isSafeInteger(n) || n < 1) throw new TypeError(`benchOutbox: n must be a positive integer, got ${n}`)
  const acceptPerS = await run(dir, n, 1)
  const concurrentAcceptPerS = await run(dir, n, BENCH_CONCURRENCY)
  return { acceptPerS, concurrentAcceptPerS }
}
