/**
 * RNode backend (host) against the RNode firmware emulation (device), in process, in virtual
 * time: detect, configuration and its rejections, transmit with estimated-then-confirmed
 * completion, receive with RSSI/SNR, device errors and resets, silence, and noise on the line.
 */
import t from 'tap'
import { ConfigRejectedError, ConnectionLostError, RadioError, TimeoutError } from '../../appliance/core/errors.js'
import type { RadioRx } from '../../drivers/lora/backend.js'
import { DEFAULT_RADIO } from '../../drivers/lora/radio.js'
import {
  CMD_DATA, CMD_DETECT, CMD_ERROR, CMD_FW_VERSION, CMD_MCU, CMD_PLATFORM, CMD_READY, CMD_RESET, CMD_STAT_CHTM, DETECT_RESP, FLAG_SPLIT,
  ERROR_MEMORY_LOW, ERROR_TXFAILED, MCU_ESP32, PLATFORM_ESP32, RNODE_MTU, u16be,
} from '../../drivers/lora/rnode/commands.js'
import { createRNodeDevice } from '../../drivers/lora/rnode/device.js'
import { RNodeBackend, type RNodeDeviceInfo } from '../../drivers/lora/rnode/host.js'
import { KissDecoder, kissEncode } from '../../drivers/lora/rnode/kiss.js'
import { Clock, StubRadio, pair, ready, settle } from './harness.js'

t.test('detect, firmware version, platform and MCU', async (t) => {
  const p = pair()
  const info = (await p.clock.run(p.host.start())) as RNodeDeviceInfo
  t.match(info, { firmware: 'RNode', version: '1.85', mtu: RNODE_MTU, channelActivity: false, firmwareMajor: 1, firmwareMinor: 0x55, platform: PLATFORM_ESP32, platformName: 'ESP32', mcu: MCU_ESP32, mcuName: 'ESP32', queueDepth: 2 })
  // One write, like RNodeInterface.py detect(): DETECT 73, FW_VERSION, PLATFORM, MCU, each with a dummy byte.
  t.equal(p.fromHost[0]!.toString('hex'), 'c00873c0' + 'c05000c0' + 'c04800c0' + 'c04900c0')
  t.equal(p.host.credits, 0, 'no credits before configure')
})

t.test('configure: settings echoed and read back, radio on, credits', async (t) => {
  const p = pair()
  const credits: number[] = []
  p.host.on('credits', (n) => credits.push(n))
  await ready(p)
  t.equal(p.host.credits, 2)
  t.same(credits, [2], 'credits event when the radio is ready')
  t.equal(p.radio.isOn, true)
  t.match(p.radio.config, { frequencyHz: DEFAULT_RADIO.frequencyHz, bandwidthHz: 125_000, spreadingFactor: 9, codingRate: 5, txPowerDbm: 14, syncWord: 0x12, preambleSymbols: 18 })
  const s = p.host.stats()
  t.match(s, { radioOn: true, phy: { preambleSymbols: 18, reported: true, csmaSlotMs: 49, difsMs: 98 } })
  t.same(s.errors, { badEscape: 0, oversize: 0, outOfFrame: 0 })
  // Frequency 869525000 = 0x33D3E608: sent as 4 big-endian bytes.
  t.ok(p.fromHost.some((b) => b.toString('hex') === 'c00133d3e608c0'), 'CMD_FREQUENCY frame')
  // The preamble in the config is not sent: RNode has no command for it.
  await p.clock.run(p.host.configure({ ...DEFAULT_RADIO, preambleSymbols: 32, spreadingFactor: 7 }))
  t.equal(p.radio.config.spreadingFactor, 7)
  t.equal(p.radio.config.preambleSymbols, 24, 'the firmware picks the preamble')
})

t.test('configure rejected by the device names the field', async (t) => {
  t.test('spreading factor 13: the firmware clamps to 12 and the echo shows it', async (t) => {
    const p = pair()
    await p.clock.run(p.host.start())
    const err = await p.clock.run(p.host.configure({ ...DEFAULT_RADIO, spreadingFactor: 13 })).catch((e: unknown) => e)
    t.type(err, ConfigRejectedError)
    t.equal((err as ConfigRejectedError).field, 'spreadingFactor')
    t.match((err as Error).message, /set spreadingFactor 12, not 13/)
    t.equal(p.host.credits, 0)
    t.equal(p.radio.isOn, false, 'never switched on')
    await t.rejects(p.host.transmit(Buffer.from('x')), { name: 'RadioError', reason: 'radio-off' })
  })
  t.test('bandwidth 100 kHz: the modem runs 125 kHz once the radio is on', async (t) => {
    const p = pair()
    await p.clock.run(p.host.start())
    const err = await p.clock.run(p.host.configure({ ...DEFAULT_RADIO, bandwidthHz: 100_000 })).catch((e: unknown) => e)
    t.type(err, ConfigRejectedError)
    t.equal((err as ConfigRejectedError).field, 'bandwidthHz')
    t.match((err as Error).message, /now runs bandwidthHz 125000, not 100000/)
    t.equal(p.radio.isOn, false, 'switched off again after the rejection')
    t.equal(p.device.stats().radioOnline, 0)
  })
  t.test('TX power 20 dBm on an SX1276 board (17 dBm maximum)', async (t) => {
    const p = pair({ device: { modem: 'sx1276' } })
    await p.clock.run(p.host.start())
    await t.rejects(p.clock.run(p.host.configure({ ...DEFAULT_RADIO, txPowerDbm: 20 })), { field: 'txPowerDbm', message: /set txPowerDbm 17, not 20/ })
    await p.clock.run(p.host.configure({ ...DEFAULT_RADIO, txPowerDbm: 17 }))
    t.equal(p.host.credits, 2, 'a supported value then works; SX1276 frequency steps are within the 100 Hz tolerance')
  })
  t.test('a radio that does not start: ERROR_INITRADIO', async (t) => {
    const p = pair()
    await p.clock.run(p.host.start())
    // 100 MHz passes the protocol, the (virtual) modem refuses it when the radio starts.
    await t.rejects(p.clock.run(p.host.configure({ ...DEFAULT_RADIO, frequencyHz: 100_000_000 })), { name: 'RadioError', reason: 'init-failed' })
  })
  t.test('an unprovisioned board stays off', async (t) => {
    const p = pair({ device: { hwReady: false } })
    await p.clock.run(p.host.start())
    await t.rejects(p.clock.run(p.host.configure(DEFAULT_RADIO)), { name: 'RadioError', reason: 'radio-offline' })
  })
})

t.test('configure rejected before anything is sent', async (t) => {
  const p = pair()
  await p.clock.run(p.host.start())
  const sent = p.fromHost.length
  const cases: Array<[Partial<typeof DEFAULT_RADIO> & { airtimeLimits?: object }, string]> = [
    [{ syncWord: 0x34 }, 'syncWord'],
    [{ txPowerDbm: -3 }, 'txPowerDbm'],
    [{ spreadingFactor: 255 }, 'spreadingFactor'],
    [{ frequencyHz: 0 }, 'frequencyHz'],
    [{ bandwidthHz: 2 ** 32 }, 'bandwidthHz'],
    [{ airtimeLimits: { shortTermPercent: 150 } }, 'airtimeLimits.shortTermPercent'],
  ]
  for (const [bad, field] of cases) {
    await t.rejects(p.host.configure({ ...DEFAULT_RADIO, ...bad }), { name: 'ConfigRejectedError', field }, field)
  }
  t.equal(p.fromHost.length, sent, 'nothing written')
})

t.test('airtime limits are set and verified', async (t) => {
  const p = pair()
  await p.clock.run(p.host.start())
  await p.clock.run(p.host.configure({ ...DEFAULT_RADIO, airtimeLimits: { shortTermPercent: 10, longTermPercent: 1.5 } }))
  t.ok(p.fromHost.some((b) => b.toString('hex') === 'c00b03e8c0'), 'CMD_ST_ALOCK 1000 (10.00 %)')
  t.ok(p.fromHost.some((b) => b.toString('hex') === 'c00c0096c0'), 'CMD_LT_ALOCK 150 (1.50 %)')
  t.same(p.host.stats().airtimeLimits, { shortTermPercent: 10, longTermPercent: 1.5 })
})

t.test('transmit: header byte, completion after the air time, credits', async (t) => {
  const p = pair()
  await ready(p)
  const credits: number[] = []
  p.host.on('credits', (n) => credits.push(n))
  const payload = Buffer.from([0xc0, 0xdb, 0x00, 0x01, 0xc0, ...Buffer.alloc(95, 7)]) // KISS specials inside
  const done = p.host.transmit(payload)
  t.equal(p.host.credits, 1)
  await p.clock.run(done)
  t.equal(p.radio.sent.length, 1)
  const air = p.radio.sent[0]!
  t.equal(air.bytes.length, payload.length + 1, '1-byte RNode header')
  t.equal(air.bytes[0]! & 0x0f, 0, 'not split')
  t.ok(air.bytes.subarray(1).equals(payload), 'payload intact through KISS escaping')
  t.ok(p.clock.now() >= air.doneAt, `resolved at ${p.clock.now()} ms, not before the radio finished at ${air.doneAt} ms`)
  t.equal(p.host.credits, 2)
  t.same(credits, [2])
  t.match(p.host.stats(), { tx: 1, txBytes: 100, inFlight: 0 })
})

t.test('transmit: long packets are split, two in flight, overcommit is a TypeError', async (t) => {
  const p = pair()
  await ready(p, { spreadingFactor: 7 })
  const a = p.host.transmit(Buffer.alloc(300, 1))
  const b = p.host.transmit(Buffer.alloc(508, 2))
  t.equal(p.host.credits, 0)
  await t.rejects(p.host.transmit(Buffer.from('x')), TypeError, 'no credits left')
  await t.rejects(p.host.transmit(Buffer.alloc(0)), TypeError)
  await t.rejects(p.host.transmit(Buffer.alloc(509)), TypeError)
  await p.clock.run(Promise.all([a, b]))
  t.same(p.radio.sent.map((s) => s.bytes.length), [255, 47, 255, 255])
  t.equal(p.radio.sent[0]!.bytes[0]! & FLAG_SPLIT, FLAG_SPLIT)
  t.equal(p.radio.sent[0]!.bytes[0], p.radio.sent[1]!.bytes[0], 'both halves carry the same header')
  const last = p.radio.sent[3]!
  t.ok(p.clock.now() >= last.doneAt, 'the second packet resolves after its last frame left')
  t.equal(p.host.credits, 2)
})

t.test('transmit waits for CSMA on a busy channel', async (t) => {
  const p = pair()
  await ready(p, { spreadingFactor: 7 })
  p.radio.setChannel(true)
  const done = p.host.transmit(Buffer.from('hello'))
  await p.clock.advance(5_000)
  t.equal(p.radio.sent.length, 0, 'nothing on air while the channel is busy')
  t.equal(p.device.stats().queued, 1, 'the packet waits in the device queue')
  p.radio.setChannel(false)
  await p.clock.run(done)
  await p.clock.advance(1_000)
  t.equal(p.radio.sent.length, 1, 'sent once the channel is free (after DIFS and the contention window)')
  const s = p.radio.sent[0]!
  const difs = 48
  t.ok(s.at >= 5_000 + difs, `went on air at ${Math.round(s.at)} ms, at least DIFS after the channel freed`)
})

t.test('receive: RSSI and SNR from the frames before CMD_DATA', async (t) => {
  const p = pair()
  await ready(p)
  const got: RadioRx[] = []
  p.host.on('rx', (rx) => got.push(rx))
  p.radio.inject(Buffer.from([0x30, 1, 2, 3, 0xc0]), -93, 7.25)
  p.radio.inject(Buffer.from([0x50 | FLAG_SPLIT, ...Buffer.alloc(254, 9)]), -120, -12.5)
  p.radio.inject(Buffer.from([0x50 | FLAG_SPLIT, 4, 5]), -118, -12)
  await settle()
  t.equal(got.length, 2)
  t.same([...got[0]!.payload], [1, 2, 3, 0xc0])
  t.equal(got[0]!.rssi, -93)
  t.equal(got[0]!.snr, 7.25)
  t.equal(got[1]!.payload.length, 256, 'split packet reassembled')
  t.same([got[1]!.rssi, got[1]!.snr], [-118, -12], 'values of the completing frame')
  // CMD_DATA without the stats frames: counted, NaN.
  p.toHost(kissEncode(CMD_DATA, Buffer.from('bare')))
  await settle()
  t.equal(got.length, 3)
  t.ok(Number.isNaN(got[2]!.rssi))
  t.equal((p.host.stats().errors as Record<string, number>).rxWithoutStats, 1)
})

t.test('a silent device: TimeoutError naming what did not answer', async (t) => {
  t.test('nothing answers CMD_DETECT', async (t) => {
    const clock = new Clock()
    const host = new RNodeBackend({ scheduler: clock })
    const written: Buffer[] = []
    host.attach((b) => void written.push(Buffer.from(b)))
    const err = await clock.run(host.start()).catch((e: unknown) => e)
    t.type(err, TimeoutError)
    t.match((err as Error).message, /CMD_DETECT \(0x08\).*2000 ms/)
    t.equal(clock.now(), 2000)
    t.equal(written.length, 4, 'the detect request was sent, then repeated every 500 ms')
    t.equal(clock.pending, 0, 'no timer left behind')
  })
  t.test('detect answered, firmware version not', async (t) => {
    const clock = new Clock()
    const host = new RNodeBackend({ scheduler: clock })
    host.attach(() => queueMicrotask(() => host.receive(Buffer.concat([kissEncode(CMD_DETECT, Buffer.from([DETECT_RESP])), kissEncode(CMD_PLATFORM, Buffer.from([0x80])), kissEncode(CMD_MCU, Buffer.from([0x81]))]))))
    await t.rejects(clock.run(host.start()), { name: 'TimeoutError', message: /CMD_FW_VERSION \(0x50\)/ })
  })
  t.test('firmware older than 1.52', async (t) => {
    const p = pair({ device: { firmwareVersion: [1, 50] } })
    await t.rejects(p.clock.run(p.host.start()), { name: 'RadioError', reason: 'unsupported-firmware', message: /1\.50 is older than 1\.52/ })
  })
  t.test('a device that stops answering while packets are in flight', async (t) => {
    const p = pair()
    await ready(p)
    let cut = false
    p.host.attach((b) => void (cut ? undefined : queueMicrotask(() => p.device.receive(Buffer.from(b)))))
    const done = p.host.transmit(Buffer.from('x'))
    cut = true
    const err = await p.clock.run(done).catch((e: unknown) => e)
    t.type(err, ConnectionLostError, 'the link treats it as a lost device')
    t.match((err as Error).message, /stopped answering CMD_READY/)
    await t.rejects(p.host.transmit(Buffer.from('y')), ConnectionLostError)
  })
})

t.test('CMD_ERROR: deviceError with a typed reason; TX failure rejects the packet', async (t) => {
  const p = pair()
  await ready(p)
  const errors: Error[] = []
  p.host.on('deviceError', (e) => errors.push(e))
  p.radio.setChannel(true) // keep the packet queued on the device
  const done = p.host.transmit(Buffer.from('x')).catch((e: unknown) => e)
  p.toHost(kissEncode(CMD_ERROR, Buffer.from([ERROR_TXFAILED])))
  p.toHost(kissEncode(CMD_ERROR, Buffer.from([ERROR_MEMORY_LOW])))
  await settle()
  const err = await done
  t.type(err, RadioError)
  t.equal((err as RadioError).reason, 'tx-failed')
  t.same(errors.map((e) => (e as RadioError).reason), ['tx-failed', 'memory-low'])
  t.ok(errors.every((e) => e instanceof RadioError))
  t.equal(p.host.credits, 2, 'the credit came back')
  t.match(p.host.stats().deviceErrors, { 'tx-failed': 1, 'memory-low': 1 })
})

t.test('device reset (CMD_RESET 0xF8) after start: pending work fails with ConnectionLostError', async (t) => {
  const p = pair()
  await ready(p)
  const reasons: string[] = []
  p.host.on('deviceError', (e) => reasons.push((e as RadioError).reason))
  p.radio.setChannel(true)
  const done = p.host.transmit(Buffer.from('x'))
  await settle() // the packet is on the device, waiting for the channel
  p.device.reset()
  await t.rejects(done, ConnectionLostError)
  t.same(reasons, ['device-reset'])
  t.equal(p.host.credits, 0)
  t.equal(p.radio.isOn, false)
  // start + configure again, as the link does after a lost device.
  p.radio.setChannel(false)
  await ready(p)
  await p.clock.run(p.host.transmit(Buffer.from('again')))
  t.equal(p.radio.sent.length, 1)
})

t.test('a reset while start() waits (ESP32 boards reboot when the port opens) restarts detection', async (t) => {
  const clock = new Clock()
  const radio = new StubRadio(clock)
  const host = new RNodeBackend({ scheduler: clock })
  let booted = false
  const device = createRNodeDevice(radio, (b) => queueMicrotask(() => host.receive(Buffer.from(b))))
  host.attach((b) => {
    if (booted) queueMicrotask(() => device.receive(Buffer.from(b)))
  })
  const started = host.start()
  await clock.advance(1900)
  booted = true
  device.reset() // boot indication; the device listens from now on
  const info = await clock.run(started)
  t.equal(info.firmware, 'RNode')
  t.ok(clock.now() < 2000 + 500, 'answered on the re-sent request')
})

t.test('airtime lock reported by CMD_STAT_CHTM holds credits until it lifts', async (t) => {
  const p = pair()
  await p.clock.run(p.host.start())
  await p.clock.run(p.host.configure({ ...DEFAULT_RADIO, airtimeLimits: { shortTermPercent: 5 } }))
  const chtm = (shortPct: number): Buffer => kissEncode(CMD_STAT_CHTM, Buffer.concat([u16be(shortPct * 100), u16be(0), u16be(0), u16be(0)]))
  p.toHost(chtm(6))
  await settle()
  t.equal(p.host.credits, 0, 'locked')
  t.match(p.host.stats(), { airtimeLocked: true, airtime: { airtimeShortPercent: 6 } })
  const credits: number[] = []
  p.host.on('credits', (n) => credits.push(n))
  p.toHost(chtm(4))
  await settle()
  t.equal(p.host.credits, 2)
  t.same(credits, [2])
})

t.test('the emulated device enforces its airtime limit and reports it', async (t) => {
  const p = pair()
  await p.clock.run(p.host.start())
  // SF12: one 200-byte packet is ~7.7 s on air, far over 5 % of the 15 s short-term window.
  await p.clock.run(p.host.configure({ ...DEFAULT_RADIO, spreadingFactor: 12, airtimeLimits: { shortTermPercent: 5 } }))
  const done = p.host.transmit(Buffer.alloc(200, 1))
  const settled = done.then(
    () => 'resolved',
    (e: unknown) => e,
  )
  for (let i = 0; i < 200 && !(p.radio.sent.length === 1 && p.clock.now() >= p.radio.sent[0]!.doneAt); i++) await p.clock.advance(100)
  const a = p.radio.sent[0]!
  t.ok(a !== undefined && p.clock.now() >= a.doneAt, 'the packet went on air')
  t.equal(p.host.stats().airtimeLocked, true, 'host saw the lock in CMD_STAT_CHTM')
  t.equal(p.host.credits, 0)
  // A packet that reaches the device now is held until the window moves on.
  p.toDevice(kissEncode(CMD_DATA, Buffer.from('held')))
  await p.clock.advance(5_000)
  t.equal(p.radio.sent.length, 1, 'nothing sent while the airtime limit holds')
  t.ok(p.device.stats().airtimeHeld! > 0, 'the device held its queue')
  t.equal(p.host.stats().airtimeLocked, true, 'still locked: the once-a-second reports keep saying so')
  // The device reports its airtime every second whether or not anything is queued, so the host
  // learns when the packet has left the 15 s short-term window.
  const back = new Promise<number>((resolve) => p.host.once('credits', () => resolve(p.clock.now())))
  const at = await p.clock.run(back)
  t.ok(at >= a.doneAt + 15_000, `credits back only after the window moved on (${Math.round(at - a.doneAt)} ms after the packet)`)
  t.ok(at <= a.doneAt + 15_000 + 1_000, 'and within one report interval of that')
  t.equal(p.host.stats().airtimeLocked, false)
  t.equal(await p.clock.run(settled), 'resolved', 'the packet is confirmed once the device answers again')
  t.equal(p.radio.sent.length, 2, 'the held packet went out once the lock lifted')
  t.ok(p.radio.sent[1]!.at >= at, 'not before')
})

t.test('CMD_READY "not ready" holds credits; "ready" returns them', async (t) => {
  const p = pair()
  await ready(p)
  p.toHost(kissEncode(CMD_READY, Buffer.from([0])))
  await settle()
  t.equal(p.host.credits, 0)
  const credits: number[] = []
  p.host.on('credits', (n) => credits.push(n))
  p.toHost(kissEncode(CMD_READY, Buffer.from([1])))
  await settle()
  t.same(credits, [2])
})

t.test('the device queue: full queue answers CMD_READY 0x00 and the host waits', async (t) => {
  const p = pair({ device: { queueMaxLength: 1 }, host: { queueDepth: 3 } })
  await ready(p, { spreadingFactor: 7 })
  p.radio.setChannel(true) // nothing leaves the device
  const sends = [p.host.transmit(Buffer.from('a')), p.host.transmit(Buffer.from('b'))]
  // 'b' was dropped by the device; however it ends, it must never be an unhandled rejection.
  void sends[1]!.then(
    () => 'resolved',
    (e: unknown) => e,
  )
  await p.clock.advance(2_000)
  t.equal(p.host.stats().notReady, true, 'device said its queue is full')
  t.equal(p.host.credits, 0)
  t.equal(p.device.stats().queueOverflow, 1, 'the firmware drops what does not fit, silently')
  p.radio.setChannel(false)
  await p.clock.run(sends[0]!)
  await p.clock.advance(1_000)
  t.equal(p.host.stats().notReady, false)
  t.equal(p.radio.sent.length, 1)
})

t.test('noise on the line is counted and skipped, both ways', async (t) => {
  const p = pair()
  await p.clock.run(p.host.start())
  const got: RadioRx[] = []
  p.host.on('rx', (rx) => got.push(rx))
  // Device → host: boot text, a bad escape, an oversize frame, an unknown command, then good frames.
  const bootText = Buffer.from('Error, incorrect boot vector\r\n') // RNode_Firmware validate_status(), right after CMD_RESET
  p.toHost(bootText)
  p.toHost(Buffer.from([0xc0, 0x00, 0xdb, 0x41, 0xc0]))
  p.toHost(Buffer.concat([Buffer.from([0xc0, 0x00]), Buffer.alloc(2000, 1), Buffer.from([0xc0])]))
  p.toHost(kissEncode(0xee, Buffer.from([1])))
  const ignoredBefore = p.host.stats().ignoredFrames
  await settle()
  t.equal(p.host.stats().ignoredFrames, ignoredBefore, 'the text was not mistaken for a frame (its first byte, 0x45, is a real command)')
  await p.clock.run(p.host.configure(DEFAULT_RADIO))
  p.radio.inject(Buffer.from([0x00, 42]), -70, 5)
  await settle()
  const e = p.host.stats().errors as Record<string, number>
  t.equal(e.outOfFrame, bootText.length, 'text between frames: every byte counted as out of frame')
  t.equal(e.badEscape, 1)
  t.equal(e.oversize, 1)
  t.equal(e.unknownCommand, 1)
  t.equal(got.length, 1, 'reception still works')
  t.equal(got[0]!.payload[0], 42)
  // Host → device: garbage, then a real command still answered.
  p.toDevice(Buffer.from([0x01, 0x02, 0xdb, 0xc0, 0xdb, 0x99, 0xc0, 0x77, 0x01, 0xc0]))
  await settle()
  const d = p.device.stats()
  t.ok(d.garbage! >= 3, `device counted garbage (${d.garbage})`)
  await p.clock.run(p.host.transmit(Buffer.from('still fine')))
  t.equal(p.radio.sent.length, 1)
})

t.test('stop() rejects everything pending with ConnectionLostError', async (t) => {
  const clock = new Clock()
  const host = new RNodeBackend({ scheduler: clock })
  host.attach(() => {})
  const started = host.start()
  await settle()
  host.stop()
  await t.rejects(started, ConnectionLostError)
  await t.rejects(host.configure(DEFAULT_RADIO), ConnectionLostError)
  await t.rejects(host.transmit(Buffer.from('x')), ConnectionLostError)
  t.doesNotThrow(() => host.receive(Buffer.from([0xc0, 0x08, 0x46, 0xc0])))
  t.equal(clock.pending, 0)
})

t.test('an abort signal stops a start()', async (t) => {
  const clock = new Clock()
  const host = new RNodeBackend({ scheduler: clock })
  host.attach(() => {})
  const ac = new AbortController()
  const started = host.start(ac.signal)
  await settle()
  ac.abort(new Error('shutting down'))
  await t.rejects(started, { message: 'shutting down' })
})

t.test('the emulator answers the firmware way (raw bytes)', async (t) => {
  const clock = new Clock()
  const radio = new StubRadio(clock)
  const out: Buffer[] = []
  const dev = createRNodeDevice(radio, (b) => void out.push(Buffer.from(b)))
  const frames = (): Array<[number, string]> => {
    const d = new KissDecoder()
    const r = d.push(Buffer.concat(out)).map((f) => [f.command, f.data.toString('hex')] as [number, string])
    out.length = 0
    return r
  }
  dev.receive(Buffer.from('c050c0', 'hex'))
  t.same(frames(), [], 'a command without a byte after it does nothing (the firmware acts on that byte)')
  dev.receive(Buffer.from('c0500000c0', 'hex'))
  t.same(frames(), [[CMD_FW_VERSION, '0155'], [CMD_FW_VERSION, '0155']], 'one answer per byte')
  dev.receive(kissEncode(0x06, Buffer.from([1])))
  t.same(frames(), [[0x06, '00'], [0x06, '00']], 'radio locked (nothing set): off, reported twice')
  dev.receive(kissEncode(0x04, Buffer.from([3])))
  t.same(frames(), [[0x04, '05']], 'SF clamped to 5')
  dev.receive(kissEncode(0x03, Buffer.from([30])))
  t.same(frames(), [[0x03, '16']], 'TX power clamped to 22 (SX1262)')
  dev.receive(kissEncode(0x0b, u16be(10_000)))
  t.same(frames(), [[0x0b, '0000']], 'an airtime limit of 100 % means none')
  dev.receive(kissEncode(CMD_RESET, Buffer.from([0xf8])))
  t.same(frames(), [[CMD_RESET, 'f8']], 'host-ordered reset: the device reboots and says so')
  t.equal(dev.stats().resets, 1)
})
