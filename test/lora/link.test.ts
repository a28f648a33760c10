/**
 * The LoRa link on real serial lines: socat PTY pairs, the companion-MCU emulator speaking
 * firmware-bridge or RNode KISS on the MCU ends, LoRaLink on the host ends. Air time runs 100x
 * faster than real time (timeScale 0.01); every airtime and duty-cycle figure is radio time.
 */
import t, { type Test } from 'tap'
import { Identity } from '../../appliance/core/identity.js'
import { SessionManager } from '../../appliance/core/sessions.js'
import { decodePacket } from '../../appliance/core/wire/packet.js'
import { PacketType } from '../../appliance/core/wire/constants.js'
import type { LoRaLink } from '../../drivers/lora/link.js'
import type { ReceivedFrame } from '../../drivers/link.js'
import { linkConformance } from '../conformance/link.js'
import { requireSocat } from '../lib/pty.js'
import { loraRig, until, type LoRaRig, type LoRaRigOptions } from './rig.js'
import { ConfigRejectedError, TimeoutError } from '../../appliance/core/errors.js'
import type { DeviceProtocolFactory } from '../../drivers/lora/device.js'
import { DEFAULT_RADIO } from '../../drivers/lora/radio.js'

const BACKENDS = ['firmware-bridge', 'rnode'] as const

function rigFor(t: Test, o: LoRaRigOptions) {
  return loraRig(o).then((rig) => {
    t.teardown(() => rig.close())
    return rig
  })
}

function collect(link: LoRaLink): ReceivedFrame[] {
  const got: ReceivedFrame[] = []
  link.on('frame', (f) => got.push(f))
  return got
}

for (const backend of BACKENDS) {
  t.test(`LoRa over ${backend}`, async (t) => {
    if (!requireSocat(t)) return

    linkConformance(t, `LoRaLink/${backend} on socat PTYs`, async () => {
      const rig = await loraRig({ backend, radio: { spreadingFactor: 7 }, link: { highWater: 8, queueLimit: 256 } })
      const [a, b] = rig.links as [LoRaLink, LoRaLink]
      const pa = rig.pairs.get('a')!
      return {
        a,
        b,
        // One radio frame, a full one, two fragments, and the largest frame the link takes.
        sizes: [1, 200, 255, 600, a.mtu],
        frameTimeoutMs: 3000,
        unplug: () => pa.kill('SIGTERM'),
        replug: () => pa.restart(),
        close: () => rig.close(),
      }
    })

    t.test('two gateways run a handshake and exchange 1 KiB messages over the air', async (t) => {
      const rig = await rigFor(t, { backend, radio: { spreadingFactor: 7 } })
      const [la, lb] = rig.links as [LoRaLink, LoRaLink]
      await Promise.all([la.open(), lb.open()])
      const gw = [
        new SessionManager({ identity: Identity.fromSeed(Buffer.alloc(32, 1)) }),
        new SessionManager({ identity: Identity.fromSeed(Buffer.alloc(32, 2)) }),
      ] as const
      const links = [la, lb] as const
      const inbox: string[][] = [[], []]
      // Each gateway: handshakes are answered, data is opened; anything else is a failure.
      links.forEach((link, i) => {
        link.on('frame', (f) => {
          const me = gw[i]!
          try {
            if (f.data[0] === 0x12) {
              const out = me.handleHandshake(decodePacket(f.data))
              if (out.reply !== null) link.send(out.reply)
            } else {
              inbox[i]!.push(me.open(f.data).data.payload.toString('hex'))
            }
          } catch (err) {
            t.fail(`gateway ${i} could not take a ${f.data.length}-byte frame: ${String(err)}`)
          }
        })
      })
      const [a, b] = gw
      la.send(a.connect(b.identity.nodeId).frame)
      await until('the session at both ends', 10_000, () => a.sessionFor(b.identity.nodeId) !== null && b.sessionFor(a.identity.nodeId) !== null)
      const msg = (n: number) => Buffer.alloc(1024, n)
      for (let n = 0; n < 3; n++) la.send(Buffer.from(a.seal(b.identity.nodeId, PacketType.TaskRequest, 0, msg(n))))
      await until('three messages at B', 10_000, () => inbox[1]!.length === 3)
      lb.send(Buffer.from(b.seal(a.identity.nodeId, PacketType.TaskRequest, 0, msg(9))))
      await until('the answer at A', 10_000, () => inbox[0]!.length === 1)
      t.same(inbox[1], [0, 1, 2].map((n) => msg(n).toString('hex')), 'every message arrived once, in order, intact')
      t.equal(inbox[0]![0], msg(9).toString('hex'))
      const air = rig.emulator.medium.stats()
      t.ok(air.a!.txFrames! >= 3 * 5, `each 1 KiB message went as fragments (${air.a!.txFrames} radio frames from A)`)
      t.equal(air.b!.lostCollision ?? 0, 0, 'no collisions')
      t.ok(lb.stats().reassembly.completed >= 3, 'B reassembled the fragments')
      t.ok(lb.quality().rssi !== undefined && lb.quality().snr !== undefined, 'RSSI and SNR reach the link quality')
    })
  })
}

t.test('duty cycle: the budget is spent, send() pushes back, nothing is dropped, the medium never sees an overrun', async (t) => {
  if (!requireSocat(t)) return
  // EU868 1 % over a 60 s (radio) window: 600 ms of airtime; a 200-byte frame at SF7 is ~334 ms.
  let overruns = 0
  let txs = 0
  const rig: LoRaRig = await rigFor(t, {
    backend: 'firmware-bridge',
    region: 'EU868',
    dutyWindowMs: 60_000,
    radio: { spreadingFactor: 7, frequencyHz: 868_100_000 },
    onEvent: (e) => {
      if (e.event !== 'tx' || e.radio !== 'a') return
      txs++
      if (rig.emulator.medium.stats().a!.overBudget === 1) overruns++
    },
  })
  const [a, b] = rig.links as [LoRaLink, LoRaLink]
  await Promise.all([a.open(), b.open()])
  const got = collect(b)
  const accepted: boolean[] = []
  for (let i = 0; i < 5; i++) accepted.push(a.send(Buffer.alloc(200, i)))
  t.same(accepted, [false, false, false, false, false], 'from the first frame on, the budget left is under one full radio frame: backpressure')
  t.ok(a.quality().airtimeAvailable! < 0.5, `link quality reports the spent budget (${a.quality().airtimeAvailable})`)
  const drained = new Promise<void>((r) => a.once('drain', () => r()))
  await until('five frames, a window apart', 20_000, () => got.length === 5)
  await drained
  t.same(got.map((f) => f.data[0]), [0, 1, 2, 3, 4], 'all of them, in order')
  t.same(a.stats().dropped, {}, 'nothing dropped')
  t.equal(txs, 5)
  t.equal(overruns, 0, 'the medium never counted airtime over 1 % of its window')
  const gaps = rig.emulator.medium.stats().a!
  t.ok(gaps.dutyAirtimeMs! <= 600, `airtime in the last window ${gaps.dutyAirtimeMs} ms <= 600 ms`)
})

t.test('duty cycle: frames that wait longer than maxQueueAgeMs are dropped, counted and reported', async (t) => {
  if (!requireSocat(t)) return
  const rig = await rigFor(t, {
    backend: 'firmware-bridge',
    region: 'EU868',
    dutyWindowMs: 3_600_000,
    radio: { spreadingFactor: 12, frequencyHz: 868_100_000 },
    link: { maxQueueAgeMs: 300 },
  })
  const [a, b] = rig.links as [LoRaLink, LoRaLink]
  await Promise.all([a.open(), b.open()])
  const dropped: string[] = []
  a.on('dropped', (d) => dropped.push(d.reason))
  const got = collect(b)
  // SF12: 255 bytes are ~10.6 s on air; 36 s of budget per hour lets three through, then the
  // rest waits for the window (36 s real at this time scale), past its 300 ms of patience.
  for (let i = 0; i < 6; i++) a.send(Buffer.alloc(255, i))
  await until('the late frames to expire', 10_000, () => dropped.length >= 2)
  t.ok(dropped.every((r) => r === 'expired'), `dropped as expired: ${dropped.join(', ')}`)
  t.equal(a.stats().dropped.expired, dropped.length, 'counted')
  await until('the frames within budget', 10_000, () => a.stats().framesOut + dropped.length === 6)
  t.equal(a.stats().framesOut + (a.stats().dropped.expired ?? 0), 6, 'every frame is either sent or counted as dropped')
  await until('what was sent to arrive', 5_000, () => got.length === a.stats().framesOut)
  t.equal(got.length, 6 - dropped.length, 'what was not dropped arrived')
})

for (const backend of BACKENDS) {
  t.test(`noisy serial line (${backend}): errors are counted, the link resynchronises and goes on`, async (t) => {
    if (!requireSocat(t)) return
    const rig = await rigFor(t, {
      backend,
      radio: { spreadingFactor: 7 },
      noisy: { a: { seed: 11, garbage: 0.15, corrupt: backend === 'firmware-bridge' ? 0.05 : 0, truncate: backend === 'firmware-bridge' ? 0.03 : 0 } },
    })
    const [a, b] = rig.links as [LoRaLink, LoRaLink]
    const line = rig.noise.get('a')!
    await Promise.all([a.open(), b.open()])
    const got = collect(b)
    const sent: string[] = []
    for (let i = 0; i < 20; i++) {
      const f = Buffer.alloc(300 + i, i + 1)
      sent.push(f.toString('hex'))
      a.send(f)
    }
    await until('20 frames through the noise', 60_000, () => got.length >= 20 || (backend === 'rnode' && a.stats().queued === 0 && got.length >= 10))
    const noise = { ...line.stats }
    t.ok(noise.garbageBursts > 0, `the line injected ${noise.garbageBursts} garbage bursts, ${noise.corrupted} corruptions, ${noise.truncated} truncations`)
    const hostErrors = Object.values((a.stats().backend as { errors: Record<string, number> }).errors).reduce((x, y) => x + y, 0)
    const deviceStats = rig.emulator.stats().devices.a!.protocol
    t.ok(hostErrors > 0, `host counted ${hostErrors} errors: ${JSON.stringify((a.stats().backend as { errors: unknown }).errors)}`)
    t.ok(Object.values(deviceStats).some((v) => v > 0), `device counted: ${JSON.stringify(deviceStats)}`)
    if (backend === 'firmware-bridge') {
      // CRC and retransmission: every frame arrives intact, exactly once, in order.
      t.same(got.map((f) => f.data.toString('hex')), sent, 'all 20 frames intact and in order')
    }
    // Quiet line: the link is not wedged.
    line.quiet()
    await until('a up', 30_000, () => a.state === 'up')
    const before = got.length
    a.send(Buffer.from('after the noise'))
    await until('a frame after the noise', 10_000, () => got.length > before && got.at(-1)!.data.toString() === 'after the noise')
    t.pass('a frame sent after the noise arrives')
  })
}

for (const [backend, chip, radio, field, said] of [
  ['firmware-bridge', 'SX1276', { spreadingFactor: 5 }, 'spreadingFactor', /SX1276.*spreadingFactor = 5/],
  ['firmware-bridge', 'LLCC68', { spreadingFactor: 12, bandwidthHz: 125_000 }, 'spreadingFactor', /LLCC68.*spreadingFactor = 12/],
  ['rnode', 'SX1276', { txPowerDbm: 20 }, 'txPowerDbm', /set txPowerDbm 17, not 20/],
] as const) {
  t.test(`a config the ${backend} firmware on an ${chip} rejects: open() fails naming radio.${field}`, async (t) => {
    if (!requireSocat(t)) return
    const rig = await rigFor(t, { backend, chip, radio, region: 'LAB' })
    const a = rig.link('a')
    const err = await a.open().catch((e: unknown) => e)
    t.type(err, ConfigRejectedError)
    t.equal((err as ConfigRejectedError).field, `radio.${field}`)
    t.match((err as Error).message, `link lora-a: the ${a.device?.firmware ?? ''}`)
    t.match((err as Error).message, `on ${rig.dir}/a-host rejected radio.${field}`)
    t.match((err as Error).message, said)
    t.equal(a.state, 'closed', 'not retried: a refused configuration does not fix itself')
    const inForce = rig.emulator.device('a').radio.config
    t.not(inForce[field], (radio as Record<string, number>)[field], `the radio still runs its previous ${field} (${inForce[field]})`)
  })
}

for (const [what, answer] of [
  ['answers nothing', () => undefined],
  ['answers garbage', (b: Uint8Array, write: (x: Uint8Array) => void) => write(Buffer.from(b.map((x) => (x * 7 + 13) & 0xff)))],
] as const) {
  for (const backend of BACKENDS) {
    t.test(`a firmware that ${what} (${backend}): open() fails with a TimeoutError naming the device`, async (t) => {
      if (!requireSocat(t)) return
      const factory: DeviceProtocolFactory = (_radio, write) => ({
        receive: (b) => answer(b, write),
        reset: () => undefined,
        stats: () => ({}),
      })
      const rig = await rigFor(t, { backend, factory })
      const a = rig.link('a')
      const err = await a.open().catch((e: unknown) => e)
      t.type(err, TimeoutError)
      t.match((err as Error).message, `no ${backend} firmware answered on ${rig.dir}/a-host`)
      t.equal(a.state, 'closed', 'the link is closed, not wedged half-open')
    })
  }
}

for (const backend of BACKENDS) {
  t.test(`hot-plug (${backend}): socat SIGKILLed mid-traffic, then back: no crash, configuration re-applied, nothing lost`, async (t) => {
    if (!requireSocat(t)) return
    let atBoot: number | undefined
    const rig: LoRaRig = await rigFor(t, {
      backend,
      radio: { spreadingFactor: 7, frequencyHz: 868_300_000 },
      onEvent: (e) => {
        if (e.event === 'replug' && e.radio === 'a') atBoot = rig.emulator.device('a').radio.config.spreadingFactor
      },
    })
    const [a, b] = rig.links as [LoRaLink, LoRaLink]
    await Promise.all([a.open(), b.open()])
    const radioA = () => rig.emulator.device('a').radio
    t.equal(radioA().config.spreadingFactor, 7, 'configured at open')
    const got = collect(b)
    const states: string[] = []
    a.on('state', (s) => states.push(s))
    for (let i = 0; i < 10; i++) a.send(Buffer.alloc(400, i))
    await rig.pairs.get('a')!.kill('SIGKILL')
    await until('a down', 10_000, () => a.state === 'down')
    await new Promise((r) => setTimeout(r, 300)) // a few failed reconnects
    for (let i = 10; i < 12; i++) a.send(Buffer.alloc(400, i))
    await rig.pairs.get('a')!.restart()
    await until('a up again', 20_000, () => a.state === 'up')
    t.equal(atBoot, DEFAULT_RADIO.spreadingFactor, 'the MCU booted with its power-on configuration')
    t.equal(radioA().config.spreadingFactor, 7, 'configuration re-applied after the replug')
    t.equal(radioA().config.frequencyHz, 868_300_000)
    await until('every frame', 20_000, () => new Set(got.map((f) => f.data[0])).size === 12)
    t.same([...new Set(got.map((f) => f.data[0]))].sort((x, y) => x! - y!), [...Array(12).keys()], 'all 12 frames arrived (a frame on air at the cut may arrive twice)')
    t.same(a.stats().dropped, {}, 'nothing dropped')
    t.ok(a.stats().downs >= 1 && states.includes('down') && states.at(-1) === 'up', `states: ${states.join(' → ')}`)
  })
}
