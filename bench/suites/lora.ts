/**
 * LoRa through the companion-MCU emulator on real socat PTYs (test/lora/rig.ts), and the
 * host-side firmware-bridge codec.
 *
 * Goodput: 1 KiB messages sent back to back over a LoRaLink (firmware-bridge backend) to a
 * second gateway, at SF7/BW125 and SF12/BW125 (CR 4/5, 8 preamble symbols), counted in radio
 * time (the emulator runs the air faster than real time; every figure is scaled back). The anchor
 * is the PHY limit from the airtime formula: 255-byte frames back to back with no gap, i.e.
 * 255 B / timeOnAir(255 B). The ratio shows what fragmentation (8-byte headers, a short last
 * fragment), the serial line and the turnaround between frames cost.
 *
 * Ids: lora_goodput_sf7, lora_goodput_sf12 (B/s, vs.phy_limit), lora_goodput_sf7_rnode
 * (the RNode backend on the emulated RNode firmware), fb_codec_encode / fb_codec_decode
 * (frames/s of a Transmit frame with a 255-byte payload; decode is the streaming decoder).
 */
import { DEFAULT_RADIO, phyLimitBytesPerSecond, type RadioConfig } from '../../drivers/lora/radio.js'
import type { ReceivedFrame } from '../../drivers/link.js'
import { encodeFrame, Flags, FrameDecoder, PROTOCOL_VERSION, type LinkFrame } from '../../firmware-bridge/codec.js'
import { loraRig, until } from '../../test/lora/rig.js'
import { socatAvailable } from '../../test/lib/pty.js'
import { measure, type BenchContext, type BenchResult, type Suite } from '../lib.js'

const MESSAGE = 1024

async function goodput(ctx: BenchContext, label: string, backend: 'firmware-bridge' | 'rnode', radio: Partial<RadioConfig>, messages: number, timeScale: number): Promise<{ bytesPerSecond: number; phy: number }> {
  const cfg = { ...DEFAULT_RADIO, ...radio }
  const rig = await loraRig({ backend, radio, timeScale, region: 'LAB', link: { highWater: 1024, queueLimit: 4096 } })
  try {
    const [a, b] = rig.links as [(typeof rig.links)[0], (typeof rig.links)[0]]
    await Promise.all([a.open(), b.open()])
    const got: ReceivedFrame[] = []
    b.on('frame', (f) => got.push(f))
    // One warm-up message, so the first fragment does not pay for JIT and serial start-up.
    a.send(Buffer.alloc(MESSAGE, 0xff))
    await until('the warm-up message', 120_000, () => got.length === 1)
    got.length = 0
    const medium = rig.emulator.medium
    const t0 = medium.now()
    for (let i = 0; i < messages; i++) a.send(Buffer.alloc(MESSAGE, i))
    let shown = 0
    await until(`${messages} messages over ${label}`, 600_000, () => {
      if (got.length > shown) {
        shown = got.length
        ctx.progress(`lora: ${label} ${shown}/${messages} messages`)
      }
      return got.length === messages
    })
    const radioSeconds = (medium.now() - t0) / 1000
    for (let i = 0; i < messages; i++) {
      const f = got[i]!.data
      if (f.length !== MESSAGE || f[0] !== (i & 0xff) || f[MESSAGE - 1] !== (i & 0xff)) throw new Error(`lora: ${label}: message ${i} arrived damaged or out of order`)
    }
    return { bytesPerSecond: (messages * MESSAGE) / radioSeconds, phy: phyLimitBytesPerSecond(cfg) }
  } finally {
    await rig.close()
  }
}

function codec(ctx: BenchContext): BenchResult[] {
  const frame: LinkFrame = { version: PROTOCOL_VERSION, flags: Flags.NEEDS_ACK, seq: 7, ack: 3, message: { type: 'Transmit', token: 42, payload: Buffer.alloc(255, 0xa5) } }
  ctx.progress('lora: firmware-bridge codec encode…')
  const encode = measure('fb encode', () => encodeFrame(frame))
  const wire = encodeFrame(frame)
  let frames = 0
  const decoder = new FrameDecoder({ frame: () => void frames++ })
  ctx.progress('lora: firmware-bridge codec decode…')
  const decode = measure('fb decode', () => decoder.push(wire))
  if (frames === 0 || decoder.errorCount !== 0) throw new Error(`lora: the decoder took ${frames} frames with ${decoder.errorCount} errors`)
  return [
    { id: 'fb_codec_encode', value: encode, unit: 'frames/s', vs: {} },
    { id: 'fb_codec_decode', value: decode, unit: 'frames/s', vs: {} },
  ]
}

export const suite: Suite = {
  name: 'lora',
  async run(ctx) {
    const out = codec(ctx)
    if (!socatAvailable()) throw new Error('lora: socat is needed for the PTY pairs (npm run bench installs it)')
    const base = { bandwidthHz: 125_000, codingRate: 5, preambleSymbols: 8 }
    const runs: [string, 'firmware-bridge' | 'rnode', Partial<RadioConfig>, number, number][] = [
      ['lora_goodput_sf7', 'firmware-bridge', { ...base, spreadingFactor: 7 }, 20, 0.1],
      ['lora_goodput_sf12', 'firmware-bridge', { ...base, spreadingFactor: 12 }, 3, 0.01],
      ['lora_goodput_sf7_rnode', 'rnode', { ...base, spreadingFactor: 7 }, 20, 0.1],
    ]
    for (const [id, backend, radio, messages, scale] of runs) {
      ctx.progress(`lora: ${id}: ${messages} x ${MESSAGE} B at SF${radio.spreadingFactor}/BW125 over ${backend} (air at ${1 / scale}x)…`)
      const g = await goodput(ctx, id, backend, radio, messages, scale)
      out.push({ id, value: g.bytesPerSecond, unit: 'B/s', vs: { phy_limit: g.bytesPerSecond / g.phy } })
    }
    return out
  },
}
