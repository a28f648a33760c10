/**
 * A noisy serial line at the session level: random bytes, truncated frames and frames with bad
 * CRCs between valid frames, in both directions, and a firmware that answers garbage or nothing.
 * The bad input is counted (host stats().errors, device linkErrors), the decoders resynchronise
 * at the next delimiter, nothing throws, and the link is never wedged: a transmit after the
 * noise completes.
 */
import t from 'tap'
import fc from 'fast-check'
import { ConnectionLostError, TimeoutError } from '../../appliance/core/errors.js'
import { cobsEncode } from '../../firmware-bridge/cobs.js'
import { encodeFrame, Flags, frameBytes, PROTOCOL_VERSION, type LinkFrame } from '../../firmware-bridge/codec.js'
import { drive, elapse, makePair, readyPair, type PipeFilter } from './helpers.js'

/** One piece of line noise, delimited so that it is exactly one bad frame. */
type Noise = { kind: 'random'; bytes: Uint8Array } | { kind: 'truncated'; cut: number } | { kind: 'crc'; bit: number } | { kind: 'oversize'; n: number }

const noise: fc.Arbitrary<Noise> = fc.oneof(
  fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 80 }).map((b) => b.map((x) => x || 1)) }),
  fc.record({ kind: fc.constant('truncated' as const), cut: fc.nat() }),
  fc.record({ kind: fc.constant('crc' as const), bit: fc.nat() }),
  fc.record({ kind: fc.constant('oversize' as const), n: fc.integer({ min: 520, max: 1500 }) }),
)

/** A real frame the noise is made from (a Transmit, as a host would write it). */
const victim: LinkFrame = { version: PROTOCOL_VERSION, flags: Flags.NEEDS_ACK, seq: 7, ack: 3, message: { type: 'Transmit', token: 42, payload: Buffer.from('victim frame payload') } }

/** The bytes of a noise item, 0x00-terminated: exactly one frame the decoder must drop. */
function render(n: Noise): Buffer {
  switch (n.kind) {
    case 'random':
      return Buffer.concat([n.bytes, Buffer.from([0])])
    case 'truncated': {
      const wire = encodeFrame(victim) // ends in 0x00
      const cut = 1 + (n.cut % (wire.length - 2)) // 1..len-2 bytes: never the whole frame
      return Buffer.concat([wire.subarray(0, cut), Buffer.from([0])])
    }
    case 'crc': {
      const raw = frameBytes(victim)
      const bit = n.bit % (raw.length * 8)
      raw[bit >> 3]! ^= 1 << (bit & 7) // any single bit, CRC included: CRC-32C catches it
      return Buffer.concat([cobsEncode(raw), Buffer.from([0])])
    }
    case 'oversize':
      return Buffer.concat([Buffer.alloc(n.n, 0x55), Buffer.from([0])])
  }
}

const totalErrors = (e: Record<string, number>) => Object.values(e).reduce((a, b) => a + b, 0)

t.test('property: delimited noise between valid frames, both directions: each piece counted once, no frame lost', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.option(noise, { freq: 2, nil: null }), { minLength: 10, maxLength: 60 }), fc.array(fc.option(noise, { freq: 2, nil: null }), { minLength: 10, maxLength: 60 }), async (downNoise, upNoise) => {
      // Noise goes between writes: before the n-th write, the n-th item (if any).
      const injector = (items: (Noise | null)[], counter: { n: number }): PipeFilter => (bytes, i) => {
        const item = items[i % items.length]
        if (item == null) return [bytes]
        counter.n++
        return [render(item), bytes]
      }
      const down = { n: 0 }
      const up = { n: 0 }
      const p = await readyPair({ downFilter: injector(downNoise, down), upFilter: injector(upNoise, up) })
      for (let i = 0; i < 4; i++) await drive(p.clock, p.host.transmit(Buffer.from(`frame ${i}`)))
      const st = await drive(p.clock, p.host.status())
      await elapse(p.clock, 5)
      const hostErrors = totalErrors(p.host.stats().errors)
      const ok =
        p.radio.sent.length === 4 &&
        hostErrors === up.n &&
        p.device.stats().linkErrors === down.n &&
        st.linkErrors <= down.n &&
        p.host.stats().retransmits === 0 && // no valid frame was damaged: nothing had to be sent again
        p.host.state === 'ready'
      p.close()
      return ok
    }),
    { numRuns: 60 },
  )
  t.pass()
})

t.test('each kind of noise lands in its own counter', async (t) => {
  const p = await readyPair()
  const inject = (n: Noise) => p.host.receive(render(n))
  inject({ kind: 'crc', bit: 3 })
  inject({ kind: 'crc', bit: 1000 })
  inject({ kind: 'oversize', n: 900 })
  inject({ kind: 'random', bytes: Buffer.from([1, 2, 3]) }) // 3 bytes: short, or bad COBS
  const e = p.host.stats().errors
  t.equal(e.crc, 2)
  t.equal(e.oversize, 1)
  t.equal(totalErrors(e), 4)
  await drive(p.clock, p.host.transmit(Buffer.from('after')))
  t.same(p.radio.sent, [Buffer.from('after')])
  p.close()
})

t.test('property: undelimited noise that damages valid frames: counted, retransmitted, resynchronised, never wedged', async (t) => {
  let totalDamaged = 0
  let totalRetransmits = 0
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 0x7fffffff }), fc.integer({ min: 5, max: 30 }), async (seed, percent) => {
      let s = seed
      const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff), s / 0x80000000)
      const randomBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)))
      let damaged = 0
      const noisy: PipeFilter = (bytes) => {
        if (rand() * 100 >= percent) return [bytes]
        damaged++
        const r = rand()
        if (r < 0.25) return [randomBytes(1 + Math.floor(rand() * 40)), bytes] // garbage glued in front
        if (r < 0.5) return [bytes.subarray(0, Math.floor(rand() * bytes.length))] // truncated, delimiter lost
        if (r < 0.75) {
          const b = Buffer.from(bytes)
          b[Math.floor(rand() * b.length)]! ^= 1 << Math.floor(rand() * 8) // a bit error
          return [b]
        }
        return [bytes, randomBytes(1 + Math.floor(rand() * 600))] // garbage after, up to oversize
      }
      const p = makePair({ host: { maxRetries: 60, heartbeatMs: 1000, helloTimeoutMs: 10_000 }, device: { maxRetries: 60 }, downFilter: noisy, upFilter: noisy })
      let crashed: unknown = null
      try {
        await drive(p.clock, p.host.start(), 20_000)
        const payloads = Array.from({ length: 6 }, (_, i) => Buffer.from(`noisy ${seed} ${i}`))
        for (const pl of payloads) await drive(p.clock, p.host.transmit(pl), 20_000)
        await drive(p.clock, p.host.configure({ frequencyHz: 868_100_000, bandwidthHz: 125_000, spreadingFactor: 7, codingRate: 5, txPowerDbm: 10, syncWord: 0x12, preambleSymbols: 8 }), 20_000)
        // The noise stops: the link must be usable at once.
        p.down.filter = null
        p.up.filter = null
        await drive(p.clock, p.host.transmit(Buffer.from('clean')), 2_000)
        totalDamaged += damaged
        totalRetransmits += (p.host.stats().retransmits as number) + (p.device.stats().retransmits as number)
        const sent = p.radio.sent.map(String)
        const ok =
          sent.length === 7 &&
          sent.slice(0, 6).every((x, i) => x === String(payloads[i])) &&
          sent[6] === 'clean' &&
          p.radio.config.spreadingFactor === 7 &&
          (damaged === 0 || totalErrors(p.host.stats().errors) + (p.device.stats().linkErrors as number) > 0)
        return ok
      } catch (err) {
        crashed = err
        throw err
      } finally {
        p.close()
        if (crashed) t.comment(`seed ${seed}, ${percent}%: ${String(crashed)}`)
      }
    }),
    { numRuns: 30 },
  )
  t.ok(totalDamaged > 50, `the noise damaged ${totalDamaged} writes over the runs`)
  t.ok(totalRetransmits > 0, `and the links retransmitted ${totalRetransmits} frames`)
})

t.test('a firmware that answers garbage: the host counts it, gives up cleanly, and recovers when it is sane again', async (t) => {
  let garbage = false
  let s = 12345
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff), s / 0x80000000)
  const upFilter: PipeFilter = (bytes) => (garbage ? [Buffer.from(Array.from({ length: bytes.length }, () => Math.floor(rand() * 256)))] : [bytes])
  const p = await readyPair({ upFilter, host: { maxRetries: 3 } })
  const lost: Error[] = []
  p.host.on('deviceError', (e) => lost.push(e))
  garbage = true
  const before = totalErrors(p.host.stats().errors)
  const st = p.host.status()
  await t.rejects(drive(p.clock, st), ConnectionLostError, 'no valid answer: the session ends, the promise does not hang')
  t.ok(totalErrors(p.host.stats().errors) > before, 'the garbage was counted')
  t.type(lost[0], ConnectionLostError)
  t.equal(p.host.state, 'idle')
  // While it keeps answering garbage, start() times out and says what it saw.
  const err = await drive(p.clock, p.host.start()).catch((e: unknown) => e)
  t.type(err, TimeoutError)
  t.match((err as Error).message, /garbled frames/)
  garbage = false
  await drive(p.clock, p.host.start())
  await drive(p.clock, p.host.transmit(Buffer.from('sane again')))
  t.same(p.radio.sent.at(-1), Buffer.from('sane again'))
  p.close()
})

t.test('a firmware that answers nothing: TimeoutError, then recovery when it answers again', async (t) => {
  const p = makePair({ host: { helloTimeoutMs: 200 } })
  p.up.cut = true
  await t.rejects(drive(p.clock, p.host.start()), TimeoutError)
  p.up.cut = false
  await drive(p.clock, p.host.start())
  await drive(p.clock, p.host.transmit(Buffer.from('hello')))
  t.same(p.radio.sent, [Buffer.from('hello')])
  p.close()
})

t.test('a firmware that answers well-formed nonsense: counted, the session goes on', async (t) => {
  const p = await readyPair()
  const inject = (f: LinkFrame) => p.host.receive(encodeFrame(f))
  const v = PROTOCOL_VERSION
  inject({ version: v, flags: 0, seq: 0, ack: 0, message: { type: 'TxDone', token: 999_999, airtimeUs: 5 } })
  inject({ version: v, flags: 0, seq: 0, ack: 0, message: { type: 'ConfigureAck' } })
  inject({ version: v, flags: Flags.SYN, seq: 0, ack: 0, message: { type: 'Hello', protocolVersion: v, session: 1, heartbeatMs: 10, hostName: 'not a device' } })
  inject({ version: v, flags: Flags.SYN, seq: 0, ack: 0, message: { type: 'HelloAck', protocolVersion: v, session: 0xdead, firmwareName: 'x', firmwareVersion: 'y', radioChip: 0, mtu: 1, queueDepth: 1, credits: 200, capabilities: 0 } })
  inject({ version: v, flags: 0, seq: 0, ack: 77, message: { type: 'Heartbeat' } }) // acknowledges frames never sent
  const e = p.host.stats().errors
  t.equal(e.unknownToken, 1)
  t.equal(e.unexpected, 2, 'an unsolicited ConfigureAck and a Hello from the device side')
  t.equal(e.staleHelloAck, 1)
  t.equal(e.badAck, 1)
  t.equal(p.host.credits, 4, 'the stale HelloAck granted nothing')
  t.equal(p.host.state, 'ready')
  await drive(p.clock, p.host.transmit(Buffer.from('fine')))
  t.same(p.radio.sent, [Buffer.from('fine')])
  p.close()
})

t.test('the streaming decoders never buffer more than one maximum frame, whatever arrives', async (t) => {
  const p = await readyPair()
  p.host.receive(Buffer.alloc(100_000, 0x41))
  p.device.receive(Buffer.alloc(100_000, 0x41))
  p.host.receive(Buffer.from([0]))
  p.device.receive(Buffer.from([0]))
  t.equal(p.host.stats().errors.oversize, 1)
  t.equal(p.device.stats().err_oversize, 1)
  await drive(p.clock, p.host.transmit(Buffer.from('ok')))
  t.same(p.radio.sent, [Buffer.from('ok')])
  p.close()
})
