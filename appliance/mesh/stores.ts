/**
 * Opens the durable outbox and inbox of a gateway under `<dir>` (the state directory's `mesh/`).
 * The inbox remembers message IDs for twice the outbox TTL, so a sender that retries until its
 * TTL runs out can never get a message delivered twice.
 */
import { Outbox } from '../store/outbox.js'
import { Inbox } from '../store/inbox.js'

export interface StoreLimits {
  maxMessages: number
  maxBytes: number
  ttlMs: number
}

export async function openStores(dir: string, limits: StoreLimits): Promise<{ outbox: Outbox; inbox: Inbox; close(): Promise<void> }> {
  const outbox = await Outbox.open(dir, { maxMessages: limits.maxMessages, maxBytes: limits.maxBytes, defaultTtlMs: limits.ttlMs })
  const inbox = await Inbox.open(dir, { retainMs: 2 * limits.ttlMs, maxMessages: limits.maxMessages })
  return {
    outbox,
    inbox,
    async close() {
      await outbox.close()
      await inbox.close()
    },
  }
}
