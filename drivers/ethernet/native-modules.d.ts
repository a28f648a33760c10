/**
 * Types of the two native modules the raw Ethernet links load lazily (drivers/ethernet/native.ts).
 * Neither package ships types; only what the drivers use is declared.
 */
declare module 'cap' {
  import type { EventEmitter } from 'node:events'

  /** One libpcap capture handle (vendored cap 0.2.1 + kairo patches: drivers/ethernet/vendor/cap). */
  export class Cap extends EventEmitter {
    constructor()
    /**
     * Opens `device` in promiscuous, immediate mode with a BPF `filter`; captured frames are
     * copied into `buffer` and announced by `packet` (bytes, truncated). Returns the link type
     * ('ETHERNET' for Ethernet). Throws on failure. One open per Cap.
     */
    open(device: string, filter: string, bufSize: number, buffer: Buffer): string
    /** pcap_sendpacket(); throws with libpcap's message (e.g. "send: Network is down"). */
    send(buffer: Buffer, length?: number): void
    close(): boolean
    on(event: 'packet', listener: (bytes: number, truncated: boolean) => void): this
    on(event: 'error', listener: (err: Error) => void): this
    static deviceList(): Array<{ name: string; description?: string; addresses: Array<Record<string, string | undefined>> }>
    static findDevice(ip?: string): string | undefined
  }
  const cap: { Cap: typeof Cap }
  export default cap
}

declare module 'raw-socket' {
  import type { EventEmitter } from 'node:events'

  export interface SocketOptions {
    protocol?: number
    /** AddressFamily.IPv4 (1) or IPv6 (2). */
    addressFamily?: number
    /** Receive buffer for one datagram, bytes (default 4096). */
    bufferSize?: number
  }
  export class Socket extends EventEmitter {
    send(buffer: Buffer, offset: number, length: number, address: string, afterCallback: (error: Error | null, bytes: number) => void): this
    send(buffer: Buffer, offset: number, length: number, address: string, beforeCallback: () => void, afterCallback: (error: Error | null, bytes: number) => void): this
    setOption(level: number, option: number, value: number): void
    setOption(level: number, option: number, value: Buffer, length: number): void
    close(): this
    pauseRecv(): this
    resumeRecv(): this
    on(event: 'message', listener: (buffer: Buffer, source: string) => void): this
    on(event: 'error', listener: (err: Error) => void): this
    on(event: 'close', listener: () => void): this
  }
  export function createSocket(options?: SocketOptions): Socket
  export const AddressFamily: { IPv4: number; IPv6: number }
  export const SocketLevel: { SOL_SOCKET: number; IPPROTO_IP: number; IPPROTO_IPV6: number }
  export const SocketOption: Record<'SO_BROADCAST' | 'SO_RCVBUF' | 'SO_SNDBUF' | 'SO_BINDTODEVICE' | 'IP_HDRINCL' | 'IP_TTL' | 'IP_TOS', number>
  const raw: {
    createSocket: typeof createSocket
    AddressFamily: typeof AddressFamily
    SocketLevel: typeof SocketLevel
    SocketOption: typeof SocketOption
  }
  export default raw
}
