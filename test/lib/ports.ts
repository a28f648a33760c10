/** Free UDP ports on `host`, for links that must know each other's port before they open. */
import dgram from 'node:dgram'

export async function freeUdpPorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const socks = await Promise.all(
    Array.from({ length: n }, () => {
      const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
      return new Promise<dgram.Socket>((resolve, reject) => {
        s.once('error', reject)
        s.bind(0, host, () => resolve(s))
      })
    }),
  )
  const ports = socks.map((s) => s.address().port)
  await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))))
  return ports
}
