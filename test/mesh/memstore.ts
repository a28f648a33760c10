// Temporary in-memory stores for debugging the mesh before appliance/store lands.
import { randomBytes } from 'node:crypto'
import type { MeshInbox, MeshInboxMessage, MeshOutbox, MeshOutboxMessage } from '../../appliance/mesh/node.js'
export function memStores(): { outbox: MeshOutbox; inbox: MeshInbox } {
  const q = new Map<string, MeshOutboxMessage>()
  const seen = new Set<string>()
  const msgs: MeshInboxMessage[] = []
  let cursor = 0
  const outbox: MeshOutbox = {
    async accept(m) {
      const msg = { id: randomBytes(16).toString('hex'), to: m.to, type: m.type, flags: m.flags ?? 0, payload: m.payload, acceptedAt: Date.now(), expiresAt: Date.now() + (m.ttlMs ?? 60000), attempts: 0 }
      q.set(msg.id, msg)
      return msg
    },
    pending: (to) => [...q.values()].filter((m) => to === undefined || m.to === to),
    get: (id) => q.get(id),
    attempted(id) { const m = q.get(id); if (m) m.attempts++ },
    async delivered(id) { return q.delete(id) },
    async expire() { const now = Date.now(); const out = [...q.values()].filter((m) => m.expiresAt <= now); for (const m of out) q.delete(m.id); return out },
    stats: () => ({ messages: q.size }),
  }
  const inbox: MeshInbox = {
    async accept(m) {
      const k = m.from + m.id
      if (seen.has(k)) return { fresh: false, message: msgs.find((x) => x.id === m.id && x.from === m.from)! }
      seen.add(k)
      const message = { ...m, cursor: ++cursor, receivedAt: Date.now() }
      msgs.push(message)
      return { fresh: true, message }
    },
    list: (since, limit) => msgs.filter((m) => m.cursor > since).slice(0, limit),
    stats: () => ({ messages: msgs.length }),
  }
  return { outbox, inbox }
}
