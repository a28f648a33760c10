/**
 * The full packet path of appliance/core: encode + seal of a Data frame (Session.seal) and
 * verify + open + decode (Session.open), against raw libsodium in C (the aead suite's anchors)
 * and against the same packet path written in pure JS with @noble/ciphers (built here, checked
 * byte for byte against Session before it is timed). Also: a full IK handshake per second, and
 * the overhead of a real sealed packet as relayed over LoRa.
 *
 * Ids: packet_seal_{64,255,1k}, packet_open_{64,255,1k} (vs libsodium_c, noble),
 * packet_seal_1k_noble, packet_open_1k_noble, handshake_ik, packet_overhead_lora (vs reticulum).
 */
import { chacha20, chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { blake2b } from '../../appliance/core/crypto.js'
import { Identity } from '../../appliance/core/identity.js'
import { Session, HP_KEY_CONTEXT } from '../../appliance/core/session.js'
import { SessionManager } from '../../appliance/core/sessions.js'
import { ReplayWindow } from '../../appliance/core/replay.js'
import { decodePacket } from '../../appliance/core/wire/packet.js'
import { DATA_HEADER_BYTES, LORA_MTU, PacketType, TAG_BYTES, VK_DATA } from '../../appliance/core/wire/constants.js'
import { measure, ratios, type BenchResult, type Suite } from '../lib.js'

/** Reticulum's per-packet overhead on a link: 19-byte header + 48-byte token (Fernet-like). */
const RETICULUM_OVERHEAD = 67

const SIZES = [
  { label: '64', bytes: 64 },
  { label: '255', bytes: 255 },
  { label: '1k', bytes: 1024 },
]

const alice = Identity.fromSeed(Buffer.alloc(32, 1))
const bob = Identity.fromSeed(Buffer.alloc(32, 2))
const kAB = Buffer.alloc(32, 0x41)
const kBA = Buffer.alloc(32, 0x42)

function sender(): Session {
  return new Session({ localIndex: 1, remoteIndex: 2, sendKey: kAB, recvKey: kBA, localNodeId: alice.nodeId, remoteNodeId: bob.nodeId, initiator: true })
}
function receiver(): Session {
  return new Session({ localIndex: 2, remoteIndex: 1, sendKey: kBA, recvKey: kAB, localNodeId: bob.nodeId, remoteNodeId: alice.nodeId, initiator: false })
}

/** The Data-frame seal and open of docs/protocol.md section 4, in pure JS on @noble/ciphers. */
class NoblePacketPath {
  private seq = 0
  private readonly hp: Uint8Array
  private readonly window = new ReplayWindow()
  constructor(private readonly key: Uint8Array, private readonly remoteIndex: number, private readonly dst: Uint8Array) {
    this.hp = blake2b(32, [HP_KEY_CONTEXT], key)
  }
  private static nonce(seq: number): Uint8Array {
    const n = new Uint8Array(12)
    new DataView(n.buffer).setUint32(4, seq % 2 ** 32, true)
    new DataView(n.buffer).setUint32(8, Math.floor(seq / 2 ** 32), true)
    return n
  }
  seal(type: number, flags: number, payload: Uint8Array, hop: number): Uint8Array {
    const seq = this.seq++
    const header = new Uint8Array(DATA_HEADER_BYTES)
    const dv = new DataView(header.buffer)
    header[0] = VK_DATA
    header[1] = type
    header[2] = flags
    dv.setUint32(4, this.remoteIndex, true)
    header.set(this.dst, 8)
    dv.setUint32(24, seq % 2 ** 32, true)
    dv.setUint32(28, Math.floor(seq / 2 ** 32), true)
    const sealed = chacha20poly1305(this.key, NoblePacketPath.nonce(seq), header).encrypt(payload)
    const tag = sealed.subarray(sealed.length - TAG_BYTES)
    const counter = new DataView(tag.buffer, tag.byteOffset).getUint32(0, true)
    const protectedSeq = chacha20(this.hp, tag.slice(4, 16), header.slice(24, 32), undefined, counter)
    header.set(protectedSeq, 24)
    header[3] = hop
    const frame = new Uint8Array(DATA_HEADER_BYTES + sealed.length)
    frame.set(header)
    frame.set(sealed, DATA_HEADER_BYTES)
    return frame
  }
  open(frame: Uint8Array): Uint8Array {
    const tag = frame.subarray(frame.length - TAG_BYTES)
    const counter = new DataView(tag.buffer, tag.byteOffset).getUint32(0, true)
    const ad = Uint8Array.from(frame.subarray(0, DATA_HEADER_BYTES))
    ad.set(chacha20(this.hp, tag.slice(4, 16), ad.subarray(24, 32), undefined, counter), 24)
    ad[3] = 0
    const dv = new DataView(ad.buffer)
    const seq = dv.getUint32(24, true) + dv.getUint32(28, true) * 2 ** 32
    if (!this.window.check(seq)) throw new Error('replay')
    const plain = chacha20poly1305(this.key, NoblePacketPath.nonce(seq), ad).decrypt(frame.subarray(DATA_HEADER_BYTES))
    this.window.update(seq)
    return plain
  }
}

/** Cycles through pre-sealed frames; a new receiver takes over when they run out (no replays). */
function openLoop(frames: Uint8Array[], open: (rx: { open(f: Uint8Array): unknown }, f: Uint8Array) => void, makeRx: () => { open(f: Uint8Array): unknown }): () => void {
  let rx = makeRx()
  let i = 0
  return () => {
    if (i === frames.length) {
      i = 0
      rx = makeRx()
    }
    open(rx, frames[i++]!)
  }
}

export const suite: Suite = {
  name: 'packet',
  async run(ctx) {
    const results: BenchResult[] = []

    // Cross-check: the pure-JS path produces the same bytes as Session.
    {
      const s = sender()
      const n = new NoblePacketPath(kAB, 2, bob.nodeId)
      for (const len of [0, 64, 1024]) {
        const p = Buffer.alloc(len, 7)
        const ours = Buffer.from(s.seal(PacketType.TaskRequest, 1, p, 9))
        const theirs = Buffer.from(n.seal(PacketType.TaskRequest, 1, p, 9))
        if (!ours.equals(theirs)) throw new Error(`packet: the pure-JS path disagrees with Session.seal at ${len} bytes`)
        if (!Buffer.from(new NoblePacketPath(kAB, 2, bob.nodeId).open(ours)).equals(p)) throw new Error('packet: pure-JS open failed')
      }
    }

    for (const size of SIZES) {
      const payload = Buffer.alloc(size.bytes, 0x5a)
      ctx.progress(`packet: seal ${size.label}…`)
      let s = sender()
      const seal = measure(`packet seal ${size.label}`, () => {
        if (s.sent > 1e9) s = sender()
        s.seal(PacketType.TaskRequest, 0, payload)
      })
      const frames: Uint8Array[] = []
      const tx = sender()
      for (let i = 0; i < 4096; i++) frames.push(tx.sealCopy(PacketType.TaskRequest, 0, payload))
      ctx.progress(`packet: open ${size.label}…`)
      const open = measure(`packet open ${size.label}`, openLoop(frames, (rx, f) => rx.open(f), receiver))

      let nobleSeal: number | undefined
      let nobleOpen: number | undefined
      if (size.label === '1k') {
        ctx.progress('packet: pure-JS seal 1k…')
        let n = new NoblePacketPath(kAB, 2, bob.nodeId)
        let count = 0
        nobleSeal = measure('noble packet seal 1k', () => {
          if (++count > 1e9) n = new NoblePacketPath(kAB, 2, bob.nodeId)
          n.seal(PacketType.TaskRequest, 0, payload, 16)
        })
        ctx.progress('packet: pure-JS open 1k…')
        nobleOpen = measure('noble packet open 1k', openLoop(frames, (rx, f) => rx.open(f), () => new NoblePacketPath(kAB, 2, bob.nodeId)))
        ctx.anchors.set('packet_seal_1k_noble', nobleSeal)
        ctx.anchors.set('packet_open_1k_noble', nobleOpen)
        results.push({ id: 'packet_seal_1k_noble', value: nobleSeal, unit: 'ops/s', vs: ratios(ctx, nobleSeal, { libsodium_c: 'libsodium_c_seal_1k' }) })
        results.push({ id: 'packet_open_1k_noble', value: nobleOpen, unit: 'ops/s', vs: ratios(ctx, nobleOpen, { libsodium_c: 'libsodium_c_open_1k' }) })
      }
      const nobleAnchor = (op: string) => (size.label === '1k' ? `packet_${op}_1k_noble` : `noble_${op}_${size.label}`)
      results.push({ id: `packet_seal_${size.label}`, value: seal, unit: 'ops/s', vs: ratios(ctx, seal, { libsodium_c: `libsodium_c_seal_${size.label}`, noble: nobleAnchor('seal') }) })
      results.push({ id: `packet_open_${size.label}`, value: open, unit: 'ops/s', vs: ratios(ctx, open, { libsodium_c: `libsodium_c_open_${size.label}`, noble: nobleAnchor('open') }) })
    }

    ctx.progress('packet: IK handshakes…')
    const a = new SessionManager({ identity: alice })
    const b = new SessionManager({ identity: bob })
    a.learn({ identityKey: bob.identityKey, staticKey: bob.static.publicKey, capabilities: 0, links: [], timestamp: 0 })
    const ik = measure('ik handshake', () => {
      const r = b.handleHandshake(decodePacket(a.connect(bob.nodeId).frame))
      if (a.handleHandshake(decodePacket(r.reply!)).session === null) throw new Error('IK handshake did not complete')
    }, { minMs: 200, rounds: 3 })
    results.push({ id: 'handshake_ik', value: ik, unit: 'handshakes/s', vs: ratios(ctx, ik, { ed25519_verify: 'ed25519_verify' }) })

    const maxPayload = LORA_MTU - 48
    const loraFrame = sender().seal(PacketType.TaskRequest, 0, Buffer.alloc(maxPayload))
    if (loraFrame.length > LORA_MTU) throw new Error(`a ${maxPayload}-byte payload does not fit one LoRa frame`)
    const overhead = loraFrame.length - maxPayload
    results.push({ id: 'packet_overhead_lora', value: overhead, unit: 'bytes', vs: { reticulum: RETICULUM_OVERHEAD / overhead } })
    return results
  },
}
