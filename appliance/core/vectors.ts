/**
 * The test vectors of docs/protocol.md, computed by the real code from fixed inputs. The test
 * suite recomputes them and compares them with the document, so the spec cannot drift from the
 * implementation. `npx tsx scripts/protocol-vectors.ts` prints the document's vector section.
 */
import { blake2b, dhFromSecret } from './crypto.js'
import { Identity } from './identity.js'
import { Session, HP_KEY_CONTEXT } from './session.js'
import { SessionManager } from './sessions.js'
import { fragment } from './fragment.js'
import { encodeAnnounce } from './wire/announce.js'
import { decodePacket, packetSigningInput } from './wire/packet.js'
import { LinkKind, PacketFlags, PacketType } from './wire/constants.js'

/** One vector: ordered (name, hex) pairs; inputs first, then outputs. */
export interface Vector {
  name: string
  title: string
  fields: [string, string][]
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const seq = (start: number) => Buffer.from(Array.from({ length: 32 }, (_, i) => (start + i) & 0xff))

export const ALICE_SEED = seq(0x00)
export const BOB_SEED = seq(0x20)
/** 2026-01-01T00:00:00Z, ms. */
export const VECTOR_TIME = 1_767_225_600_000

/** A deterministic stand-in for the CSPRNG: BLAKE2b(label || counter). */
function rng(label: string): (buf: Uint8Array) => void {
  let counter = 0
  return (buf) => {
    buf.set(blake2b(buf.length < 16 ? 16 : buf.length, [Buffer.from(label), Buffer.from([counter++])]).subarray(0, buf.length))
  }
}

export function computeVectors(): Vector[] {
  const alice = Identity.fromSeed(ALICE_SEED)
  const bob = Identity.fromSeed(BOB_SEED)
  const out: Vector[] = []

  out.push({
    name: 'identity',
    title: 'A key pair and its node ID',
    fields: [
      ['seed', hex(ALICE_SEED)],
      ['identity_key', hex(alice.identityKey)],
      ['node_id', hex(alice.nodeId)],
      ['static_secret', hex(blake2b(32, [Buffer.from('kairo/static-derive/v1')], ALICE_SEED))],
      ['static_key', hex(alice.static.publicKey)],
      ['static_binding', hex(alice.staticBinding)],
    ],
  })

  const sendKey = seq(0x40)
  const recvKey = seq(0x60)
  const s = new Session({ localIndex: 0x01020304, remoteIndex: 0x0badcafe, sendKey, recvKey, localNodeId: alice.nodeId, remoteNodeId: bob.nodeId, initiator: true, now: () => 0 })
  for (let i = 0; i < 5; i++) s.seal(PacketType.Keepalive, 0, Buffer.alloc(0))
  const payload = Buffer.from('hello mesh')
  const frame = s.sealCopy(PacketType.TaskRequest, PacketFlags.AckRequested, payload, 16)
  out.push({
    name: 'data',
    title: 'A sealed data packet (the sixth packet of a session: seq 5)',
    fields: [
      ['send_key', hex(sendKey)],
      ['remote_index', '0badcafe'],
      ['dst', hex(bob.nodeId)],
      ['seq', '0500000000000000'],
      ['type', '10'],
      ['flags', '01'],
      ['hop_limit', '10'],
      ['payload', hex(payload)],
      ['hp_key', hex(blake2b(32, [HP_KEY_CONTEXT], sendKey))],
      ['nonce', '00000000' + '0500000000000000'],
      ['ad', hex(Buffer.concat([frame.subarray(0, 3), Buffer.from([0]), frame.subarray(4, 24), Buffer.from('0500000000000000', 'hex')]))],
      ['frame', hex(frame)],
    ],
  })
  s.close()

  const announce = encodeAnnounce(alice, {
    packetId: 0x01020304,
    timestamp: VECTOR_TIME,
    capabilities: 0b11,
    links: [
      { kind: LinkKind.LoRa, name: 'lora0', mtu: 255, bitrate: 5470 },
      { kind: LinkKind.Ethernet, name: 'eth0', mtu: 1500, bitrate: 100_000_000 },
    ],
    hopLimit: 16,
  })
  const ap = decodePacket(announce)
  out.push({
    name: 'announce',
    title: "Alice's signed announce",
    fields: [
      ['seed', hex(ALICE_SEED)],
      ['announce_body', hex(ap.payload)],
      ['signing_input', hex(packetSigningInput(ap))],
      ['signature', hex(ap.signature!)],
      ['frame', hex(announce)],
    ],
  })

  const aliceE = dhFromSecret(Buffer.from(seq(0x80)))
  const bobE = dhFromSecret(Buffer.from(seq(0xa0)))
  const a = new SessionManager({ identity: alice, now: () => 0, wallClock: () => VECTOR_TIME, random: rng('alice'), ephemeral: () => aliceE })
  const b = new SessionManager({ identity: bob, now: () => 0, wallClock: () => VECTOR_TIME, random: rng('bob'), ephemeral: () => bobE })
  a.learn({ identityKey: bob.identityKey, staticKey: bob.static.publicKey, capabilities: 0, links: [], timestamp: VECTOR_TIME })
  const m0 = a.connect(bob.nodeId).frame
  const r = b.handleHandshake(decodePacket(m0))
  const m1 = r.reply!
  const done = a.handleHandshake(decodePacket(m1))
  const first = done.session!.sealCopy(PacketType.TaskRequest, 0, Buffer.from('first task'), 16)
  out.push({
    name: 'ik',
    title: 'A full IK handshake, Alice to Bob, and the first data packet',
    fields: [
      ['alice_seed', hex(ALICE_SEED)],
      ['bob_seed', hex(BOB_SEED)],
      ['alice_ephemeral_secret', hex(seq(0x80))],
      ['bob_ephemeral_secret', hex(seq(0xa0))],
      ['alice_index', done.session!.localIndex.toString(16).padStart(8, '0')],
      ['bob_index', r.session!.localIndex.toString(16).padStart(8, '0')],
      ['timestamp_ms', VECTOR_TIME.toString(16).padStart(16, '0')],
      ['message0', hex(m0)],
      ['message1', hex(m1)],
      ['first_data', hex(first)],
    ],
  })

  const frags = fragment(announce, 64, 0x11223344)
  out.push({
    name: 'fragment',
    title: 'The announce above, fragmented for a 64-byte MTU',
    fields: [['frame', hex(announce)], ['mtu', '40'], ['frag_id', '44332211'], ...frags.map((f, i): [string, string] => [`fragment${i}`, hex(f)])],
  })
  return out
}

/** The markdown of the vectors, as docs/protocol.md holds it. Hex wraps at 64 digits. */
export function renderVectors(vectors: Vector[]): string {
  const parts: string[] = []
  for (const v of vectors) {
    parts.push(`### ${v.title}\n\n\`\`\`vector ${v.name}`)
    for (const [k, val] of v.fields) {
      const lines = val.match(/.{1,64}/g) ?? ['']
      parts.push(`${k}:`)
      for (const l of lines) parts.push(`  ${l}`)
    }
    parts.push('```\n')
  }
  return parts.join('\n')
}

/** Parses the vector blocks of a markdown document back into (name → field → hex). */
export function parseVectors(markdown: string): Map<string, Map<string, string>> {
  const result = new Map<string, Map<string, string>>()
  const re = /```vector (\S+)\n([\s\S]*?)```/g
  for (let m = re.exec(markdown); m !== null; m = re.exec(markdown)) {
    const fields = new Map<string, string>()
    let key = ''
    for (const line of m[2]!.split('\n')) {
      if (/^\S+:$/.test(line)) {
        key = line.slice(0, -1)
        fields.set(key, '')
      } else if (/^ {2}[0-9a-f]*$/.test(line) && key) fields.set(key, fields.get(key)! + line.trim())
    }
    result.set(m[1]!, fields)
  }
  return result
}
