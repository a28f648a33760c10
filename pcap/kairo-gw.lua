-- kairo-gw.lua: Wireshark dissector for kairo-gw captures (Wireshark/tshark 4.0 or newer, Lua 5.2+).
--
--   aitcp      AI-TCP frames (docs/protocol.md): Data, Packet (FlatBuffers Packet table, with the
--              Handshake and Announce payloads decoded), Fragment (reassembled), Hop, and the
--              4-byte UDP discovery beacon 00 4b 47 42.
--   kairo_fb   firmware-bridge link frames (docs/firmware-bridge.md): header, FlatBuffers Frame
--              with every message and field, CRC-32C checked; Transmit/Receive payloads are
--              dissected as aitcp.
--   kairo_eth  the 2-byte payload length kairo-gw puts after EtherType 0x88B5.
--
-- Registered on: EtherType 0x88B5, IP protocol 253 (IPv4 and IPv6), UDP port 47800 (preference
-- "aitcp.udp_ports" for more), LoRaTap sync word 0x12 (preference "aitcp.loratap_syncwords";
-- Wireshark's LoRaTap dissector keeps its loratap.* fields and hands the payload over through
-- its "loratap.syncword" table), and LINKTYPE_USER0 (147) for firmware-bridge frames.
--
-- Use: tshark -X lua_script:pcap/kairo-gw.lua -r capture.pcapng
--      or copy this file to ~/.local/lib/wireshark/plugins/ (docs/pcap.md).
--
-- Every read is bounds-checked against the bytes captured: garbage produces expert infos
-- (group Malformed, severity Error) naming the field at fault, never a Lua error. Should a bug
-- raise one anyway, it is caught and reported as the expert info "aitcp.bug" / "kairo_fb.bug".

-- Lua 5.2 (Wireshark 4.0) has bit32; on Lua 5.3/5.4 without it, the native operators (loaded
-- from a string, so that 5.2 can still parse this file).
local bit = bit32
if bit == nil then
  bit = load([[return {
    band = function(a, b) return a & b end,
    bxor = function(a, b) return (a ~ b) & 0xFFFFFFFF end,
    rshift = function(a, n) return (a & 0xFFFFFFFF) >> n end,
  }]])()
end
local band, bxor, rshift = bit.band, bit.bxor, bit.rshift

local aitcp = Proto("aitcp", "AI-TCP")
local kfb = Proto("kairo_fb", "kairo firmware-bridge")
local keth = Proto("kairo_eth", "kairo-gw Ethernet encapsulation")

-------------------------------------------------------------------------------------------------
-- Constants (schemas/aitcp.fbs, handshake.fbs, announce.fbs, firmware_bridge.fbs)

local MAX_FRAME_BYTES = 16384
local DATA_HEADER_BYTES = 32
local TAG_BYTES = 16
local FRAGMENT_HEADER_BYTES = 8
local MAX_FRAGMENTS = 64
local HOP_HEADER_BYTES = 12
local MAX_NOISE = 1024
local MAX_LINKS = 16
local MAX_NAME = 32
local FB_MAX_FRAME = 512
local FB_MIN_FRAME = 8
local FB_MAX_PAYLOAD = 255
local FB_MAX_NAME = 32
local FB_MAX_MESSAGE = 128
local FB_DEPTH = 8
local BEACON = "\0KGB"

local KIND = { [1] = "Data", [2] = "Packet", [3] = "Fragment", [4] = "Hop" }
local TYPE = {
  [0x01] = "HANDSHAKE", [0x02] = "ANNOUNCE", [0x03] = "ACK", [0x04] = "KEEPALIVE", [0x05] = "CLOSE",
  [0x10] = "TASK_REQUEST", [0x11] = "AGENT_MIGRATION", [0x12] = "REPUTATION_DELTA",
  [0x13] = "BROADCAST_ANNOUNCE", [0x14] = "VECTOR_SYNC",
}
local PATTERN = { [1] = "XX", [2] = "IK" }
local PATTERN_MESSAGES = { [1] = 3, [2] = 2 }
local LINK_KIND = { [0] = "Unknown", [1] = "UDP", [2] = "Ethernet", [3] = "LoRa", [4] = "BLE", [5] = "Wi-Fi Direct", [6] = "NATS" }
local FB_MSG = {
  [1] = "Hello", [2] = "HelloAck", [3] = "Configure", [4] = "ConfigureAck", [5] = "Transmit", [6] = "TxDone",
  [7] = "Receive", [8] = "ChannelActivity", [9] = "GetStatus", [10] = "Status", [11] = "Heartbeat",
  [12] = "RadioOnOff", [13] = "RadioOnOffAck", [14] = "Reset", [15] = "Error", [16] = "Credits",
}
local RADIO_CHIP = { [0] = "Unknown", [1] = "SX1261", [2] = "SX1262", [3] = "SX1268", [4] = "LLCC68", [5] = "SX1276", [6] = "SX1278", [7] = "LR1110", [255] = "Emulated" }
local ERROR_CODE = { [0] = "None", [1] = "QueueFull", [2] = "BadConfig", [3] = "CrcFail", [4] = "RadioOff", [5] = "Busy", [6] = "Unsupported", [7] = "Internal", [8] = "NoSession", [9] = "TxFailed" }
local CRC_OK = { [0] = "Bad", [1] = "Good" }

-------------------------------------------------------------------------------------------------
-- Fields

local F = {}
local function fld(list, key, pf) F[key] = pf; list[#list + 1] = pf; return pf end
local A = {}
fld(A, "vk", ProtoField.uint8("aitcp.vk", "Version/kind", base.DEC_HEX))
fld(A, "version", ProtoField.uint8("aitcp.version", "Version", base.DEC, nil, 0xF0))
fld(A, "kind", ProtoField.uint8("aitcp.kind", "Frame kind", base.DEC, KIND, 0x0F))
fld(A, "inner.vk", ProtoField.uint8("aitcp.inner.vk", "Version/kind (inner frame)", base.DEC_HEX))
fld(A, "inner.version", ProtoField.uint8("aitcp.inner.version", "Version (inner frame)", base.DEC, nil, 0xF0))
fld(A, "inner.kind", ProtoField.uint8("aitcp.inner.kind", "Frame kind (inner frame)", base.DEC, KIND, 0x0F))
fld(A, "type", ProtoField.uint8("aitcp.type", "Packet type", base.DEC, TYPE))
fld(A, "flags", ProtoField.uint8("aitcp.flags", "Flags", base.DEC))
fld(A, "flags.ack_requested", ProtoField.bool("aitcp.flags.ack_requested", "AckRequested", 8, nil, 0x01))
fld(A, "flags.signed", ProtoField.bool("aitcp.flags.signed", "Signed", 8, nil, 0x02))
fld(A, "flags.bulk", ProtoField.bool("aitcp.flags.bulk", "Bulk", 8, nil, 0x04))
fld(A, "flags.reserved", ProtoField.uint8("aitcp.flags.reserved", "Reserved bits", base.HEX, nil, 0xF8))
fld(A, "hop_limit", ProtoField.uint8("aitcp.hop_limit", "Hop limit", base.DEC))
-- Data
fld(A, "session", ProtoField.uint32("aitcp.session", "Session (receiver's index)", base.DEC_HEX))
fld(A, "dst", ProtoField.bytes("aitcp.dst", "Destination node ID", base.NONE))
fld(A, "seq_protected", ProtoField.bytes("aitcp.seq_protected", "Sequence (header-protected)", base.NONE))
fld(A, "ciphertext", ProtoField.bytes("aitcp.ciphertext", "Ciphertext", base.NONE))
fld(A, "ciphertext_len", ProtoField.uint32("aitcp.ciphertext_len", "Ciphertext length", base.DEC))
fld(A, "tag", ProtoField.bytes("aitcp.tag", "Poly1305 tag", base.NONE))
-- Packet
fld(A, "prefix", ProtoField.bytes("aitcp.prefix", "Zero prefix", base.NONE))
fld(A, "fb_root", ProtoField.uint32("aitcp.fb_root", "FlatBuffers root offset", base.DEC))
fld(A, "reserved", ProtoField.uint8("aitcp.reserved", "Reserved", base.DEC))
fld(A, "packet_id", ProtoField.uint32("aitcp.packet_id", "Packet ID", base.DEC_HEX))
fld(A, "src", ProtoField.bytes("aitcp.src", "Source node ID", base.NONE))
fld(A, "payload", ProtoField.bytes("aitcp.payload", "Payload", base.NONE))
fld(A, "payload_len", ProtoField.uint32("aitcp.payload_len", "Payload length", base.DEC))
fld(A, "signature", ProtoField.bytes("aitcp.signature", "Ed25519 signature", base.NONE))
fld(A, "path_cost", ProtoField.uint32("aitcp.path_cost", "Path cost", base.DEC))
-- Handshake
fld(A, "hs.pattern", ProtoField.uint8("aitcp.hs.pattern", "Pattern", base.DEC, PATTERN))
fld(A, "hs.message", ProtoField.uint8("aitcp.hs.message", "Message index", base.DEC))
fld(A, "hs.sender_index", ProtoField.uint32("aitcp.hs.sender_index", "Sender index", base.DEC_HEX))
fld(A, "hs.receiver_index", ProtoField.uint32("aitcp.hs.receiver_index", "Receiver index", base.DEC_HEX))
fld(A, "hs.noise", ProtoField.bytes("aitcp.hs.noise", "Noise message", base.NONE))
fld(A, "hs.noise_len", ProtoField.uint32("aitcp.hs.noise_len", "Noise message length", base.DEC))
-- Announce
fld(A, "ann.identity_key", ProtoField.bytes("aitcp.ann.identity_key", "Identity key (Ed25519)", base.NONE))
fld(A, "ann.static_key", ProtoField.bytes("aitcp.ann.static_key", "Static key (X25519)", base.NONE))
fld(A, "ann.capabilities", ProtoField.uint32("aitcp.ann.capabilities", "Capabilities", base.DEC_HEX))
fld(A, "ann.cap.relay", ProtoField.bool("aitcp.ann.cap.relay", "Relay", 32, nil, 0x1))
fld(A, "ann.cap.store_and_forward", ProtoField.bool("aitcp.ann.cap.store_and_forward", "Store and forward", 32, nil, 0x2))
fld(A, "ann.cap.backhaul", ProtoField.bool("aitcp.ann.cap.backhaul", "NATS backhaul", 32, nil, 0x4))
fld(A, "ann.links_count", ProtoField.uint32("aitcp.ann.links_count", "Links", base.DEC))
fld(A, "ann.link_kind", ProtoField.uint8("aitcp.ann.link_kind", "Link kind", base.DEC, LINK_KIND))
fld(A, "ann.link_name", ProtoField.string("aitcp.ann.link_name", "Link name"))
fld(A, "ann.link_mtu", ProtoField.uint16("aitcp.ann.link_mtu", "Link MTU", base.DEC))
fld(A, "ann.link_bitrate", ProtoField.uint32("aitcp.ann.link_bitrate", "Link bit rate (bit/s)", base.DEC))
fld(A, "ann.timestamp", ProtoField.uint64("aitcp.ann.timestamp", "Timestamp (ms since the epoch)", base.DEC))
fld(A, "ann.time", ProtoField.absolute_time("aitcp.ann.time", "Time", base.UTC))
fld(A, "ann.interval_ms", ProtoField.uint32("aitcp.ann.interval_ms", "Announce interval (ms)", base.DEC))
fld(A, "ann.uuid", ProtoField.bytes("aitcp.ann.uuid", "UUID", base.NONE))
fld(A, "ann.mesh_ip", ProtoField.uint32("aitcp.ann.mesh_ip", "Mesh IP (integer)", base.DEC))
fld(A, "ann.mesh_ip_addr", ProtoField.ipv4("aitcp.ann.mesh_ip_addr", "Mesh IP"))
fld(A, "ann.name", ProtoField.string("aitcp.ann.name", "Name"))
-- Fragment
fld(A, "frag.index", ProtoField.uint8("aitcp.frag.index", "Fragment index", base.DEC))
fld(A, "frag.count", ProtoField.uint8("aitcp.frag.count", "Fragment count", base.DEC))
fld(A, "frag.reserved", ProtoField.uint8("aitcp.frag.reserved", "Reserved", base.DEC))
fld(A, "frag.id", ProtoField.uint32("aitcp.frag.id", "Fragment ID", base.DEC_HEX))
fld(A, "frag.chunk", ProtoField.bytes("aitcp.frag.chunk", "Chunk", base.NONE))
fld(A, "frag.chunk_len", ProtoField.uint32("aitcp.frag.chunk_len", "Chunk length", base.DEC))
fld(A, "frag.reassembled_in", ProtoField.framenum("aitcp.frag.reassembled_in", "Reassembled in"))
fld(A, "frag.reassembled_len", ProtoField.uint32("aitcp.frag.reassembled_len", "Reassembled frame length", base.DEC))
fld(A, "frag.frames", ProtoField.string("aitcp.frag.frames", "Fragments in frames"))
-- Hop
fld(A, "hop.reserved", ProtoField.bytes("aitcp.hop.reserved", "Reserved", base.NONE))
fld(A, "hop.next", ProtoField.uint32("aitcp.hop.next", "Next hop hint", base.DEC_HEX))
fld(A, "hop.prev", ProtoField.uint32("aitcp.hop.prev", "Previous hop hint", base.DEC_HEX))
-- Beacon
fld(A, "beacon", ProtoField.bytes("aitcp.beacon", "UDP discovery beacon", base.NONE))
aitcp.fields = A

local E = {}
local K = {}
local function kf(key, pf) return fld(K, key, pf) end
kf("fb.version", ProtoField.uint8("kairo_fb.version", "Version", base.DEC))
kf("fb.flags", ProtoField.uint8("kairo_fb.flags", "Flags", base.DEC))
kf("fb.flags.needs_ack", ProtoField.bool("kairo_fb.flags.needs_ack", "NEEDS_ACK", 8, nil, 0x01))
kf("fb.flags.ack_only", ProtoField.bool("kairo_fb.flags.ack_only", "ACK_ONLY", 8, nil, 0x02))
kf("fb.flags.syn", ProtoField.bool("kairo_fb.flags.syn", "SYN", 8, nil, 0x04))
kf("fb.flags.reserved", ProtoField.uint8("kairo_fb.flags.reserved", "Undefined bits", base.HEX, nil, 0xF8))
kf("fb.seq", ProtoField.uint8("kairo_fb.seq", "Sequence number", base.DEC))
kf("fb.ack", ProtoField.uint8("kairo_fb.ack", "Acknowledgement (next expected seq)", base.DEC))
kf("fb.frame", ProtoField.bytes("kairo_fb.frame", "FlatBuffers Frame", base.NONE))
kf("fb.frame_len", ProtoField.uint32("kairo_fb.frame_len", "Frame length", base.DEC))
kf("fb.msg", ProtoField.uint8("kairo_fb.msg", "Message (Body type)", base.DEC, FB_MSG))
kf("fb.msg_name", ProtoField.string("kairo_fb.msg_name", "Message"))
kf("fb.crc", ProtoField.uint32("kairo_fb.crc", "CRC-32C", base.DEC_HEX))
kf("fb.crc_computed", ProtoField.uint32("kairo_fb.crc_computed", "CRC-32C computed", base.DEC_HEX))
kf("fb.crc_ok", ProtoField.uint8("kairo_fb.crc_ok", "CRC-32C status", base.DEC, CRC_OK))
kf("fb.cobs", ProtoField.bool("kairo_fb.cobs", "COBS-encoded in the capture"))
-- message fields, named as in schemas/firmware_bridge.fbs
local U8, U16, U32, U64, I8, I16, I32, BOOL, STR, BYTES = "u8", "u16", "u32", "u64", "i8", "i16", "i32", "bool", "str", "bytes"
local FB_FIELD_TYPES = {
  protocol_version = { U8, "Protocol version" }, session = { U32, "Session nonce", base.DEC_HEX },
  heartbeat_ms = { U16, "Heartbeat interval (ms)" }, host_name = { STR, "Host name" },
  firmware_name = { STR, "Firmware name" }, firmware_version = { STR, "Firmware version" },
  radio_chip = { U8, "Radio chip", base.DEC, RADIO_CHIP }, mtu = { U16, "MTU (largest radio payload)" },
  queue_depth = { U8, "Queue depth" }, credits = { U8, "Credits" }, capabilities = { U32, "Capabilities", base.DEC_HEX },
  frequency_hz = { U32, "Frequency (Hz)" }, bandwidth_hz = { U32, "Bandwidth (Hz)" },
  spreading_factor = { U8, "Spreading factor" }, coding_rate = { U8, "Coding rate (4/x)" },
  tx_power_dbm = { I8, "TX power (dBm)" }, sync_word = { U8, "Sync word", base.DEC_HEX },
  preamble_symbols = { U16, "Preamble (symbols)" }, token = { U32, "Token" }, payload = { BYTES, "Radio payload" },
  airtime_us = { U32, "Time on air (µs)" }, rssi_dbm_x4 = { I16, "RSSI (¼ dBm)" }, snr_db_x4 = { I16, "SNR (¼ dB)" },
  frequency_error_hz = { I32, "Frequency error (Hz)" }, timestamp_us = { U64, "Timestamp (µs since MCU boot)" },
  busy = { BOOL, "Channel busy" }, rx_ok = { U32, "Received OK" }, rx_crc_error = { U32, "Received with bad CRC" },
  tx_ok = { U32, "Sent OK" }, tx_fail = { U32, "Send failures" }, queue_free = { U8, "Free queue slots" },
  uptime_ms = { U64, "Uptime (ms)" }, radio_on = { BOOL, "Radio on" }, link_errors = { U32, "Link errors" },
  retransmits = { U32, "Retransmits" }, on = { BOOL, "On" }, code = { U8, "Error code", base.DEC, ERROR_CODE },
  ref_seq = { I16, "Answers seq" }, field = { STR, "Field" }, message = { STR, "Message text" }, grant = { U8, "Grant" },
}
local function make_pf(abbr, name, t, b, vs)
  if t == U8 then return ProtoField.uint8(abbr, name, b or base.DEC, vs)
  elseif t == U16 then return ProtoField.uint16(abbr, name, b or base.DEC, vs)
  elseif t == U32 then return ProtoField.uint32(abbr, name, b or base.DEC, vs)
  elseif t == U64 then return ProtoField.uint64(abbr, name, base.DEC)
  elseif t == I8 then return ProtoField.int8(abbr, name, base.DEC)
  elseif t == I16 then return ProtoField.int16(abbr, name, base.DEC)
  elseif t == I32 then return ProtoField.int32(abbr, name, base.DEC)
  elseif t == BOOL then return ProtoField.bool(abbr, name)
  elseif t == STR then return ProtoField.string(abbr, name)
  else return ProtoField.bytes(abbr, name, base.NONE) end
end
local fb_names = {}
for name in pairs(FB_FIELD_TYPES) do fb_names[#fb_names + 1] = name end
table.sort(fb_names)
for _, name in ipairs(fb_names) do
  local d = FB_FIELD_TYPES[name]
  kf("fb." .. name, make_pf("kairo_fb." .. name, d[2], d[1], d[3], d[4]))
end
kf("fb.payload_len", ProtoField.uint32("kairo_fb.payload_len", "Radio payload length", base.DEC))
kf("fb.rssi_dbm", ProtoField.double("kairo_fb.rssi_dbm", "RSSI (dBm)"))
kf("fb.snr_db", ProtoField.double("kairo_fb.snr_db", "SNR (dB)"))
kf("fb.sf", ProtoField.uint8("kairo_fb.sf", "SF", base.DEC))
kfb.fields = K

fld(E, "eth.length", ProtoField.uint16("kairo_eth.length", "Payload length", base.DEC))
fld(E, "eth.padding", ProtoField.bytes("kairo_eth.padding", "Padding", base.NONE))
keth.fields = E

local ex_malformed = ProtoExpert.new("aitcp.malformed", "Malformed AI-TCP frame", expert.group.MALFORMED, expert.severity.ERROR)
local ex_warn = ProtoExpert.new("aitcp.warning", "AI-TCP warning", expert.group.PROTOCOL, expert.severity.WARN)
local ex_bug = ProtoExpert.new("aitcp.bug", "kairo-gw.lua internal error", expert.group.MALFORMED, expert.severity.ERROR)
aitcp.experts = { ex_malformed, ex_warn, ex_bug }
local ex_fb_malformed = ProtoExpert.new("kairo_fb.malformed", "Malformed firmware-bridge frame", expert.group.MALFORMED, expert.severity.ERROR)
local ex_fb_unknown = ProtoExpert.new("kairo_fb.unknown_msg", "Message type unknown to this dissector", expert.group.UNDECODED, expert.severity.WARN)
local ex_fb_bug = ProtoExpert.new("kairo_fb.bug", "kairo-gw.lua internal error", expert.group.MALFORMED, expert.severity.ERROR)
kfb.experts = { ex_fb_malformed, ex_fb_unknown, ex_fb_bug }
local ex_eth_malformed = ProtoExpert.new("kairo_eth.malformed", "Malformed kairo-gw Ethernet payload", expert.group.MALFORMED, expert.severity.ERROR)
local ex_eth_bug = ProtoExpert.new("kairo_eth.bug", "kairo-gw.lua internal error", expert.group.MALFORMED, expert.severity.ERROR)
keth.experts = { ex_eth_malformed, ex_eth_bug }

-------------------------------------------------------------------------------------------------
-- Preferences

aitcp.prefs.udp_ports = Pref.range("UDP ports", "47800", "UDP ports whose datagrams are AI-TCP frames", 65535)
aitcp.prefs.loratap_syncwords = Pref.string("LoRaTap sync words", "0x12", "Comma-separated LoRa sync words whose LoRaTap payloads are AI-TCP frames (0x12: private networks, kairo-gw's default)")
aitcp.prefs.reassemble = Pref.bool("Reassemble fragments", true, "Reassemble fragmented frames and dissect them in the packet that completes them")
local COBS_DECODED, COBS_WIRE, COBS_AUTO = 0, 1, 2
kfb.prefs.cobs = Pref.enum("Frames in the capture are", COBS_AUTO, "kairo-gw writes COBS-decoded link frames (header, Frame, CRC). 'Auto' also accepts a COBS-encoded frame when only its decoding has a good CRC.", {
  { 1, "COBS-decoded (kairo-gw captures)", COBS_DECODED },
  { 2, "COBS-encoded (raw serial line)", COBS_WIRE },
  { 3, "Auto", COBS_AUTO },
}, false)

-------------------------------------------------------------------------------------------------
-- Byte readers over a Lua string; offsets are 0-based; nil when out of range (never an error).

local function r_u8(s, o)
  if o < 0 or o + 1 > #s then return nil end
  return s:byte(o + 1)
end
local function r_u16(s, o)
  if o < 0 or o + 2 > #s then return nil end
  local a, b = s:byte(o + 1, o + 2)
  return a + b * 256
end
local function r_u32(s, o)
  if o < 0 or o + 4 > #s then return nil end
  local a, b, c, d = s:byte(o + 1, o + 4)
  return a + b * 256 + c * 65536 + d * 16777216
end
local function r_i32(s, o)
  local v = r_u32(s, o)
  if v ~= nil and v >= 2147483648 then v = v - 4294967296 end
  return v
end
local function r_i16(s, o)
  local v = r_u16(s, o)
  if v ~= nil and v >= 32768 then v = v - 65536 end
  return v
end
local function r_i8(s, o)
  local v = r_u8(s, o)
  if v ~= nil and v >= 128 then v = v - 256 end
  return v
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
local function short_id(s)
  return hex(s:sub(1, 4)) .. "…"
end
-- A string for the Info column: quoted, control characters replaced, at most 40 bytes.
local function qstr(v)
  local t = tostring(v or ""):gsub("[%c\"]", "?")
  if #t > 40 then t = t:sub(1, 40) .. "…" end
  return '"' .. t .. '"'
end
local function hex32(v)
  return string.format("0x%08x", v)
end

-- The raw bytes of tvb[off, off+len) or nil when out of the captured bytes.
local function raw(tvb, off, len)
  if off < 0 or len < 0 or off + len > tvb:len() then return nil end
  if len == 0 then return "" end
  return tvb:raw(off, len)
end

-------------------------------------------------------------------------------------------------
-- CRC-32C (Castagnoli, reflected 0x82F63B78), byte-wise table

local CRC32C = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) ~= 0 then c = bxor(rshift(c, 1), 0x82F63B78) else c = rshift(c, 1) end
  end
  CRC32C[i] = c
end
local function crc32c(s, from, to) -- 1-based inclusive
  local c = 0xFFFFFFFF
  for k = from, to do c = bxor(CRC32C[band(bxor(c, s:byte(k)), 0xFF)], rshift(c, 8)) end
  return bxor(c, 0xFFFFFFFF)
end

-- COBS decoding as firmware-bridge/cobs.ts; nil when not valid COBS.
local function cobs_decode(s)
  local out, n, i = {}, #s, 1
  while i <= n do
    local code = s:byte(i)
    i = i + 1
    if code == 0 then return nil end
    local stop = i + code - 1
    if stop > n + 1 then return nil end
    while i < stop do
      local b = s:byte(i)
      if b == 0 then return nil end
      out[#out + 1] = string.char(b)
      i = i + 1
    end
    if code ~= 0xFF and i <= n then out[#out + 1] = "\0" end
  end
  return table.concat(out)
end

-------------------------------------------------------------------------------------------------
-- Problem reporting. `ctx` collects the first problem for the Info column.

local function problem(ctx, item, range, msg)
  if ctx.first_problem == nil then ctx.first_problem = msg end
  ctx.problems = (ctx.problems or 0) + 1
  if range ~= nil then
    item:add_tvb_expert_info(ctx.ex, range, msg)
  else
    item:add_proto_expert_info(ctx.ex, msg)
  end
end

-------------------------------------------------------------------------------------------------
-- FlatBuffers walker: verifies like appliance/core/wire/verify.ts (every offset, vtable, vector
-- and string inside the buffer, required fields, limits) and adds tree items as it goes.
--
-- A buffer is { tvb, base (offset of byte 0 in tvb), s (its bytes), len }.
-- A spec is { name, fields = { field specs } }; field specs:
--   { name, kind = "scalar", size, pf, signed, default, after = fn(tree, range, value, ctx) }
--   { name, kind = "struct", size, show = fn(tree, buf, at, ctx, vals), required }
--   { name, kind = "bytes", pf, len_pf, required, max, exact, after = fn(tree, buf, body, count, ctx, vals) }
--   { name, kind = "string", pf, required, max }
--   { name, kind = "tables", table = spec, max, count_pf, label = fn(vals) }
--   { name, kind = "union", members = { [code] = spec }, allow_unknown, required, on_type = fn(tree, range, type, ctx) }
-- Returns a table of field values (scalars as numbers, bytes as { at, count }, strings as Lua
-- strings, structs as offsets), or nil when the table itself is unusable.

local function fb_buffer(tvb, base, len)
  return { tvb = tvb, base = base, s = tvb:raw(base, len), len = len }
end

local function brange(buf, at, len)
  return buf.tvb:range(buf.base + at, len)
end

local function scalar_value(buf, at, size, signed)
  local s = buf.s
  if size == 1 then return signed and r_i8(s, at) or r_u8(s, at)
  elseif size == 2 then return signed and r_i16(s, at) or r_u16(s, at)
  elseif size == 4 then return signed and r_i32(s, at) or r_u32(s, at)
  else
    -- 8 bytes: return { lo, hi } (exact as two 32-bit halves)
    return { r_u32(s, at), r_u32(s, at + 4) }
  end
end

local walk_table

local function add_scalar(tree, f, range, value)
  if f.size == 8 then return tree:add_le(f.pf, range) end
  return tree:add_le(f.pf, range)
end

local function add_default(tree, buf, pos, f)
  if f.pf == nil or f.default == nil then return end
  local item
  if f.size == 8 then
    item = tree:add(f.pf, brange(buf, pos, 0), UInt64(f.default))
  else
    item = tree:add(f.pf, brange(buf, pos, 0), f.default)
  end
  item:append_text(" [absent: schema default]")
  item:set_generated()
  if f.after then f.after(tree, nil, f.default, nil) end
end

local function walk_union(buf, pos, isize, tfo, vfo, f, path, tree, ctx, depth, vals)
  local tpath = path .. "_type"
  local s = buf.s
  if tfo ~= 0 and (tfo < 4 or tfo + 1 > isize) then
    problem(ctx, tree, brange(buf, pos, 0), tpath .. ": field offset " .. tfo .. " outside the " .. isize .. "-byte table")
    return
  end
  local typ = tfo == 0 and 0 or r_u8(s, pos + tfo)
  vals[f.name .. "_type"] = typ
  if f.on_type then f.on_type(tree, tfo == 0 and brange(buf, pos, 0) or brange(buf, pos + tfo, 1), typ, ctx, tfo == 0) end
  if typ == 0 then
    if f.required then problem(ctx, tree, brange(buf, pos, 0), path .. ": required union is missing") end
    return
  end
  local member = f.members[typ]
  if member == nil and not f.allow_unknown then
    problem(ctx, tree, brange(buf, pos + tfo, 1), tpath .. ": " .. typ .. " is not a known member")
    return
  end
  if vfo == 0 then
    problem(ctx, tree, brange(buf, pos, 0), path .. ": union of type " .. typ .. " has no value")
    return
  end
  if vfo < 4 or vfo + 4 > isize then
    problem(ctx, tree, brange(buf, pos, 0), path .. ": field offset " .. vfo .. " outside the " .. isize .. "-byte table")
    return
  end
  local at = pos + vfo
  local spec = member or { name = "#" .. typ, fields = {} }
  local sub = tree:add(brange(buf, at, 4), spec.name)
  vals[f.name] = walk_table(buf, at + r_u32(s, at), spec, path, sub, ctx, depth + 1)
end

walk_table = function(buf, pos, spec, path, tree, ctx, depth)
  local s, len = buf.s, buf.len
  if depth > FB_DEPTH then
    problem(ctx, tree, nil, path .. ": nesting deeper than " .. FB_DEPTH)
    return nil
  end
  if pos + 4 > len then
    problem(ctx, tree, nil, path .. ": table offset " .. pos .. " outside the " .. len .. "-byte buffer")
    return nil
  end
  local vt = pos - r_i32(s, pos)
  if vt < 0 or vt + 4 > len then
    problem(ctx, tree, brange(buf, pos, 4), path .. ": vtable offset " .. vt .. " outside the buffer")
    return nil
  end
  local vtsize, isize = r_u16(s, vt), r_u16(s, vt + 2)
  if vtsize < 4 or vtsize % 2 ~= 0 or vt + vtsize > len then
    problem(ctx, tree, brange(buf, vt, 2), path .. ": bad vtable size " .. vtsize)
    return nil
  end
  if isize < 4 or pos + isize > len then
    problem(ctx, tree, brange(buf, vt + 2, 2), path .. ": table size " .. isize .. " overruns the buffer")
    return nil
  end
  local function slot_offset(slot)
    if 4 + 2 * slot < vtsize then return r_u16(s, vt + 4 + 2 * slot) end
    return 0
  end
  local vals = { _pos = pos }
  local next_slot = 0
  for _, f in ipairs(spec.fields) do
    local fpath = path .. "." .. f.name
    local slot = next_slot
    next_slot = next_slot + (f.kind == "union" and 2 or 1)
    if f.kind == "union" then
      walk_union(buf, pos, isize, slot_offset(slot), slot_offset(slot + 1), f, fpath, tree, ctx, depth, vals)
    else
      local fo = slot_offset(slot)
      if fo == 0 then
        if f.required then
          problem(ctx, tree, brange(buf, pos, 0), fpath .. ": required field is missing")
        elseif f.kind == "scalar" then
          vals[f.name] = f.size == 8 and { 0, 0 } or f.default
          add_default(tree, buf, pos, f)
        elseif f.absent_len then
          local item = tree:add(f.len_pf, brange(buf, pos, 0), 0)
          item:append_text(" [absent]")
          item:set_generated()
        end
      else
        local inline = (f.kind == "scalar" or f.kind == "struct") and f.size or 4
        if fo < 4 or fo + inline > isize then
          problem(ctx, tree, brange(buf, pos, 0), fpath .. ": field offset " .. fo .. " outside the " .. isize .. "-byte table")
        else
          local at = pos + fo
          if f.kind == "scalar" then
            local v = scalar_value(buf, at, f.size, f.signed)
            vals[f.name] = v
            if f.pf then add_scalar(tree, f, brange(buf, at, f.size), v) end
            if f.after then f.after(tree, brange(buf, at, f.size), v, ctx) end
          elseif f.kind == "struct" then
            vals[f.name] = at
            if f.show then f.show(tree, buf, at, ctx, vals) end
          else
            local target = at + r_u32(s, at)
            if target + 4 > len then
              problem(ctx, tree, brange(buf, at, 4), fpath .. ": offset points outside the buffer")
            else
              local count = r_u32(s, target)
              local body = target + 4
              if f.kind == "bytes" then
                if body + count > len then
                  problem(ctx, tree, brange(buf, target, 4), fpath .. ": vector of " .. count .. " bytes overruns the buffer")
                else
                  local r = brange(buf, body, count)
                  local item = f.pf and tree:add(f.pf, r) or nil
                  if f.len_pf then tree:add_le(f.len_pf, brange(buf, target, 4)) end
                  if f.exact ~= nil and count ~= f.exact then
                    problem(ctx, item or tree, r, fpath .. ": must be " .. f.exact .. " bytes, got " .. count)
                  elseif f.max ~= nil and count > f.max then
                    problem(ctx, item or tree, r, fpath .. ": " .. count .. " bytes exceeds the limit of " .. f.max)
                  end
                  vals[f.name] = { at = body, count = count }
                  if f.after then f.after(tree, buf, body, count, ctx, vals) end
                end
              elseif f.kind == "string" then
                if body + count + 1 > len then
                  problem(ctx, tree, brange(buf, target, 4), fpath .. ": string of " .. count .. " bytes overruns the buffer")
                else
                  local r = brange(buf, body, count)
                  local item = tree:add_packet_field(f.pf, r, ENC_UTF_8)
                  if f.max ~= nil and count > f.max then
                    problem(ctx, item, r, fpath .. ": " .. count .. " bytes exceeds the limit of " .. f.max)
                  end
                  vals[f.name] = r:string(ENC_UTF_8)
                end
              elseif f.kind == "tables" then
                if f.count_pf then tree:add_le(f.count_pf, brange(buf, target, 4)) end
                if f.max ~= nil and count > f.max then
                  problem(ctx, tree, brange(buf, target, 4), fpath .. ": " .. count .. " entries exceeds the limit of " .. f.max)
                elseif body + 4 * count > len then
                  problem(ctx, tree, brange(buf, target, 4), fpath .. ": vector of " .. count .. " tables overruns the buffer")
                else
                  local list = {}
                  for k = 0, count - 1 do
                    local el = body + 4 * k
                    local sub = tree:add(brange(buf, el, 4), f.table.name .. " " .. k)
                    local v = walk_table(buf, el + r_u32(s, el), f.table, fpath .. "[" .. k .. "]", sub, ctx, depth + 1)
                    if v ~= nil and f.label then sub:append_text(f.label(v)) end
                    list[#list + 1] = v
                  end
                  vals[f.name] = list
                end
              end
            end
          end
        end
      end
    end
  end
  return vals
end

-------------------------------------------------------------------------------------------------
-- AI-TCP specs

local MAX_SAFE_HI = 2097152 -- a u64 is above 2^53 - 1 iff its high word is >= 2^21

local function show_node_id(pf)
  return function(tree, buf, at) tree:add(pf, brange(buf, at, 16)) end
end

local PACKET_SPEC = {
  name = "Packet",
  fields = {
    { name = "header", kind = "struct", size = 8, required = true, show = function(tree, buf, at, ctx, vals)
      local h = tree:add(brange(buf, at, 8), "PacketHeader")
      h:add(F.type, brange(buf, at, 1))
      local fl = h:add(F.flags, brange(buf, at + 1, 1))
      fl:add(F["flags.ack_requested"], brange(buf, at + 1, 1))
      fl:add(F["flags.signed"], brange(buf, at + 1, 1))
      fl:add(F["flags.bulk"], brange(buf, at + 1, 1))
      fl:add(F["flags.reserved"], brange(buf, at + 1, 1))
      h:add(F.hop_limit, brange(buf, at + 2, 1))
      local ri = h:add(F.reserved, brange(buf, at + 3, 1))
      h:add_le(F.packet_id, brange(buf, at + 4, 4))
      vals._header_tree, vals._reserved_item, vals._flags_item = h, ri, fl
    end },
    { name = "src", kind = "struct", size = 16, required = true, show = show_node_id(F.src) },
    { name = "dst", kind = "struct", size = 16, show = show_node_id(F.dst) },
    { name = "payload", kind = "bytes", pf = F.payload, len_pf = F.payload_len, max = MAX_FRAME_BYTES, absent_len = true },
    { name = "signature", kind = "bytes", pf = F.signature, exact = 64 },
    { name = "path_cost", kind = "scalar", size = 4, pf = F.path_cost, default = 0 },
  },
}

local HANDSHAKE_SPEC = {
  name = "Handshake",
  fields = {
    { name = "pattern", kind = "scalar", size = 1, pf = F["hs.pattern"], default = 0 },
    { name = "message", kind = "scalar", size = 1, pf = F["hs.message"], default = 0 },
    { name = "sender_index", kind = "scalar", size = 4, pf = F["hs.sender_index"], default = 0 },
    { name = "receiver_index", kind = "scalar", size = 4, pf = F["hs.receiver_index"], default = 0 },
    { name = "noise", kind = "bytes", pf = F["hs.noise"], len_pf = F["hs.noise_len"], required = true, max = MAX_NOISE },
  },
}

local LINK_SPEC = {
  name = "LinkInfo",
  fields = {
    { name = "kind", kind = "scalar", size = 1, pf = F["ann.link_kind"], default = 0 },
    { name = "name", kind = "string", pf = F["ann.link_name"], max = MAX_NAME },
    { name = "mtu", kind = "scalar", size = 2, pf = F["ann.link_mtu"], default = 0 },
    { name = "bitrate", kind = "scalar", size = 4, pf = F["ann.link_bitrate"], default = 0 },
  },
}

local ANNOUNCE_SPEC = {
  name = "Announce",
  fields = {
    { name = "identity_key", kind = "bytes", pf = F["ann.identity_key"], required = true, exact = 32 },
    { name = "static_key", kind = "bytes", pf = F["ann.static_key"], required = true, exact = 32 },
    { name = "capabilities", kind = "scalar", size = 4, pf = F["ann.capabilities"], default = 0, after = function(tree, range, v)
      if range == nil then return end
      tree:add_le(F["ann.cap.relay"], range)
      tree:add_le(F["ann.cap.store_and_forward"], range)
      tree:add_le(F["ann.cap.backhaul"], range)
    end },
    { name = "links", kind = "tables", table = LINK_SPEC, max = MAX_LINKS, count_pf = F["ann.links_count"], label = function(v)
      return string.format(": %s %s, MTU %s", LINK_KIND[v.kind or 0] or tostring(v.kind), qstr(v.name), tostring(v.mtu))
    end },
    { name = "timestamp", kind = "scalar", size = 8, pf = F["ann.timestamp"], default = 0, after = function(tree, range, v, ctx)
      if range == nil then return end
      local lo, hi = v[1], v[2]
      if hi >= MAX_SAFE_HI then
        problem(ctx, tree, range, "Announce.timestamp: " .. tostring(range:le_uint64()) .. " is out of range (above 2^53 - 1)")
        return
      end
      local ms = hi * 4294967296 + lo
      local secs = math.floor(ms / 1000)
      local item = tree:add(F["ann.time"], range, NSTime.new(secs, (ms - secs * 1000) * 1000000))
      item:set_generated()
    end },
    { name = "interval_ms", kind = "scalar", size = 4, pf = F["ann.interval_ms"], default = 0 },
    { name = "uuid", kind = "bytes", pf = F["ann.uuid"], exact = 16 },
    { name = "mesh_ip", kind = "scalar", size = 4, pf = F["ann.mesh_ip"], default = 0, after = function(tree, range, v)
      if range == nil or v == 0 then return end
      local item = tree:add(F["ann.mesh_ip_addr"], range, Address.ip(string.format("%d.%d.%d.%d", math.floor(v / 16777216) % 256, math.floor(v / 65536) % 256, math.floor(v / 256) % 256, v % 256)))
      item:set_generated()
    end },
    { name = "name", kind = "string", pf = F["ann.name"], max = MAX_NAME },
  },
}

-------------------------------------------------------------------------------------------------
-- Fragment reassembly state (reset when a capture is (re)opened)

local reasm = {}        -- key -> { count, chunks = { [index] = bytes }, frames = { [index] = frame number }, have, done }
local reasm_done = {}   -- frame number -> { bytes, key, frames }
local reasm_first = {}  -- frame number -> key (fragments seen in that frame, for "reassembled in")

function aitcp.init()
  reasm, reasm_done, reasm_first = {}, {}, {}
end

local f_iface = Field.new("frame.interface_id")

-------------------------------------------------------------------------------------------------
-- AI-TCP frames

local dissect_frame -- forward

-- The first byte of a frame. aitcp.vk/version/kind describe the outermost frame of the packet
-- (a Hop frame on LoRa: kind 4), so that each occurs once per packet; the frame inside a hop
-- header, and a reassembled frame, have theirs as aitcp.inner.vk/version/kind.
local function vk_items(tvb, tree, ctx)
  local r = tvb:range(0, 1)
  if (ctx.depth or 0) == 0 then
    tree:add(F.vk, r)
    tree:add(F.version, r)
    tree:add(F.kind, r)
  else
    tree:add(F["inner.vk"], r)
    tree:add(F["inner.version"], r)
    tree:add(F["inner.kind"], r)
  end
end

local function type_name(t)
  return TYPE[t] or string.format("type 0x%02x", t)
end

local function dissect_data(tvb, pinfo, tree, ctx)
  local n = tvb:len()
  local t = tree:add(aitcp, tvb:range(0, n), "Data frame")
  vk_items(tvb, t, ctx)
  if n < DATA_HEADER_BYTES + TAG_BYTES then
    problem(ctx, t, tvb:range(0, n), "length: Data frame of " .. n .. " bytes is shorter than " .. (DATA_HEADER_BYTES + TAG_BYTES) .. " (32-byte header + 16-byte tag)")
    -- show what there is
    if n >= 2 then t:add(F.type, tvb:range(1, 1)) end
    if n >= 3 then t:add(F.flags, tvb:range(2, 1)) end
    if n >= 4 then t:add(F.hop_limit, tvb:range(3, 1)) end
    if n >= 8 then t:add_le(F.session, tvb:range(4, 4)) end
    if n >= 24 then t:add(F.dst, tvb:range(8, 16)) end
    return "Data (truncated, " .. n .. " B)"
  end
  if n > MAX_FRAME_BYTES then
    problem(ctx, t, tvb:range(0, n), "length: Data frame of " .. n .. " bytes exceeds " .. MAX_FRAME_BYTES)
  end
  local typ = tvb:range(1, 1):uint()
  local ti = t:add(F.type, tvb:range(1, 1))
  if TYPE[typ] == nil then problem(ctx, ti, tvb:range(1, 1), string.format("type: 0x%02x is not a known packet type", typ)) end
  local fl = t:add(F.flags, tvb:range(2, 1))
  fl:add(F["flags.ack_requested"], tvb:range(2, 1))
  fl:add(F["flags.signed"], tvb:range(2, 1))
  fl:add(F["flags.bulk"], tvb:range(2, 1))
  fl:add(F["flags.reserved"], tvb:range(2, 1))
  t:add(F.hop_limit, tvb:range(3, 1))
  local session = tvb:range(4, 4):le_uint()
  t:add_le(F.session, tvb:range(4, 4))
  t:add(F.dst, tvb:range(8, 16))
  t:add(F.seq_protected, tvb:range(24, 8))
  local clen = n - DATA_HEADER_BYTES - TAG_BYTES
  t:add(F.ciphertext, tvb:range(DATA_HEADER_BYTES, clen))
  local cl = t:add(F.ciphertext_len, tvb:range(DATA_HEADER_BYTES, clen), clen)
  cl:set_generated()
  t:add(F.tag, tvb:range(n - TAG_BYTES, TAG_BYTES))
  local info = string.format("Data %s session %s → dst %s, %d B", type_name(typ), hex32(session), short_id(tvb:raw(8, 4)), clen)
  t:append_text(": " .. info)
  return info
end

local function node_text(buf, at)
  if at == nil then return "*" end
  return short_id(buf.s:sub(at + 1, at + 4))
end

local function dissect_handshake_payload(buf, vals, tree, ctx)
  local p = vals.payload
  if p == nil then
    problem(ctx, tree, nil, "Packet.payload: a HANDSHAKE packet has no payload")
    return "Handshake (no payload)"
  end
  local ht = tree:add(brange(buf, p.at, p.count), "Handshake")
  if p.count < 8 then
    problem(ctx, ht, brange(buf, p.at, p.count), "Handshake: buffer of " .. p.count .. " bytes is shorter than the 8-byte minimum")
    return "Handshake (malformed)"
  end
  local hb = fb_buffer(buf.tvb, buf.base + p.at, p.count)
  local before = ctx.problems or 0
  local hv = walk_table(hb, r_u32(hb.s, 0), HANDSHAKE_SPEC, "Handshake", ht, ctx, 0)
  if hv == nil then return "Handshake (malformed)" end
  local pattern, message = hv.pattern or 0, hv.message or 0
  local count = PATTERN_MESSAGES[pattern]
  if count == nil then
    problem(ctx, ht, nil, "Handshake.pattern: " .. pattern .. " is not XX (1) or IK (2)")
  elseif message >= count then
    problem(ctx, ht, nil, "Handshake.message: " .. message .. " is past the last message (" .. (count - 1) .. ") of the pattern")
  end
  local info = string.format("Handshake %s %d/%s", PATTERN[pattern] or ("pattern " .. pattern), message + 1, count and tostring(count) or "?")
  if hv.sender_index then info = info .. " sender " .. hex32(hv.sender_index) end
  if hv.receiver_index and hv.receiver_index ~= 0 then info = info .. " receiver " .. hex32(hv.receiver_index) end
  ht:append_text(": " .. info)
  return info
end

local function dissect_announce_payload(buf, vals, tree, ctx)
  local p = vals.payload
  if p == nil then
    problem(ctx, tree, nil, "Packet.payload: an ANNOUNCE packet has no payload")
    return "Announce (no payload)"
  end
  local at = tree:add(brange(buf, p.at, p.count), "Announce")
  if p.count < 8 then
    problem(ctx, at, brange(buf, p.at, p.count), "Announce: buffer of " .. p.count .. " bytes is shorter than the 8-byte minimum")
    return "Announce (malformed)"
  end
  local ab = fb_buffer(buf.tvb, buf.base + p.at, p.count)
  local av = walk_table(ab, r_u32(ab.s, 0), ANNOUNCE_SPEC, "Announce", at, ctx, 0)
  local info = "Announce from " .. node_text(buf, vals.src)
  if av ~= nil then
    if av.name ~= nil then info = info .. " " .. qstr(av.name) end
    if type(av.links) == "table" then info = info .. ", " .. #av.links .. (#av.links == 1 and " link" or " links") end
  end
  at:append_text(": " .. info)
  return info
end

local function dissect_packet(tvb, pinfo, tree, ctx)
  local n = tvb:len()
  local t = tree:add(aitcp, tvb:range(0, n), "Packet frame")
  vk_items(tvb, t, ctx)
  if n < 12 then
    problem(ctx, t, tvb:range(0, n), "length: Packet frame of " .. n .. " bytes is too short (4-byte prefix + 8-byte FlatBuffers minimum)")
    return "Packet (truncated, " .. n .. " B)"
  end
  if n > MAX_FRAME_BYTES then
    problem(ctx, t, tvb:range(0, n), "length: Packet frame of " .. n .. " bytes exceeds " .. MAX_FRAME_BYTES)
  end
  local pr = tvb:range(1, 3)
  local pi = t:add(F.prefix, pr)
  if tvb:raw(1, 3) ~= "\0\0\0" then problem(ctx, pi, pr, "prefix: Packet frame bytes 1..3 must be zero") end
  local buf = fb_buffer(tvb, 4, n - 4)
  local root = r_u32(buf.s, 0)
  t:add_le(F.fb_root, tvb:range(4, 4))
  local pt = t:add(tvb:range(4, n - 4), "Packet (FlatBuffers)")
  local vals = walk_table(buf, root, PACKET_SPEC, "Packet", pt, ctx, 0)
  if vals == nil or vals.header == nil or vals.src == nil then return "Packet (malformed)" end
  local h = vals.header
  local typ, flags, reserved = r_u8(buf.s, h), r_u8(buf.s, h + 1), r_u8(buf.s, h + 3)
  if reserved ~= 0 then problem(ctx, vals._reserved_item, brange(buf, h + 3, 1), "Packet.header.reserved: must be zero, got " .. reserved) end
  if TYPE[typ] == nil then problem(ctx, vals._header_tree, brange(buf, h, 1), string.format("Packet.header.type: 0x%02x is not a known packet type", typ)) end
  if band(flags, 0xF8) ~= 0 then problem(ctx, vals._flags_item, brange(buf, h + 1, 1), string.format("Packet.header.flags: 0x%02x has undefined bits", flags)) end
  local signed = band(flags, 0x02) ~= 0
  if signed ~= (vals.signature ~= nil) then
    problem(ctx, pt, nil, signed and "Packet.signature: Signed flag set but no signature" or "Packet.signature: signature present without the Signed flag")
  end
  if vals.dst ~= nil and buf.s:sub(vals.dst + 1, vals.dst + 16) == string.rep("\0", 16) then
    problem(ctx, pt, brange(buf, vals.dst, 16), "Packet.dst: the all-zero node ID; a broadcast omits dst")
  end
  local info
  if typ == 0x01 then
    info = dissect_handshake_payload(buf, vals, t, ctx) .. " " .. node_text(buf, vals.src) .. " → " .. node_text(buf, vals.dst)
  elseif typ == 0x02 then
    if vals.dst ~= nil then problem(ctx, pt, brange(buf, vals.dst, 16), "Packet.dst: an announce has no destination") end
    if not signed then problem(ctx, pt, brange(buf, h + 1, 1), "Packet.signature: an announce must be signed") end
    info = dissect_announce_payload(buf, vals, t, ctx)
  else
    local plen = vals.payload and vals.payload.count or 0
    info = string.format("Packet %s %s → %s, %d B%s", type_name(typ), node_text(buf, vals.src), node_text(buf, vals.dst), plen, signed and ", signed" or "")
  end
  t:append_text(": " .. info)
  return info
end

local function reassembly_key(pinfo, ctx, frag_id, count)
  local iface = f_iface()
  return table.concat({ iface and tostring(iface.value) or "", tostring(pinfo.src), tostring(pinfo.src_port), tostring(pinfo.dst), tostring(pinfo.dst_port), tostring(ctx.hop_prev or ""), tostring(frag_id), tostring(count) }, "|")
end

local function dissect_fragment(tvb, pinfo, tree, ctx)
  local n = tvb:len()
  local t = tree:add(aitcp, tvb:range(0, n), "Fragment")
  vk_items(tvb, t, ctx)
  if n < FRAGMENT_HEADER_BYTES then
    problem(ctx, t, tvb:range(0, n), "length: fragment of " .. n .. " bytes is shorter than its 8-byte header")
    if n >= 2 then t:add(F["frag.index"], tvb:range(1, 1)) end
    if n >= 3 then t:add(F["frag.count"], tvb:range(2, 1)) end
    return "Fragment (truncated, " .. n .. " B)"
  end
  local index, count, reserved = tvb:range(1, 1):uint(), tvb:range(2, 1):uint(), tvb:range(3, 1):uint()
  local ii = t:add(F["frag.index"], tvb:range(1, 1))
  local ci = t:add(F["frag.count"], tvb:range(2, 1))
  local ri = t:add(F["frag.reserved"], tvb:range(3, 1))
  local frag_id = tvb:range(4, 4):le_uint()
  t:add_le(F["frag.id"], tvb:range(4, 4))
  local clen = n - FRAGMENT_HEADER_BYTES
  t:add(F["frag.chunk"], tvb:range(FRAGMENT_HEADER_BYTES, clen))
  t:add(F["frag.chunk_len"], tvb:range(FRAGMENT_HEADER_BYTES, clen), clen):set_generated()
  local valid = true
  if count < 1 or count > MAX_FRAGMENTS then
    problem(ctx, ci, tvb:range(2, 1), "count: fragment count " .. count .. " is not 1.." .. MAX_FRAGMENTS); valid = false
  elseif index >= count then
    problem(ctx, ii, tvb:range(1, 1), "index: fragment index " .. index .. " is not below count " .. count); valid = false
  end
  if reserved ~= 0 then problem(ctx, ri, tvb:range(3, 1), "reserved: fragment reserved byte is " .. reserved .. ", not 0"); valid = false end
  if clen == 0 then problem(ctx, t, tvb:range(0, n), "chunk: fragment has an empty chunk"); valid = false end
  local info = string.format("Fragment %d/%d id %s, %d B", index + 1, count, hex32(frag_id), clen)

  if valid and aitcp.prefs.reassemble then
    local num = pinfo.number
    if not pinfo.visited then
      local key = reassembly_key(pinfo, ctx, frag_id, count)
      local r = reasm[key]
      if r == nil or r.done then
        r = { count = count, chunks = {}, frames = {}, have = 0 }
        reasm[key] = r
      end
      if r.chunks[index] == nil then
        r.chunks[index] = tvb:raw(FRAGMENT_HEADER_BYTES, clen)
        r.frames[index] = num
        r.have = r.have + 1
        if r.have == r.count then
          r.done = num
          local parts, frames = {}, {}
          for k = 0, r.count - 1 do parts[#parts + 1] = r.chunks[k]; frames[#frames + 1] = tostring(r.frames[k]) end
          reasm_done[num] = { bytes = table.concat(parts), frames = table.concat(frames, ",") }
          for k = 0, r.count - 1 do
            reasm_first[r.frames[k]] = reasm_first[r.frames[k]] or num
          end
        end
      elseif r.chunks[index] ~= tvb:raw(FRAGMENT_HEADER_BYTES, clen) then
        t:add_proto_expert_info(ex_warn, "fragment " .. index .. " of id " .. hex32(frag_id) .. " repeats with other bytes; the first copy is kept")
      end
    end
    local done = reasm_done[num]
    if done ~= nil then
      local whole = ByteArray.new(done.bytes, true):tvb("Reassembled AI-TCP frame")
      t:add(F["frag.reassembled_len"], tvb:range(0, n), whole:len()):set_generated()
      t:add(F["frag.frames"], tvb:range(0, n), done.frames):set_generated()
      local sub = { ex = ctx.ex, reassembled = true, hop_prev = ctx.hop_prev, depth = (ctx.depth or 0) + 1 }
      local inner = dissect_frame(whole, pinfo, tree, sub)
      if sub.first_problem then
        ctx.first_problem = ctx.first_problem or sub.first_problem
        ctx.problems = (ctx.problems or 0) + sub.problems
      end
      info = info .. " [reassembled " .. whole:len() .. " B: " .. inner .. "]"
    elseif reasm_first[num] ~= nil and reasm_first[num] ~= num then
      t:add(F["frag.reassembled_in"], tvb:range(0, n), reasm_first[num]):set_generated()
    end
  end
  t:append_text(": " .. info)
  return info
end

local function dissect_hop(tvb, pinfo, tree, ctx)
  local n = tvb:len()
  local t = tree:add(aitcp, tvb:range(0, math.min(n, HOP_HEADER_BYTES)), "Hop header")
  vk_items(tvb, t, ctx)
  if n <= HOP_HEADER_BYTES then
    problem(ctx, t, tvb:range(0, n), "length: hop frame of " .. n .. " bytes is too short (header is " .. HOP_HEADER_BYTES .. ", then a frame)")
    if n >= 8 then t:add_le(F["hop.next"], tvb:range(4, 4)) end
    if n >= 12 then t:add_le(F["hop.prev"], tvb:range(8, 4)) end
    return "Hop (truncated, " .. n .. " B)"
  end
  local rr = tvb:range(1, 3)
  local ri = t:add(F["hop.reserved"], rr)
  if tvb:raw(1, 3) ~= "\0\0\0" then problem(ctx, ri, rr, "HopHeader.reserved: reserved bytes must be zero") end
  local nxt, prev = tvb:range(4, 4):le_uint(), tvb:range(8, 4):le_uint()
  t:add_le(F["hop.next"], tvb:range(4, 4))
  local pi = t:add_le(F["hop.prev"], tvb:range(8, 4))
  if prev == 0 then problem(ctx, pi, tvb:range(8, 4), "HopHeader.prev: 0 (no sender hint)") end
  local head = string.format("Hop %08x → %s", prev, nxt == 0 and "all" or string.format("%08x", nxt))
  t:append_text(": " .. head)
  local sub = { ex = ctx.ex, in_hop = true, hop_prev = prev, depth = (ctx.depth or 0) + 1 }
  local inner = dissect_frame(tvb:range(HOP_HEADER_BYTES, n - HOP_HEADER_BYTES):tvb(), pinfo, tree, sub)
  if sub.first_problem then
    ctx.first_problem = ctx.first_problem or sub.first_problem
    ctx.problems = (ctx.problems or 0) + sub.problems
  end
  return "[" .. head .. "] " .. inner
end

dissect_frame = function(tvb, pinfo, tree, ctx)
  local n = tvb:len()
  if n == 0 then
    local t = tree:add(aitcp, tvb:range(0, 0), "Empty frame")
    problem(ctx, t, nil, "vk: empty frame")
    return "empty frame"
  end
  local vk = tvb:range(0, 1):uint()
  if vk == 0x11 then return dissect_data(tvb, pinfo, tree, ctx)
  elseif vk == 0x12 then return dissect_packet(tvb, pinfo, tree, ctx)
  elseif vk == 0x13 and not ctx.reassembled then return dissect_fragment(tvb, pinfo, tree, ctx)
  elseif vk == 0x14 and not ctx.in_hop and not ctx.reassembled then return dissect_hop(tvb, pinfo, tree, ctx)
  end
  local t = tree:add(aitcp, tvb:range(0, n), "Unknown frame")
  vk_items(tvb, t, ctx)
  local why
  if vk == 0x13 then why = "a fragment inside a reassembled frame"
  elseif vk == 0x14 then why = ctx.in_hop and "a hop header inside a hop frame" or "a hop header inside a reassembled frame"
  elseif rshift(vk, 4) ~= 1 then why = "version " .. rshift(vk, 4) .. " is not 1"
  else why = "kind " .. band(vk, 0x0F) .. " is not Data (1), Packet (2), Fragment (3) or Hop (4)" end
  problem(ctx, t, tvb:range(0, 1), string.format("vk: 0x%02x: %s", vk, why))
  t:add(F.payload, tvb:range(0, n))
  return string.format("unknown frame vk 0x%02x, %d B", vk, n)
end

-- Set by kairo_fb while it hands a radio payload to aitcp, so that the Info column keeps both.
local info_prefix = nil

local function dissect_aitcp(tvb, pinfo, tree)
  local n = tvb:len()
  local ctx = { ex = ex_malformed, depth = 0 }
  local info
  if n == 4 and tvb:raw(0, 4) == BEACON then
    local t = tree:add(aitcp, tvb:range(0, 4), "UDP discovery beacon")
    t:add(F.beacon, tvb:range(0, 4))
    info = "Beacon (UDP discovery)"
  else
    info = dissect_frame(tvb, pinfo, tree, ctx)
  end
  if ctx.first_problem then info = info .. " [Malformed: " .. ctx.first_problem .. "]" end
  if info_prefix ~= nil then
    pinfo.cols.protocol = "kairo-fb/AI-TCP"
    pinfo.cols.info = info_prefix .. ": " .. info
  else
    pinfo.cols.protocol = "AI-TCP"
    pinfo.cols.info = info
  end
end

function aitcp.dissector(tvb, pinfo, tree)
  local ok, err = pcall(dissect_aitcp, tvb, pinfo, tree)
  if not ok then
    tree:add_proto_expert_info(ex_bug, "kairo-gw.lua bug (please report): " .. tostring(err))
  end
  return tvb:len()
end

-------------------------------------------------------------------------------------------------
-- kairo_eth: dst, src, EtherType 0x88B5, then payload length (2, big-endian), frame, padding

local aitcp_handle -- Dissector.get("aitcp") once registered

local function dissect_eth(tvb, pinfo, tree)
  local n = tvb:len()
  local t = tree:add(keth, tvb:range(0, math.min(n, 2)))
  if n < 2 then
    t:add_tvb_expert_info(ex_eth_malformed, tvb:range(0, n), "kairo_eth.length: " .. n .. " bytes after the EtherType, no room for the 2-byte payload length")
    pinfo.cols.protocol = "kairo-eth"
    pinfo.cols.info = "kairo-gw Ethernet frame, truncated [Malformed: kairo_eth.length]"
    return n
  end
  local len = tvb:range(0, 2):uint()
  local li = t:add(F["eth.length"], tvb:range(0, 2))
  local avail = n - 2
  local take = len
  if len > avail then
    li:add_tvb_expert_info(ex_eth_malformed, tvb:range(0, 2), "kairo_eth.length: " .. len .. " bytes claimed, only " .. avail .. " in the frame")
    take = avail
  end
  if avail > take then t:add(F["eth.padding"], tvb:range(2 + take, avail - take)) end
  aitcp_handle:call(tvb:range(2, take):tvb(), pinfo, tree)
  if len > avail then pinfo.cols.info:append(" [Malformed: kairo_eth.length " .. len .. " > " .. avail .. "]") end
  return n
end

function keth.dissector(tvb, pinfo, tree)
  local ok, r = pcall(dissect_eth, tvb, pinfo, tree)
  if not ok then
    tree:add_proto_expert_info(ex_eth_bug, "kairo-gw.lua bug (please report): " .. tostring(r))
    return tvb:len()
  end
  return r
end

-------------------------------------------------------------------------------------------------
-- kairo_fb: header(4) || FlatBuffers Frame || CRC-32C LE(4)

local function fbs(name, size, signed, default)
  local d = FB_FIELD_TYPES[name]
  local kind = (d[1] == STR and "string") or (d[1] == BYTES and "bytes") or "scalar"
  local f = { name = name, kind = kind, size = size, signed = signed, pf = F["fb." .. name], default = default or 0 }
  if kind == "string" then f.max = (name == "message") and FB_MAX_MESSAGE or FB_MAX_NAME; f.default = nil end
  return f
end

local CONFIGURE_FIELDS = {
  fbs("frequency_hz", 4), fbs("bandwidth_hz", 4), fbs("spreading_factor", 1), fbs("coding_rate", 1),
  fbs("tx_power_dbm", 1, true), fbs("sync_word", 1), fbs("preamble_symbols", 2),
}

local function payload_field()
  return { name = "payload", kind = "bytes", pf = F["fb.payload"], required = true, max = FB_MAX_PAYLOAD }
end

local function concat(a, b)
  local out = {}
  for _, v in ipairs(a) do out[#out + 1] = v end
  for _, v in ipairs(b) do out[#out + 1] = v end
  return out
end

local FB_SPECS = {
  [1] = { name = "Hello", fields = { fbs("protocol_version", 1), fbs("session", 4), fbs("heartbeat_ms", 2), fbs("host_name") } },
  [2] = { name = "HelloAck", fields = { fbs("protocol_version", 1), fbs("session", 4), fbs("firmware_name"), fbs("firmware_version"), fbs("radio_chip", 1), fbs("mtu", 2), fbs("queue_depth", 1), fbs("credits", 1), fbs("capabilities", 4) } },
  [3] = { name = "Configure", fields = CONFIGURE_FIELDS },
  [4] = { name = "ConfigureAck", fields = {} },
  [5] = { name = "Transmit", fields = { fbs("token", 4), payload_field() } },
  [6] = { name = "TxDone", fields = { fbs("token", 4), fbs("airtime_us", 4) } },
  [7] = { name = "Receive", fields = { payload_field(), fbs("rssi_dbm_x4", 2, true), fbs("snr_db_x4", 2, true), fbs("frequency_error_hz", 4, true), fbs("timestamp_us", 8) } },
  [8] = { name = "ChannelActivity", fields = { fbs("busy", 1) } },
  [9] = { name = "GetStatus", fields = {} },
  [10] = { name = "Status", fields = concat({ fbs("rx_ok", 4), fbs("rx_crc_error", 4), fbs("tx_ok", 4), fbs("tx_fail", 4), fbs("queue_free", 1), fbs("uptime_ms", 8), fbs("radio_on", 1), fbs("link_errors", 4), fbs("retransmits", 4) }, CONFIGURE_FIELDS) },
  [11] = { name = "Heartbeat", fields = {} },
  [12] = { name = "RadioOnOff", fields = { fbs("on", 1) } },
  [13] = { name = "RadioOnOffAck", fields = { fbs("on", 1) } },
  [14] = { name = "Reset", fields = {} },
  [15] = { name = "Error", fields = { fbs("code", 1), fbs("ref_seq", 2, true, -1), fbs("token", 4), fbs("field"), fbs("message") } },
  [16] = { name = "Credits", fields = { fbs("grant", 1) } },
}
-- Booleans are stored as one byte; shown as bool fields (value = byte ~= 0).
for _, spec in pairs(FB_SPECS) do
  for _, f in ipairs(spec.fields) do
    local d = FB_FIELD_TYPES[f.name]
    if d[1] == BOOL then f.default = false end
  end
end

local function fb_frame_spec(on_type)
  return { name = "Frame", fields = { { name = "body", kind = "union", members = FB_SPECS, allow_unknown = true, required = true, on_type = on_type } } }
end

local function flag_names(flags)
  local names = {}
  if band(flags, 0x01) ~= 0 then names[#names + 1] = "NEEDS_ACK" end
  if band(flags, 0x02) ~= 0 then names[#names + 1] = "ACK_ONLY" end
  if band(flags, 0x04) ~= 0 then names[#names + 1] = "SYN" end
  if band(flags, 0xF8) ~= 0 then names[#names + 1] = string.format("0x%02x?", band(flags, 0xF8)) end
  return #names > 0 and table.concat(names, "|") or "unreliable"
end

local function fb_message_info(typ, v)
  local name = FB_MSG[typ] or ("Body type " .. typ)
  if v == nil then return name end
  if typ == 1 then return string.format("%s session %s host %s", name, hex32(v.session or 0), qstr(v.host_name))
  elseif typ == 2 then return string.format("%s session %s %s %s, MTU %d", name, hex32(v.session or 0), v.firmware_name or "", v.firmware_version or "", v.mtu or 0)
  elseif typ == 3 then return string.format("%s %d Hz SF%d", name, v.frequency_hz or 0, v.spreading_factor or 0)
  elseif typ == 5 then return string.format("%s token %d, %d B", name, v.token or 0, v.payload and v.payload.count or 0)
  elseif typ == 6 then return string.format("%s token %d, %d µs", name, v.token or 0, v.airtime_us or 0)
  elseif typ == 7 then return string.format("%s %d B, RSSI %.2f dBm, SNR %.2f dB", name, v.payload and v.payload.count or 0, (v.rssi_dbm_x4 or 0) / 4, (v.snr_db_x4 or 0) / 4)
  elseif typ == 8 then return string.format("%s %s", name, (v.busy ~= nil and v.busy ~= false and v.busy ~= 0) and "busy" or "free")
  elseif typ == 12 or typ == 13 then return string.format("%s %s", name, (v.on ~= nil and v.on ~= false and v.on ~= 0) and "on" or "off")
  elseif typ == 15 then return string.format("%s %s ref_seq %d%s", name, ERROR_CODE[v.code or 0] or tostring(v.code), v.ref_seq or -1, (v.message and v.message ~= "") and (" " .. qstr(v.message)) or "")
  elseif typ == 16 then return string.format("%s +%d", name, v.grant or 0)
  end
  return name
end

local function dissect_fb(tvb, pinfo, tree)
  local ctx = { ex = ex_fb_malformed }
  pinfo.cols.protocol = "kairo-fb"
  local n = tvb:len()
  local s = raw(tvb, 0, n) or ""
  local cobs = false
  local mode = kfb.prefs.cobs
  local function crc_good(x)
    if #x < FB_MIN_FRAME then return false end
    local want = r_u32(x, #x - 4)
    return want == crc32c(x, 1, #x - 4)
  end
  if mode == COBS_WIRE or (mode == COBS_AUTO and not crc_good(s) and #s > 0) then
    local enc = s
    if enc:byte(#enc) == 0 then enc = enc:sub(1, #enc - 1) end
    local dec = cobs_decode(enc)
    if dec ~= nil and (mode == COBS_WIRE or crc_good(dec)) then
      cobs = true
      s = dec
    elseif mode == COBS_WIRE then
      local t = tree:add(kfb, tvb:range(0, n))
      problem(ctx, t, tvb:range(0, n), "cobs: invalid COBS encoding in a " .. #enc .. "-byte frame")
      pinfo.cols.info = "fb frame [Malformed: cobs]"
      return
    end
  end
  local ftvb = tvb
  if cobs and #s > 0 then
    ftvb = ByteArray.new(s, true):tvb("COBS-decoded link frame")
  elseif cobs then
    ftvb = tvb -- decoded to nothing: only zero-length ranges of it are used below
  end
  n = #s
  local t = tree:add(kfb, ftvb:range(0, n))
  if cobs then t:add(F["fb.cobs"], tvb:range(0, tvb:len()), true):set_generated() end
  if n < FB_MIN_FRAME then
    problem(ctx, t, ftvb:range(0, n), "length: link frame of " .. n .. " bytes is shorter than " .. FB_MIN_FRAME)
    if n >= 1 then t:add(F["fb.version"], ftvb:range(0, 1)) end
    if n >= 2 then t:add(F["fb.flags"], ftvb:range(1, 1)) end
    if n >= 3 then t:add(F["fb.seq"], ftvb:range(2, 1)) end
    if n >= 4 then t:add(F["fb.ack"], ftvb:range(3, 1)) end
    pinfo.cols.info = "fb frame of " .. n .. " B [Malformed: " .. ctx.first_problem .. "]"
    return
  end
  if n > FB_MAX_FRAME then
    problem(ctx, t, ftvb:range(0, n), "size: link frame of " .. n .. " bytes exceeds " .. FB_MAX_FRAME)
  end
  local version, flags, seq, ack = s:byte(1, 4)
  local vi = t:add(F["fb.version"], ftvb:range(0, 1))
  local fl = t:add(F["fb.flags"], ftvb:range(1, 1))
  fl:add(F["fb.flags.needs_ack"], ftvb:range(1, 1))
  fl:add(F["fb.flags.ack_only"], ftvb:range(1, 1))
  fl:add(F["fb.flags.syn"], ftvb:range(1, 1))
  fl:add(F["fb.flags.reserved"], ftvb:range(1, 1))
  t:add(F["fb.seq"], ftvb:range(2, 1))
  t:add(F["fb.ack"], ftvb:range(3, 1))
  local want = r_u32(s, n - 4)
  local got = crc32c(s, 1, n - 4)
  local crc_range = ftvb:range(n - 4, 4)
  -- problems in the order decodeFrameBytes checks them (firmware-bridge/codec.ts)
  local syn = band(flags, 0x04) ~= 0
  local ack_only = band(flags, 0x02) ~= 0
  local needs_ack = band(flags, 0x01) ~= 0
  if band(flags, 0xF8) ~= 0 then problem(ctx, fl, ftvb:range(1, 1), string.format("header.flags: 0x%02x has undefined bits", flags)) end
  if ack_only and (needs_ack or syn) then problem(ctx, fl, ftvb:range(1, 1), "header.flags: ACK_ONLY combined with NEEDS_ACK or SYN") end
  if syn and needs_ack then problem(ctx, fl, ftvb:range(1, 1), "header.flags: SYN combined with NEEDS_ACK") end
  if not syn and version ~= 1 then problem(ctx, vi, ftvb:range(0, 1), "header.version: " .. version .. " is not 1") end
  local body_len = n - 8
  local info
  local head = string.format("seq %d ack %d [%s]", seq, ack, flag_names(flags))
  if ack_only then
    if body_len ~= 0 then problem(ctx, t, ftvb:range(4, body_len), "body: an ACK_ONLY frame carries " .. body_len .. " body bytes") end
    info = "fb ACK_ONLY"
  elseif body_len == 0 then
    problem(ctx, t, ftvb:range(4, 0), "body: a frame without ACK_ONLY has no body")
    info = "fb frame without a body"
  else
    t:add(F["fb.frame"], ftvb:range(4, body_len))
    t:add(F["fb.frame_len"], ftvb:range(4, body_len), body_len):set_generated()
    local ft = t:add(ftvb:range(4, body_len), "Frame (FlatBuffers)")
    local typ_seen = nil
    local spec = fb_frame_spec(function(tr, range, typ, c, absent)
      typ_seen = typ
      local item = absent and tr:add(F["fb.msg"], range, typ) or tr:add(F["fb.msg"], range)
      if absent then item:set_generated() end
      local nm = FB_MSG[typ]
      if nm ~= nil then tr:add(F["fb.msg_name"], range, nm):set_generated() end
      if typ ~= 0 and nm == nil then
        item:add_proto_expert_info(ex_fb_unknown, "Frame.body_type: " .. typ .. " is not a message this dissector knows (a newer protocol version?)")
      end
    end)
    local fvals
    if body_len < 8 then
      problem(ctx, ft, ftvb:range(4, body_len), "Frame: buffer of " .. body_len .. " bytes is shorter than the 8-byte minimum")
    else
      local buf = fb_buffer(ftvb, 4, body_len)
      fvals = walk_table(buf, r_u32(buf.s, 0), spec, "Frame", ft, ctx, 0)
    end
    local typ = typ_seen or 0
    local v = fvals and fvals.body
    if v ~= nil then
      -- derived fields
      if v.rssi_dbm_x4 ~= nil then t:add(F["fb.rssi_dbm"], ftvb:range(4, body_len), v.rssi_dbm_x4 / 4):set_generated() end
      if v.snr_db_x4 ~= nil then t:add(F["fb.snr_db"], ftvb:range(4, body_len), v.snr_db_x4 / 4):set_generated() end
      if v.spreading_factor ~= nil then t:add(F["fb.sf"], ftvb:range(4, body_len), v.spreading_factor):set_generated() end
      if v.payload ~= nil then t:add(F["fb.payload_len"], ftvb:range(4 + v.payload.at, v.payload.count), v.payload.count):set_generated() end
      if typ == 15 and v.ref_seq ~= nil and (v.ref_seq < -1 or v.ref_seq > 255) then
        problem(ctx, t, nil, "Frame.body.ref_seq: " .. v.ref_seq .. " is outside -1..255")
      end
    end
    if typ ~= 0 and fvals ~= nil and ctx.first_problem == nil then
      if syn and typ ~= 1 and typ ~= 2 then problem(ctx, t, nil, "body: a SYN frame carries " .. (FB_MSG[typ] or ("Body type " .. typ)) .. ", not Hello or HelloAck") end
      if not syn and (typ == 1 or typ == 2) then problem(ctx, t, nil, "body: " .. FB_MSG[typ] .. " outside a SYN frame") end
    end
    info = "fb " .. fb_message_info(typ, v)
    if v ~= nil and v.payload ~= nil and (typ == 5 or typ == 7) and v.payload.count > 0 then
      info_prefix = info .. " " .. head
      local ok = pcall(function()
        aitcp_handle:call(ftvb:range(4 + v.payload.at, v.payload.count):tvb(), pinfo, tree)
      end)
      info_prefix = nil
      if not ok then tree:add_proto_expert_info(ex_fb_bug, "kairo-gw.lua bug: the aitcp dissector failed on a radio payload") end
      head = nil
    end
  end
  -- CRC last: it covers everything before it
  t:add_le(F["fb.crc"], crc_range)
  t:add(F["fb.crc_computed"], crc_range, got):set_generated()
  local ok_item = t:add(F["fb.crc_ok"], crc_range, want == got and 1 or 0)
  ok_item:set_generated()
  if want ~= got then
    problem(ctx, ok_item, crc_range, string.format("crc: link frame CRC-32C 0x%08x does not match the computed 0x%08x", want, got))
  end
  local suffix = ctx.first_problem and (" [Malformed: " .. ctx.first_problem .. "]") or ""
  if head ~= nil then
    pinfo.cols.info = info .. " " .. head .. suffix
  else
    pinfo.cols.info:append(suffix)
  end
  t:append_text(": " .. info)
end

function kfb.dissector(tvb, pinfo, tree)
  local ok, err = pcall(dissect_fb, tvb, pinfo, tree)
  if not ok then
    info_prefix = nil
    tree:add_proto_expert_info(ex_fb_bug, "kairo-gw.lua bug (please report): " .. tostring(err))
  end
  return tvb:len()
end

-------------------------------------------------------------------------------------------------
-- Registration

aitcp_handle = Dissector.get("aitcp")

DissectorTable.get("ethertype"):add(0x88B5, keth)
DissectorTable.get("ip.proto"):add(253, aitcp) -- IPv6's next header uses the same table
DissectorTable.get("wtap_encap"):add(wtap_encaps.USER0, kfb)

local udp_table = DissectorTable.get("udp.port")
local loratap_table = DissectorTable.get("loratap.syncword")
local current_ports = nil
local current_syncwords = {}

local function parse_syncwords(text)
  local out = {}
  for word in string.gmatch(text or "", "[^,%s]+") do
    local v = tonumber(word)
    if v ~= nil and v >= 0 and v <= 255 and v == math.floor(v) then out[#out + 1] = v end
  end
  return out
end

local function apply_prefs()
  if current_ports ~= nil and current_ports ~= "" then udp_table:remove(current_ports, aitcp) end
  current_ports = aitcp.prefs.udp_ports
  if current_ports ~= nil and current_ports ~= "" then udp_table:add(current_ports, aitcp) end
  if loratap_table ~= nil then
    for _, w in ipairs(current_syncwords) do loratap_table:remove(w, aitcp) end
    current_syncwords = parse_syncwords(aitcp.prefs.loratap_syncwords)
    for _, w in ipairs(current_syncwords) do loratap_table:add(w, aitcp) end
  end
end

function aitcp.prefs_changed()
  apply_prefs()
end

apply_prefs()

-- "Decode As…" in Wireshark: AI-TCP on any UDP port or LoRa sync word.
for _, entry in ipairs({ { udp_table, aitcp }, { loratap_table, aitcp } }) do
  if entry[1] ~= nil then pcall(function() entry[1]:add_for_decode_as(entry[2]) end) end
end
