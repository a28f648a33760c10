/** Wire forms of the announce's UUID (16 bytes) and mesh IP (a big-endian 32-bit integer). */

/** 'a.b.c.d' → unsigned 32-bit integer; TypeError for anything else. */
export function ipToInt(ip: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip)
  if (m === null) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`)
  const parts = m.slice(1).map(Number)
  if (parts.some((p) => p > 255)) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`)
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0
}

export function intToIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
}

/** 16 bytes → the canonical lower-case UUID text. */
export function uuidFromBytes(b: Uint8Array): string {
  const h = Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
}

/** UUID text → 16 bytes; TypeError for anything else. */
export function uuidToBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '')
  if (!/^[0-9a-fA-F]{32}$/.test(hex) || !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(uuid)) throw new TypeError(`not a UUID: ${JSON.stringify(uuid)}`)
  return Buffer.from(hex, 'hex')
}
