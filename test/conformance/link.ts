/**
 * The Link conformance suite (drivers/link.ts). Every driver runs it against its real backend
 * (PTY, veth, ...) and against its fake, unchanged:
 *
 *     linkConformance(t, 'lora over firmware-bridge', () => setupPair())
 */
import type { Test } from 'tap'
import type { Link, LinkState, ReceivedFrame } from '../../drivers/link.js'
import { ResourceLimitError } from '../../appliance/core/errors.js'
import { until } from '../lib/until.js'

export interface LinkPair {
  a: Link
  b: Link
  /** Frame sizes to exercise (the largest should be the MTU, or what the medium allows in test time). */
  sizes: number[]
  /** Pull the medium out from under both ends (cable, device, socat). */
  unplug?(): Promise<void>
  /** Put it back. */
  replug?(): Promise<void>
  /** Release everything the fixture started. */
  close(): Promise<void>
  /** How long one frame of the largest size may take end to end, ms. */
  frameTimeoutMs?: number
}


function collect(link: Link): ReceivedFrame[] {
  const got: ReceivedFrame[] = []
  link.on('frame', (f) => got.push(f))
  return got
}

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len)
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7 + 1) & 0xff
  return b
}

export function linkConformance(t: Test, name: string, setup: () => Promise<LinkPair>): void {
  t.test(`${name}: Link conformance`, async (t) => {
    const pair = await setup()
    t.teardown(() => pair.close())
    const { a, b } = pair
    const per = pair.frameTimeoutMs ?? 2000
    // Everything B received so far: a repeat of one of these after an outage is allowed.
    const seenAtB = new Set<string>()
    b.on('frame', (f) => seenAtB.add(f.data.toString('hex')))

    await t.test('opens to up, reporting state changes', async (t) => {
      const states: LinkState[] = []
      a.on('state', (s) => states.push(s))
      t.equal(a.state, 'closed')
      await Promise.all([a.open(), b.open()])
      t.equal(a.state, 'up')
      t.equal(b.state, 'up')
      t.same(states, ['opening', 'up'])
      t.ok(a.mtu > 0 && a.bitrate > 0, 'MTU and bit rate are reported')
      await t.rejects(a.open(), TypeError, 'opening an open link is a caller error')
    })

    await t.test('frames of every size arrive intact and in order', async (t) => {
      const got = collect(b)
      const sent = pair.sizes.map((n, i) => pattern(n, i))
      for (const f of sent) a.send(f)
      await until(`${sent.length} frames`, per * sent.length, () => got.length >= sent.length)
      t.same(got.map((f) => f.data.toString('hex')), sent.map((f) => f.toString('hex')))
      t.ok(got.every((f) => typeof f.at === 'number'))
      t.ok(a.stats().framesOut >= 1 && b.stats().framesIn >= sent.length, 'counted')
    })

    await t.test('both directions', async (t) => {
      const got = collect(a)
      b.send(Buffer.from('reply'))
      await until('reply', per, () => got.length === 1)
      t.equal(got[0]!.data.toString(), 'reply')
    })

    await t.test('bad frames are caller errors', async (t) => {
      t.throws(() => a.send(Buffer.alloc(a.mtu + 1)), TypeError, 'over the MTU')
      t.throws(() => a.send(Buffer.alloc(0)), TypeError, 'empty')
    })

    await t.test('backpressure: send() turns false, drain follows, nothing is lost', async (t) => {
      const got = collect(b)
      const small = Math.min(...pair.sizes)
      let n = 0
      let accepted = true
      for (; accepted && n < 10_000; n++) {
        try {
          accepted = a.send(pattern(small, n))
        } catch (err) {
          t.type(err, ResourceLimitError, 'a full queue refuses loudly')
          n--
          break
        }
      }
      t.equal(accepted, false, `send() reported backpressure after ${n} frames`)
      await new Promise<void>((r) => a.once('drain', () => r()))
      t.pass('drain fired')
      await until(`${n} frames`, per * n + 5000, () => got.length >= n)
      t.equal(got.length, n, 'every accepted frame arrived')
      t.same(a.stats().dropped, {}, 'nothing dropped')
    })

    if (pair.unplug && pair.replug) {
      await t.test('unplug: the link goes down, recovers by itself, and delivers what waited', async (t) => {
        const sentBefore = new Set(seenAtB)
        const got = collect(b)
        await pair.unplug!()
        await until('a down', 10_000, () => a.state === 'down')
        t.equal(a.state, 'down')
        a.send(Buffer.from('sent while down'))
        await pair.replug!()
        await until('a up again', 30_000, () => a.state === 'up' && b.state === 'up')
        // At least once: a frame in flight at the cut may come again before it (drivers/link.ts).
        await until('the frame queued while down', per + 10_000, () => got.some((f) => f.data.toString() === 'sent while down'))
        const others = got.filter((f) => f.data.toString() !== 'sent while down')
        t.ok(others.every((f) => sentBefore.has(f.data.toString('hex'))), `only the frame queued while down, or repeats of frames sent before the cut (${others.length})`)
        t.ok(a.stats().downs >= 1, 'the outage is counted')
      })
    }

    await t.test('close, then send is refused; reopen works', async (t) => {
      await a.close()
      t.equal(a.state, 'closed')
      t.throws(() => a.send(Buffer.from('x')), TypeError)
      await a.close()
      t.pass('close is idempotent')
      await a.open()
      const got = collect(b)
      a.send(Buffer.from('again'))
      await until('frame after reopen', per, () => got.length === 1)
      t.equal(got[0]!.data.toString(), 'again')
    })

    await t.test('abort fails what is queued, with a count', async (t) => {
      const before = Object.values(a.stats().dropped).reduce((x, y) => x + y, 0)
      for (let i = 0; i < 3; i++) a.send(Buffer.from('doomed'))
      a.abort(new Error('test abort'))
      await until('closed', 5000, () => a.state === 'closed')
      const after = a.stats().dropped
      const total = Object.values(after).reduce((x, y) => x + y, 0)
      t.ok(total - before <= 3, 'at most the queued frames are dropped')
      t.ok(total - before >= 0)
    })
  })
}
