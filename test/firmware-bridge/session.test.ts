/**
 * Host ⇄ device sessions: FirmwareBridgeBackend talking to FirmwareBridgeDevice over in-memory
 * serial lines on a virtual clock, the device driving an EmulatedRadio on a seeded Medium (or a
 * StubRadio where the test needs to steer the radio by hand). Covers the handshake, configure
 * and read-back, transmit/TxDone with airtime, receive indications, channel activity, credits,
 * liveness, resets, radio on/off and the statistics.
 */
import t from 'tap'
import { ConnectionLostError, HandshakeError, RadioError, TimeoutError } from '../../appliance/core/errors.js'
import type { RadioRx } from '../../drivers/lora/backend.js'
import { DEFAULT_RADIO, timeOnAirMs, type RadioConfig } from '../../drivers/lora/radio.js'
import { Capabilities, decodeFrame, encodeFrame, Flags, RadioChip, type LinkFrame, type Message } from '../../firmware-bridge/codec.js'
import { ALL_CAPABILITIES } from '../../firmware-bridge/device.js'
import { drive, elapse, makeMediumPair, makePair, readyPair, type PipeFilter } from './helpers.js'

/** A config different from DEFAULT_RADIO in every field. */
const OTHER: RadioConfig = { frequencyHz: 868_100_000, bandwidthHz: 250_000, spreadingFactor: 7, codingRate: 8, txPowerDbm: 2, syncWord: 0x34, preambleSymbols: 12 }

/** Decodes every frame a line carries (whole writes), for looking at what went over it. */
function tap(into: LinkFrame[]): PipeFilter {
  return (bytes) => {
    try {
      into.push(decodeFrame(bytes.subarray(bytes[0] === 0 ? 1 : 0)))
    } catch {
      /* not a whole frame */
    }
    return [bytes]
  }
}

const messages = (frames: LinkFrame[], type: Message['type']) => frames.filter((f) => f.message?.type === type).map((f) => f.message!)

t.test('handshake: start() resolves with what the device announced', async (t) => {
  const p = makeMediumPair({ device: { chip: 'SX1262', firmwareName: 'kairo-fb', firmwareVersion: '1.2.3', queueDepth: 3, mtu: 200, capabilities: Capabilities.ChannelActivity } })
  t.equal(p.host.state, 'idle')
  const info = await drive(p.clock, p.host.start())
  t.match(info, { firmware: 'kairo-fb', version: '1.2.3', mtu: 200, queueDepth: 3, credits: 3, protocolVersion: 1, radioChip: 'SX1262', capabilities: Capabilities.ChannelActivity, channelActivity: true })
  t.equal(p.host.state, 'ready')
  t.equal(p.host.credits, 3)
  t.ok(p.device.inSession)
  t.equal(p.device.stats().sessions, 1)
  t.equal(p.host.stats().sessions, 1)
  p.close()
})

t.test('handshake: a lost Hello is repeated; a repeated Hello does not open a second session', async (t) => {
  const p = makePair({ downFilter: (b, n) => (n === 0 ? [] : [b, b]) })
  const info = await drive(p.clock, p.host.start())
  t.equal(info.radioChip, 'Emulated')
  t.ok((p.host.stats().hellosSent as number) >= 2, 'Hello sent again after the first was lost')
  t.equal(p.device.stats().sessions, 1, 'the duplicate Hello of the same session is answered, not a new session')
  // The session works: every write to the device is delivered twice, and it still happens once.
  await drive(p.clock, p.host.transmit(Buffer.from('once')))
  t.same(p.radio.sent, [Buffer.from('once')])
  t.ok((p.device.stats().duplicates as number) > 0)
  p.close()
})

t.test('handshake: a device of another protocol version gives a HandshakeError naming both versions', async (t) => {
  const p = makePair({ device: { protocolVersion: 2, firmwareName: 'kairo-fb', firmwareVersion: '9.0.0' } })
  const err = await drive(p.clock, p.host.start()).catch((e: unknown) => e)
  t.type(err, HandshakeError)
  t.match((err as Error).message, /host speaks version 1/)
  t.match((err as Error).message, /speaks version 2/)
  t.match((err as Error).message, /kairo-fb 9\.0\.0/)
  t.equal(p.host.state, 'idle')
  t.notOk(p.device.inSession, 'no session was opened on the device')
  await t.rejects(p.host.transmit(Buffer.from('x')), ConnectionLostError)
  p.close()
})

t.test('handshake: a silent device gives a TimeoutError after helloTimeoutMs', async (t) => {
  const p = makePair({ host: { helloTimeoutMs: 300 } })
  p.up.cut = true
  const t0 = p.clock.now()
  const err = await drive(p.clock, p.host.start()).catch((e: unknown) => e)
  t.type(err, TimeoutError)
  t.match((err as Error).message, /no HelloAck within 300 ms/)
  t.ok(p.clock.now() - t0 >= 300 && p.clock.now() - t0 < 320)
  t.equal(p.host.state, 'idle')
  p.close()
})

t.test('configure: every field reaches the radio and reads back through Status', async (t) => {
  const p = makeMediumPair({ device: { chip: 'SX1262' } })
  await drive(p.clock, p.host.start())
  const before = await drive(p.clock, p.host.status())
  t.same(before.config, { ...DEFAULT_RADIO }, 'the power-on configuration is reported before any Configure')
  for (const cfg of [OTHER, { ...DEFAULT_RADIO, txPowerDbm: 22, spreadingFactor: 5, preambleSymbols: 65535, frequencyHz: 150_000_000 }]) {
    await drive(p.clock, p.host.configure(cfg))
    t.same({ ...p.radio.config }, cfg, 'the radio runs the configuration')
    const st = await drive(p.clock, p.host.status())
    t.same(st.config, cfg, 'Status reports it back, field by field')
  }
  t.equal(p.device.stats().configures, 2)
  p.close()
})

t.test('transmit: TxDone carries the time on air of the configured radio', async (t) => {
  const up: LinkFrame[] = []
  const p = makeMediumPair({ upFilter: tap(up) })
  await drive(p.clock, p.host.start())
  await drive(p.clock, p.host.configure(OTHER))
  const heard: Buffer[] = []
  p.peer.configure(OTHER)
  p.peer.on('rx', (rx) => heard.push(rx.payload))
  const payload = Buffer.from('a LoRa payload of some length')
  const t0 = p.clock.now()
  await drive(p.clock, p.host.transmit(payload))
  const airMs = timeOnAirMs(OTHER, payload.length)
  t.ok(p.clock.now() - t0 >= airMs, 'transmit() resolves only after the packet was on air')
  const done = messages(up, 'TxDone') as Extract<Message, { type: 'TxDone' }>[]
  t.equal(done.length, 1)
  t.equal(done[0]!.airtimeUs, Math.round(airMs * 1000), 'airtime_us = Semtech time on air, µs')
  t.equal(p.host.stats().lastAirtimeUs, Math.round(airMs * 1000))
  t.same(heard, [payload], 'the other radio on the medium heard it')
  p.close()
})

t.test('receive: payload, RSSI, SNR, frequency error and timestamp reach the host', async (t) => {
  const p = makeMediumPair()
  await drive(p.clock, p.host.start())
  p.medium.setLink('peer', 'gw', { rssi: -87.5, snr: 7.25, frequencyErrorHz: -1200 })
  const got: RadioRx[] = []
  p.host.on('rx', (rx) => got.push(rx))
  const t0 = p.clock.now()
  p.peer.transmit(Buffer.from('hi gateway'))
  const end = t0 + timeOnAirMs(DEFAULT_RADIO, 10)
  await elapse(p.clock, Math.ceil(end) + 20)
  t.equal(got.length, 1)
  t.same(got[0]!.payload, Buffer.from('hi gateway'))
  t.equal(got[0]!.rssi, -87.5)
  t.equal(got[0]!.snr, 7.25)
  t.equal(got[0]!.frequencyErrorHz, -1200)
  t.equal(got[0]!.timestampUs, Math.round(end * 1000), 'end of reception on the device clock, µs')
  const st = await drive(p.clock, p.host.status())
  t.equal(st.rxOk, 1)
  p.close()
})

t.test('receive: without the FrequencyError / RxTimestamp capabilities those fields are absent', async (t) => {
  const p = makeMediumPair({ device: { capabilities: 0 } })
  await drive(p.clock, p.host.start())
  p.medium.setLink('peer', 'gw', { rssi: -100, snr: -3.5, frequencyErrorHz: 500 })
  const got: RadioRx[] = []
  p.host.on('rx', (rx) => got.push(rx))
  p.peer.transmit(Buffer.from('x'))
  await elapse(p.clock, 300)
  t.equal(got.length, 1)
  t.match(got[0]!, { rssi: -100, snr: -3.5 })
  t.notOk('frequencyErrorHz' in got[0]!)
  t.notOk('timestampUs' in got[0]!)
  p.close()
})

t.test('channel activity: busy while another radio transmits, free after; only with the capability', async (t) => {
  for (const caps of [ALL_CAPABILITIES, Capabilities.FrequencyError]) {
    const p = makeMediumPair({ device: { capabilities: caps } })
    const info = await drive(p.clock, p.host.start())
    t.equal(info.channelActivity, (caps & Capabilities.ChannelActivity) !== 0)
    const events: [boolean, number][] = []
    p.host.on('channel', (busy) => events.push([busy, p.clock.now()]))
    const t0 = p.clock.now()
    const { airtimeMs } = p.peer.transmit(Buffer.alloc(50, 1))
    await elapse(p.clock, Math.ceil(airtimeMs) + 20)
    if (caps & Capabilities.ChannelActivity) {
      t.same(events.map((e) => e[0]), [true, false])
      t.ok(events[1]![1] - t0 >= airtimeMs, 'free only after the time on air')
    } else t.same(events, [], 'no ChannelActivity without the capability')
    p.close()
  }
})

t.test('credits: the host never has more Transmits outstanding than the device granted', async (t) => {
  const p = await readyPair({ device: { queueDepth: 2 }, airtimeMs: 30 })
  t.equal(p.host.credits, 2)
  let maxHeld = 0
  const watch = () => (maxHeld = Math.max(maxHeld, (p.device.stats().queued as number) + (p.device.stats().inFlight as number)))
  const credits: number[] = []
  p.host.on('credits', (n) => credits.push(n))
  const sent: Promise<void>[] = []
  for (let i = 0; i < 10; i++) {
    while (p.host.credits === 0) {
      t.throws(() => p.host.transmit(Buffer.from('over')), TypeError, 'no credit: a synchronous TypeError, nothing sent')
      await elapse(p.clock, 1)
      watch()
    }
    sent.push(p.host.transmit(Buffer.from(`frame ${i}`)))
    watch()
  }
  await drive(p.clock, Promise.all(sent))
  t.equal(p.radio.sent.length, 10)
  t.equal(maxHeld, 2, 'the device held at most queue_depth transmissions')
  t.equal(p.device.stats().txFail, 0, 'never a QueueFull')
  t.equal(p.host.credits, 2, 'every credit came back')
  t.ok(credits.length >= 10)
  p.close()
})

t.test('credits: a device that over-grants answers QueueFull; the host rejects that transmit and keeps the credit count right', async (t) => {
  // A firmware bug on the line: HelloAck claims 4 credits for a queue of 2.
  const upFilter: PipeFilter = (bytes) => {
    try {
      const f = decodeFrame(bytes)
      if (f.message?.type === 'HelloAck') return [encodeFrame({ ...f, message: { ...f.message, credits: 4 } })]
    } catch {
      /* not a HelloAck */
    }
    return [bytes]
  }
  const p = await readyPair({ device: { queueDepth: 2 }, airtimeMs: 50, upFilter })
  t.equal(p.host.credits, 4)
  const results = await drive(
    p.clock,
    Promise.allSettled([0, 1, 2, 3].map((i) => p.host.transmit(Buffer.from(`f${i}`)))),
  )
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'rejected'])
  for (const r of results.slice(2)) {
    t.type((r as PromiseRejectedResult).reason, RadioError)
    t.equal(((r as PromiseRejectedResult).reason as RadioError).reason, 'queue-full')
  }
  t.equal(p.host.credits, 4, 'TxDone and Error each returned their credit')
  const st = await drive(p.clock, p.host.status())
  t.equal(st.txOk, 2)
  t.equal(st.txFail, 2)
  t.equal(p.host.state, 'ready', 'QueueFull does not end the session')
  p.close()
})

t.test('credits: a transmission on air across a new session comes back as a Credits grant', async (t) => {
  const p = await readyPair({ device: { queueDepth: 2 }, airtimeMs: 200 })
  const tx = p.host.transmit(Buffer.from('long one'))
  tx.catch(() => undefined)
  await elapse(p.clock, 20)
  t.ok(p.radio.transmitting)
  const info = await drive(p.clock, p.host.start())
  await t.rejects(tx, ConnectionLostError, 'the old session’s transmit is given up')
  t.equal(info.credits, 1, 'HelloAck grants what is free now')
  await elapse(p.clock, 250)
  t.equal(p.host.credits, 2, 'the end of the old transmission granted its credit back')
  p.close()
})

t.test('liveness: heartbeats keep an idle session; silence ends it with ConnectionLostError', async (t) => {
  const p = await readyPair()
  await elapse(p.clock, 2000, 10)
  t.equal(p.host.state, 'ready', 'idle for 20 heartbeat intervals, still up')
  t.ok((p.host.stats().heartbeatsSent as number) >= 15)
  t.ok((p.device.stats().framesOut as number) >= 15, 'the device sent heartbeats too')
  const lost: Error[] = []
  p.host.on('deviceError', (e) => lost.push(e))
  const tx = p.host.transmit(Buffer.from('into the void'))
  tx.catch(() => undefined)
  p.up.cut = true // the device's answers no longer arrive
  p.down.cut = true
  const t0 = p.clock.now()
  await t.rejects(drive(p.clock, tx), ConnectionLostError)
  t.ok(p.clock.now() - t0 <= 300 + 20, 'within deadAfterHeartbeats × heartbeat_ms (or the retransmission limit)')
  t.equal(lost.length, 1)
  t.type(lost[0], ConnectionLostError)
  t.equal(p.host.state, 'idle')
  t.equal(p.host.credits, 0)
  p.close()
})

t.test('liveness: a silent device with nothing in flight is declared lost after 3 heartbeat intervals', async (t) => {
  const p = await readyPair()
  const lost: Error[] = []
  p.host.on('deviceError', (e) => lost.push(e))
  p.up.cut = true
  await elapse(p.clock, 250)
  t.equal(p.host.state, 'ready', 'not before three intervals')
  await elapse(p.clock, 120)
  t.equal(p.host.state, 'idle')
  t.type(lost[0], ConnectionLostError)
  t.match(lost[0]!.message, /silent for \d+ ms/)
  // The device, hearing nothing either, closes its side too.
  await elapse(p.clock, 400)
  t.notOk(p.device.inSession)
  p.close()
})

t.test('device reset mid-session (power cycle): the host learns of it and a new start() recovers', async (t) => {
  const p = await readyPair({ airtimeMs: 50 })
  await drive(p.clock, p.host.configure(OTHER))
  const lost: Error[] = []
  p.host.on('deviceError', (e) => lost.push(e))
  p.device.reset()
  const tx = p.host.transmit(Buffer.from('after the reboot'))
  await t.rejects(drive(p.clock, tx), ConnectionLostError)
  t.match(lost[0]?.message ?? '', /no session/)
  t.equal(p.host.state, 'idle')
  t.equal(p.radio.sent.length, 0, 'nothing was sent by the rebooted device')
  await drive(p.clock, p.host.start())
  await drive(p.clock, p.host.configure(OTHER))
  await drive(p.clock, p.host.transmit(Buffer.from('again')))
  t.same(p.radio.sent, [Buffer.from('again')])
  t.equal(p.device.stats().sessions, 1, 'counters restarted at the reboot')
  p.close()
})

t.test('device reset while idle: the next heartbeat discovers it', async (t) => {
  const p = await readyPair()
  const lost: Error[] = []
  p.host.on('deviceError', (e) => lost.push(e))
  p.device.reset()
  await elapse(p.clock, 150)
  t.equal(p.host.state, 'idle')
  t.type(lost[0], ConnectionLostError)
  p.close()
})

t.test('Reset from the host: acknowledged, session over, counters zeroed, start() again works', async (t) => {
  const p = await readyPair({ airtimeMs: 5 })
  await drive(p.clock, p.host.transmit(Buffer.from('one')))
  await drive(p.clock, p.host.reset())
  t.equal(p.host.state, 'idle')
  t.notOk(p.device.inSession)
  await drive(p.clock, p.host.start())
  const st = await drive(p.clock, p.host.status())
  t.equal(st.txOk, 0, 'counters are as after a power cycle')
  p.close()
})

t.test('radio on/off: off refuses transmissions with radio-off and fails queued ones; on again works', async (t) => {
  const p = await readyPair({ device: { queueDepth: 3 }, airtimeMs: 100 })
  const txs = [p.host.transmit(Buffer.from('a')), p.host.transmit(Buffer.from('b'))]
  for (const x of txs) x.catch(() => undefined)
  await elapse(p.clock, 10)
  await drive(p.clock, p.host.setRadio(false))
  t.equal(p.radio.isOn, false)
  for (const x of txs) {
    const err = await x.catch((e: unknown) => e)
    t.type(err, RadioError)
    t.equal((err as RadioError).reason, 'radio-off')
  }
  t.equal(p.host.credits, 3, 'the failed transmissions returned their credits')
  const st = await drive(p.clock, p.host.status())
  t.equal(st.radioOn, false)
  const refused = await drive(p.clock, p.host.transmit(Buffer.from('c'))).catch((e: unknown) => e)
  t.equal((refused as RadioError).reason, 'radio-off')
  t.equal(p.radio.sent.length, 1, 'only the one already started had reached the radio')
  await drive(p.clock, p.host.setRadio(true))
  t.equal((await drive(p.clock, p.host.status())).radioOn, true)
  await drive(p.clock, p.host.transmit(Buffer.from('d')))
  t.same(p.radio.sent.at(-1), Buffer.from('d'))
  p.close()
})

t.test('statistics: device Status and host stats agree with what happened', async (t) => {
  const p = makeMediumPair()
  await drive(p.clock, p.host.start())
  for (let i = 0; i < 3; i++) await drive(p.clock, p.host.transmit(Buffer.from(`tx ${i}`)))
  for (let i = 0; i < 2; i++) {
    p.peer.transmit(Buffer.from(`rx ${i}`))
    await elapse(p.clock, 300)
  }
  p.host.receive(Buffer.from([0x00, 0x05, 0x01, 0x02, 0x00])) // one garbled frame each way
  p.device.receive(Buffer.from([0x00, 0x05, 0x01, 0x02, 0x00]))
  const st = await drive(p.clock, p.host.status())
  await elapse(p.clock, 5) // the last acknowledgement on its way
  t.equal(st.txOk, 3)
  t.equal(st.rxOk, 2)
  t.equal(st.rxCrcError, 0)
  t.equal(st.txFail, 0)
  t.equal(st.queueFree, 4)
  t.equal(st.linkErrors, 1)
  t.equal(st.uptimeMs, Math.floor(p.clock.now()) - 6, 'uptime since the device was created, on its clock, when it answered')
  const hs = p.host.stats()
  t.equal(hs.txDone, 3)
  t.equal(hs.rx, 2)
  t.equal(Object.values(hs.errors).reduce((a, b) => a + b, 0), 1, 'exactly the one garbled frame')
  t.equal(hs.framesOut, p.device.stats().framesIn, 'a clean line: everything the host sent was decoded by the device')
  t.equal(hs.framesIn, p.device.stats().framesOut)
  p.close()
})
