/**
 * The gateway configuration: the normalised TypeScript form of the YAML file (README.md in this
 * directory documents every key), its defaults and its limits.
 *
 * The file uses snake_case keys and human units (MHz, kHz, seconds); `GatewayConfig` uses
 * camelCase, Hz and ms, has every default filled in and every path absolute. LoRa radio settings
 * become the driver's own `RadioConfig` and are checked against the driver's own tables
 * (drivers/lora/radio.ts: radioConfigProblems, REGIONS, BANDWIDTHS_HZ).
 */
import type { RadioConfig } from '../../drivers/lora/radio.js'
import { UDP_MAX_MTU } from '../../drivers/udp/link.js'

export type LogLevel = 'debug' | 'info' | 'warn'
export type LinkDriver = 'udp' | 'ethernet' | 'raw_ip' | 'lora'
export type LoraBackendKind = 'firmware-bridge' | 'rnode'

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn']
/** The driver blocks a link may have, exactly one of them, as the YAML keys. */
export const LINK_DRIVERS: readonly LinkDriver[] = ['udp', 'ethernet', 'raw_ip', 'lora']
export const LORA_BACKENDS: readonly LoraBackendKind[] = ['firmware-bridge', 'rnode']

/** UdpLink options (drivers/udp): bind address and port, discovery, static neighbours. */
export interface UdpLinkConfig {
  /** Address to bind (IPv4 or IPv6 literal). Default 0.0.0.0. */
  host: string
  /** 0..65535; 0 picks a free port. Default 47800. */
  port: number
  /** Network interface to bind to / send multicast on. */
  interface?: string
  /** Multicast group for link-local discovery (same family as `host`). */
  group?: string
  /** Announce on and listen to the multicast group. Default true. */
  discovery: boolean
  /** Static neighbours, 'host:port' ('[v6]:port' for IPv6). Default []. */
  peers: string[]
  /** Largest frame, bytes (256..65507). Absent: the driver's default. */
  mtu?: number
}

/** EthernetLink options (drivers/ethernet): raw frames, EtherType 0x88B5. */
export interface EthernetLinkConfig {
  interface: string
}

/** RawIpLink options (drivers/ethernet): raw IP sockets, protocol 253. */
export interface RawIpLinkConfig {
  /** At least one of interface and address is set. */
  interface?: string
  /** Local IPv4 address to bind. */
  address?: string
  /** Static neighbours (IPv4 addresses); at least one of peers and broadcast is set. Default []. */
  peers: string[]
  /** IPv4 broadcast address for discovery. */
  broadcast?: string
}

/** LoRaLink options (drivers/lora/link.ts). */
export interface LoraLinkConfig {
  /** Serial device or PTY path (absolute); '' when `emulated`. */
  port: string
  /**
   * No hardware: the daemon makes a PTY pair (socat) in its runtime dir and runs the companion-MCU
   * emulator on the other end, alone on its own emulated air (drivers/lora/emulated.ts).
   */
  emulated: boolean
  backend: LoraBackendKind
  /** A key of REGIONS (drivers/lora/radio.ts). Default EU868. */
  region: string
  /** The radio setting, complete: the driver's own type. */
  radio: RadioConfig
  /** Radio time per real time, (0, 1]; 1 on real radios. */
  timeScale: number
  /** Serial speed. Default 115200. */
  baudRate: number
}

/** rfkill switch types (linux/rfkill.h), as `rfkill list` names them. */
export type RfkillTypeName = 'all' | 'wlan' | 'bluetooth' | 'uwb' | 'wimax' | 'wwan' | 'gps' | 'fm' | 'nfc'
export const RFKILL_TYPE_NAMES: readonly RfkillTypeName[] = ['all', 'wlan', 'bluetooth', 'uwb', 'wimax', 'wwan', 'gps', 'fm', 'nfc']

/**
 * One physical action of a link's force disconnect, in the file's own shape (one key per item),
 * which is also drivers/physical's CutActionConfig. `timeout_ms` bounds how long the action may
 * take to be observed; a later action does not wait longer than that for an earlier one.
 */
export type CutActionConfig =
  | { gpio: { chip: string; line: string | number; value: 0 | 1 }; timeoutMs: number }
  | { rfkill: { type?: RfkillTypeName; index?: number; name?: string }; timeoutMs: number }
  | { netdev: { interface: string }; timeoutMs: number }
  | { radio_off: Record<string, never>; timeoutMs: number }
export type CutActionKind = 'gpio' | 'rfkill' | 'netdev' | 'radio_off'
export const CUT_ACTION_KINDS: readonly CutActionKind[] = ['gpio', 'rfkill', 'netdev', 'radio_off']

/** How a link is cut: its physical actions in order, and whether the file said so (or the driver's default). */
export interface CutConfig {
  actions: CutActionConfig[]
  /** False: the default for the driver (docs/force-disconnect.md). */
  configured: boolean
}

interface LinkCommon {
  /** [a-z0-9_-]{1,15}, unique. */
  name: string
  /** Default true. */
  enabled: boolean
  /** Budget for relayed traffic on this link, bytes/s; 0 = unlimited (the default). */
  budgetBytesPerS: number
  /** What `kairo-gw disconnect` (or policy) does to the hardware of this link. */
  cut: CutConfig
}

/** One link: `driver` says which of the driver blocks is present (exactly one is). */
export type LinkConfig = LinkCommon &
  (
    | { driver: 'udp'; udp: UdpLinkConfig; ethernet?: undefined; rawIp?: undefined; lora?: undefined }
    | { driver: 'ethernet'; ethernet: EthernetLinkConfig; udp?: undefined; rawIp?: undefined; lora?: undefined }
    | { driver: 'raw_ip'; rawIp: RawIpLinkConfig; udp?: undefined; ethernet?: undefined; lora?: undefined }
    | { driver: 'lora'; lora: LoraLinkConfig; udp?: undefined; ethernet?: undefined; rawIp?: undefined }
  )

export interface MeshConfig {
  /** Between two announces of this node, ms (file: announce_interval_s, 1..3600 s). */
  announceIntervalMs: number
  /** 1..64. */
  hopLimit: number
}

export interface StoreConfig {
  maxMessages: number
  maxBytes: number
  /** How long an undelivered message is kept, ms (file: ttl_s). */
  ttlMs: number
}

export interface LoggingConfig {
  level: LogLevel
  /** IANA time zone of the CoordinationNode_YYYYMMDD.log timestamps and file dates. Default Asia/Tokyo (JST). */
  timeZone: string
}

export type PeerMode = 'tofu' | 'allowlist'
export const PEER_MODES: readonly PeerMode[] = ['tofu', 'allowlist']

/** Who may join: trust on first use (the first key seen for a UUID is pinned), or a list. */
export interface PeersConfig {
  mode: PeerMode
  /** Allowlist entries (node ID or Ed25519 key, hex, lower case); in tofu mode, always admitted. */
  allow: Array<{ nodeId?: string; key?: string; name?: string }>
}

/** The VoV audit log (docs/vov-log.md). */
export interface AuditConfig {
  maxFileBytes: number
  maxFileAgeMs: number
  /** The log-signing key is replaced after this long (default 24 h). */
  keyLifetimeMs: number
}

export interface GatewayConfig {
  node: { name: string }
  /** Absolute. Absent: the daemon's default. */
  stateDir?: string
  /** Absolute. The control socket is <runtimeDir>/control.sock. Absent: the daemon's default. */
  runtimeDir?: string
  links: LinkConfig[]
  mesh: MeshConfig
  store: StoreConfig
  logging: LoggingConfig
  peers: PeersConfig
  audit: AuditConfig
  /** The .klp-policy file (absolute), enforced on the relay path (appliance/policy, docs/policy.md). */
  policyFile?: string
}

/** Defaults of the file's optional keys, in the file's units. */
export const DEFAULTS = Object.freeze({
  udp: { host: '0.0.0.0', port: 47800, discovery: true },
  lora: { backend: 'firmware-bridge' as LoraBackendKind, region: 'EU868', timeScale: 1, baudRate: 115_200 },
  link: { enabled: true, budgetBytesPerS: 0 },
  mesh: { announceIntervalS: 10, hopLimit: 16 },
  store: { maxMessages: 10_000, maxBytes: 16 * 1024 * 1024, ttlS: 86_400 },
  logging: { level: 'info' as LogLevel, timeZone: 'Asia/Tokyo' },
  peers: { mode: 'tofu' as PeerMode },
  audit: { maxFileMb: 16, maxFileAgeH: 24, keyLifetimeH: 24 },
  /**
   * How long each kind of cut action may take to be observed, ms. A command to the radio's
   * firmware goes through its driver, which may be the thing that is wedged: it gets little time,
   * so the lines after it are not held up.
   */
  cutTimeoutMs: { gpio: 100, rfkill: 500, netdev: 1000, radio_off: 250 } as Record<CutActionKind, number>,
})

/** Ranges of the numeric keys (inclusive), in the file's units. LoRa radio ranges are the driver's. */
export const LIMITS = Object.freeze({
  port: [0, 65_535],
  peerPort: [1, 65_535],
  /** At least a LoRa frame (a smaller UDP MTU only costs fragments); at most the driver's. */
  udpMtu: [256, UDP_MAX_MTU],
  budgetBytesPerS: [0, 1_000_000_000_000],
  announceIntervalS: [1, 3600],
  hopLimit: [1, 64],
  maxMessages: [1, 10_000_000],
  maxBytes: [1024, 1024 ** 4],
  ttlS: [1, 31_536_000],
  baudRate: [1200, 4_000_000],
  maxFileMb: [1, 4096],
  maxFileAgeH: [1, 24 * 366],
  keyLifetimeH: [1, 24 * 31],
  cutTimeoutMs: [1, 60_000],
  rfkillIndex: [0, 0xffff_ffff],
  gpioOffset: [0, 1023],
} as const satisfies Record<string, readonly [number, number]>)

/** Linux IFNAMSIZ is 16 including the NUL: an interface name has at most 15 bytes. */
export const IFNAME_MAX_BYTES = 15
/** sun_path is 108 bytes including the NUL. */
export const UNIX_SOCKET_PATH_MAX_BYTES = 107
export const CONTROL_SOCKET_NAME = 'control.sock'
export const LINK_NAME_RE = /^[a-z0-9_-]{1,15}$/
export const NODE_NAME_RE = /^[A-Za-z0-9_.-]{1,32}$/
