/**
 * A complete, annotated gateway config file: `kairo-gw config check --help` prints it, and a test
 * checks that it is valid. README.md in this directory documents every key.
 */
export const EXAMPLE_CONFIG = `# /etc/kairo-gw/config.yaml  (YAML; JSON works too)
node:
  name: gw1                      # optional, default: the host name; 1-32 of A-Z a-z 0-9 _ . -
state_dir: /var/lib/kairo-gw     # optional; identity and message store. Relative paths are
runtime_dir: /run/kairo-gw       #   relative to this file. Control socket: <runtime_dir>/control.sock
links:                           # at least one; names unique, 1-15 of a-z 0-9 _ -
  - name: udp0
    udp:                         # exactly one driver block per link: udp | ethernet | raw_ip | lora
      host: 0.0.0.0              # address to bind, default 0.0.0.0
      port: 47800                # 0..65535 (0: any free port), default 47800
      interface: veth0           # optional, at most 15 bytes
      group: 239.77.71.1         # optional multicast group for link-local discovery
      discovery: true            # default true
      peers: ["10.1.0.2:47800"]  # optional static neighbours, "[fd00::2]:47800" for IPv6
      mtu: 1200                  # optional, 256..65507
    budget_bytes_per_s: 0        # optional budget for relayed traffic, 0 = unlimited (default)
    enabled: true                # optional, default true
  - name: eth0
    ethernet: { interface: veth1 }            # raw Ethernet frames, EtherType 0x88B5
  - name: rip0
    raw_ip: { interface: veth2, peers: [10.2.0.2], broadcast: 10.2.0.255 }   # IP protocol 253
  - name: lora0
    lora:
      port: /dev/ttyACM0         # serial device or PTY of the companion MCU (required)
      backend: firmware-bridge   # firmware-bridge (default) or rnode
      region: EU868              # EU868 (default), US915, AU915, AS923, IN865, LAB
      frequency_mhz: 869.525     # inside the region's band; default 869.525
      spreading_factor: 9        # 5..12, default 9
      bandwidth_khz: 125         # 7.8 10.4 15.6 20.8 31.25 41.7 62.5 125 250 500; default 125
      coding_rate: 5             # 5..8 for 4/5..4/8 ("4/5" works too), default 5
      tx_power_dbm: 14           # -9..22 and at most the region's limit (EU868: 14), default 14
      sync_word: 0x12            # optional, 0..255, default 0x12
      preamble_symbols: 8        # optional, 6..65535, default 8
      baud_rate: 115200          # optional, serial speed, default 115200
      time_scale: 1              # emulator only: radio time runs 1/time_scale faster; (0, 1]
    cut:                         # optional: what \`kairo-gw disconnect\` (or policy) does to the hardware,
                                 #   in order; each action is observed. Default: radio_off for LoRa,
                                 #   netdev (interface down) for ethernet/raw_ip, nothing for udp
      - radio_off: {}            # the firmware switches the radio off (LoRa only)
      - gpio: { chip: gpiochip0, line: lora-power, value: 0 }   # chip: gpiochipN or its label;
      - gpio: { chip: gpiochip0, line: lora-reset, value: 0 }   #   line: name or offset; held while cut
      # - rfkill: { type: wlan }        # or index: N, name: phy0 (soft block, observed by event)
      # - netdev: { interface: wlan0 }  # interface set down (rtnetlink), observed by its flags
      #   any item may add timeout_ms: (defaults: gpio 100, rfkill 500, netdev 1000, radio_off 250)
mesh:
  announce_interval_s: 10        # 1..3600, default 10
  hop_limit: 16                  # 1..64, default 16
store:
  max_messages: 10000            # 1..10000000, default 10000
  max_bytes: 16777216            # 1024..2^40, default 16 MiB
  ttl_s: 86400                   # 1..31536000, default 86400 (a day)
logging:
  level: info                    # debug | info | warn, default info
  time_zone: Asia/Tokyo          # dates and times of CoordinationNode_YYYYMMDD.log; IANA name, default Asia/Tokyo (JST)
peers:
  mode: tofu                     # tofu (default): admit any peer, pin the first key seen for its UUID;
                                 #   allowlist: admit only the entries below
  allow:                         # node_id or key (kairo-gw keys show prints both), optional name
    - { node_id: 5f0c6a1e9d2b4c7a8e3f1b2c3d4e5f60, name: gw2 }
    - key: 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
audit:                           # the VoV audit log (docs/vov-log.md)
  max_file_mb: 16                # a new file after this size, 1..4096, default 16
  max_file_age_h: 24             # ... or this age, default 24
  key_lifetime_h: 24             # the log-signing key is replaced after this long, default 24
`
