/**
 * Builds a link driver from its configuration block. Drivers are loaded on demand, so a gateway
 * without Ethernet links never loads libpcap, and one without LoRa never opens a serial library.
 */
import type { Link } from '../../drivers/link.js'
import type { LinkConfig } from '../config/schema.js'

/** `runtimeDir`: where an emulated radio puts its PTY pair. */
export async function createLink(cfg: LinkConfig, env: { runtimeDir: string }): Promise<Link> {
  switch (cfg.driver) {
    case 'udp': {
      const { UdpLink } = await import('../../drivers/udp/link.js')
      const u = cfg.udp
      return new UdpLink({
        name: cfg.name,
        host: u.host,
        port: u.port,
        discovery: u.discovery,
        peers: u.peers,
        ...(u.interface !== undefined ? { interface: u.interface } : {}),
        ...(u.group !== undefined ? { group: u.group } : {}),
        ...(u.mtu !== undefined ? { mtu: u.mtu } : {}),
      })
    }
    case 'ethernet': {
      const { EthernetLink } = await import('../../drivers/ethernet/pcap-link.js')
      return new EthernetLink({ name: cfg.name, interface: cfg.ethernet.interface })
    }
    case 'raw_ip': {
      const { RawIpLink } = await import('../../drivers/ethernet/raw-ip-link.js')
      const r = cfg.rawIp
      return new RawIpLink({
        name: cfg.name,
        peers: r.peers,
        ...(r.interface !== undefined ? { interface: r.interface } : {}),
        ...(r.address !== undefined ? { address: r.address } : {}),
        ...(r.broadcast !== undefined ? { broadcast: r.broadcast } : {}),
      })
    }
    case 'lora': {
      const l = cfg.lora
      if (l.emulated) {
        const { EmulatedLoRaLink } = await import('../../drivers/lora/emulated.js')
        return new EmulatedLoRaLink({ name: cfg.name, dir: env.runtimeDir, backend: l.backend, radio: l.radio, region: l.region, timeScale: l.timeScale, contention: true })
      }
      const { LoRaLink } = await import('../../drivers/lora/link.js')
      // In a mesh the channel is shared: contention (random backoff, one frame at a time).
      return new LoRaLink({ name: cfg.name, path: l.port, backend: l.backend, radio: l.radio, region: l.region, timeScale: l.timeScale, baudRate: l.baudRate, contention: true })
    }
  }
}
