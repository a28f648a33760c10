/**
 * Capture taps of the raw NIC links: a second libpcap handle (`cap`) on the link's interface with
 * a BPF filter for kairo-gw's own traffic, so that a capture sees exactly what the NIC carried,
 * both ways (Linux hands outgoing frames of every socket to packet sockets too), without
 * touching the link's own handle or its send path.
 */
import type { TapHandle, TapPacket } from '../link.js'
import { loadCap } from './native.js'

export interface LibpcapTapOptions {
  interface: string
  /** BPF filter, libpcap syntax (recorded in the capture's if_filter). */
  filter: string
  /** Direction of a captured frame, from its bytes (e.g. source MAC = ours → out). */
  direction(frame: Buffer): 'in' | 'out'
  /** Receives each frame (a fresh buffer) with the interface index 0. */
  sink(p: TapPacket): void
  /** Kernel buffer of the handle, bytes. */
  bufferBytes?: number
  onError?(err: Error): void
}

/** Opens the handle; rejects with libpcap's message naming the interface. */
export async function openLibpcapTap(o: LibpcapTapOptions): Promise<TapHandle & { linktype: string }> {
  const { Cap } = await loadCap()
  const cap = new Cap()
  const buf = Buffer.alloc(65_536)
  let linktype: string
  try {
    linktype = cap.open(o.interface, o.filter, o.bufferBytes ?? 4 * 1024 * 1024, buf)
  } catch (err) {
    throw new Error(`capture: libpcap cannot open interface ${o.interface} with filter '${o.filter}': ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  let open = true
  cap.on('packet', (bytes: number) => {
    if (!open) return
    const frame = Buffer.from(buf.subarray(0, bytes))
    o.sink({ iface: 0, dir: o.direction(frame), data: frame })
  })
  cap.on('error', (err: Error) => o.onError?.(err))
  return {
    linktype,
    stop: async () => {
      if (!open) return
      open = false
      try {
        cap.close()
      } catch {
        // already closed (the interface went away)
      }
    },
  }
}
