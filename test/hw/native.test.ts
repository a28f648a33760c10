/**
 * kairo-hw's parsers of kernel records and its fd watcher, fed exact bytes through a FIFO (the
 * host has no GPIO chip and no /dev/rfkill; the VM tests drive the real ones): struct
 * gpio_v2_line_event as read from a line request fd, struct rfkill_event in its 8- and 9-byte
 * forms, the uv_poll watcher, rtnetlink's view of loopback against sysfs, argument checks.
 */
import { readFileSync, writeSync } from 'node:fs'
import fc from 'fast-check'
import t from 'tap'
import { fifo, gpioEventBytes, requireHw, rfkillEventBytes } from './lib.js'

const n = requireHw(t)
if (n !== undefined) {
  const nextTurn = () => new Promise((r) => setImmediate(r))

  t.test('gpioReadEvents: every struct gpio_v2_line_event of a read, field for field, in order', async (t) => {
    const f = fifo(t)
    const w = f.writer()
    const fd = n.rfkillOpen(f.path) // any O_RDWR | O_NONBLOCK open will do for a FIFO
    t.teardown(() => n.closeFd(fd))
    t.same(n.gpioReadEvents(fd), [], 'nothing queued: [] (EAGAIN), no wait')
    const event = fc.record({
      timestampNs: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      id: fc.constantFrom(1, 2),
      offset: fc.nat({ max: 0xffff_ffff }),
      seqno: fc.nat({ max: 0xffff_ffff }),
      lineSeqno: fc.nat({ max: 0xffff_ffff }),
    })
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 40 }), (evs) => {
        writeSync(w, Buffer.concat(evs.map(gpioEventBytes)))
        const got = n.gpioReadEvents(fd)
        const want = evs.map((e) => ({ offset: e.offset, rising: e.id === 1, timestampNs: e.timestampNs, seqno: e.seqno, lineSeqno: e.lineSeqno }))
        return JSON.stringify(got, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)) === JSON.stringify(want, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))
      }),
    )
  })

  t.test('rfkillRead: 8-byte and 9-byte events, one per read as the kernel hands them out', async (t) => {
    const f = fifo(t)
    const w = f.writer()
    const fd = n.rfkillOpen(f.path)
    t.teardown(() => n.closeFd(fd))
    t.same(n.rfkillRead(fd), [], 'nothing queued: []')
    const event = fc.record({
      index: fc.nat({ max: 0xffff_ffff }),
      type: fc.nat({ max: 255 }),
      op: fc.nat({ max: 255 }),
      soft: fc.boolean(),
      hard: fc.boolean(),
      reasons: fc.option(fc.nat({ max: 255 }), { nil: undefined }),
    })
    fc.assert(
      fc.property(event, (e) => {
        writeSync(w, rfkillEventBytes(e))
        const got = n.rfkillRead(fd)
        return JSON.stringify(got) === JSON.stringify([{ index: e.index, type: e.type, op: e.op, soft: e.soft, hard: e.hard, hardReasons: e.reasons ?? 0 }])
      }),
    )
  })

  t.test('rfkillRead: a record shorter than 8 bytes is EPROTO naming the fd, never a half event', async (t) => {
    const f = fifo(t)
    const w = f.writer()
    const fd = n.rfkillOpen(f.path)
    t.teardown(() => n.closeFd(fd))
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 7 }), (bytes) => {
        writeSync(w, bytes)
        try {
          n.rfkillRead(fd)
          return false
        } catch (err) {
          const e = err as NodeJS.ErrnoException
          return e.code === 'EPROTO' && e.message.includes(`fd ${fd}`) && e.message.includes(`${bytes.length} bytes`)
        }
      }),
    )
  })

  t.test('rfkillWrite writes one 8-byte struct rfkill_event', async (t) => {
    const f = fifo(t)
    const w = f.writer()
    const fd = n.rfkillOpen(f.path)
    t.teardown(() => n.closeFd(fd))
    n.rfkillWrite(w, 2, 7, 0, true)
    n.rfkillWrite(w, 3, 0, 1, false)
    const buf = Buffer.alloc(64)
    const { readSync } = await import('node:fs')
    const got = readSync(fd, buf)
    t.equal(got, 16, 'two events of 8 bytes')
    t.same([...buf.subarray(0, 16)], [7, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 1, 3, 0, 0], 'idx LE, type, op, soft, hard')
  })

  t.test('watch calls back on the event loop when the fd is readable, and not after unwatch', async (t) => {
    const f = fifo(t)
    const w = f.writer()
    const fd = n.rfkillOpen(f.path)
    t.teardown(() => n.closeFd(fd))
    const seen: Array<string | null> = []
    let resolveNext: () => void = () => undefined
    const h = n.watch(fd, (e) => {
      seen.push(e)
      n.rfkillRead(fd)
      resolveNext()
    })
    await nextTurn()
    t.same(seen, [], 'nothing readable: no callback')
    writeSync(w, rfkillEventBytes({ index: 1, type: 1, op: 0, soft: false, hard: false }))
    await new Promise<void>((r) => (resolveNext = r))
    t.same(seen, [null], 'readable: one callback, no error')
    n.unwatch(h)
    n.unwatch(h)
    writeSync(w, rfkillEventBytes({ index: 1, type: 1, op: 2, soft: true, hard: false }))
    await nextTurn()
    await nextTurn()
    t.same(seen, [null], 'no callback after unwatch (idempotent)')
    t.equal(n.rfkillRead(fd).length, 1, 'the event is still there to read')
  })

  t.test('watch refuses an fd epoll cannot watch, naming it', async (t) => {
    const fd = n.rfkillOpen('/dev/null')
    t.teardown(() => n.closeFd(fd))
    t.throws(() => n.watch(fd, () => undefined), { code: 'EPERM', message: new RegExp(`fd ${fd}`) })
    t.same(n.rfkillRead(fd), [], 'end of file: no events, no error')
  })

  t.test('linkGet(lo) agrees with sysfs; a missing interface is ENODEV naming it', async (t) => {
    const lo = n.linkGet('lo')
    t.equal(lo.name, 'lo')
    t.equal(lo.index, Number(readFileSync('/sys/class/net/lo/ifindex', 'utf8')))
    t.equal(lo.mtu, Number(readFileSync('/sys/class/net/lo/mtu', 'utf8')))
    t.equal(lo.flags & 1, Number(readFileSync('/sys/class/net/lo/flags', 'utf8')) & 1, 'IFF_UP as sysfs has it')
    t.throws(() => n.linkGet('kairo-none0'), { code: 'ENODEV', syscall: 'rtnetlink(RTM_GETLINK)', message: /kairo-none0/ })
    t.throws(() => n.linkSetUp('kairo-none0', true), { code: 'ENODEV', message: /kairo-none0 up/ })
  })

  t.test('arguments are checked before any system call', async (t) => {
    t.throws(() => n.gpioGet('3' as unknown as number, 1), TypeError)
    t.throws(() => n.gpioGet(-1, 1), RangeError)
    t.throws(() => n.gpioGet(3, 65), RangeError, 'at most 64 lines')
    t.throws(() => n.gpioRequest('/dev/gpiochip0', [], 'x', 4), RangeError, 'no offsets')
    t.throws(() => n.gpioRequest('/dev/gpiochip0', new Array(65).fill(0), 'x', 4), RangeError, '65 offsets')
    t.throws(() => n.gpioRequest('/dev/gpiochip0', [0, 1], 'x', 8, [1]), RangeError, 'values for 1 of 2 lines')
    t.throws(() => n.gpioChipInfo('/dev/gpio\0chip0'), RangeError, 'NUL in a path')
    t.throws(() => n.linkSetUp('a-name-longer-than-15', true), RangeError)
    t.throws(() => n.linkSetUp('lo', 1 as unknown as boolean), TypeError)
    t.throws(() => n.unwatch({} as never), TypeError)
    t.throws(() => n.watch(0, 'f' as never), TypeError)
  })

  t.test('GPIO calls on a missing chip and on a device that is no GPIO chip name it', async (t) => {
    t.throws(() => n.gpioChipInfo('/dev/gpiochip-kairo-none'), { code: 'ENOENT', syscall: 'open', message: /\/dev\/gpiochip-kairo-none/ })
    t.throws(() => n.gpioLineInfo('/dev/null'), { code: 'ENOTTY', syscall: 'ioctl(GPIO_GET_CHIPINFO_IOCTL)', message: /\/dev\/null/ })
    t.throws(() => n.gpioRequest('/dev/null', [3], 'kairo', 8, [1]), { code: 'ENOTTY', message: /\/dev\/null line 3/ })
    const fd = n.rfkillOpen('/dev/null')
    t.teardown(() => n.closeFd(fd))
    t.throws(() => n.gpioGet(fd, 1), { code: 'ENOTTY', syscall: 'ioctl(GPIO_V2_LINE_GET_VALUES_IOCTL)', message: new RegExp(`fd ${fd}`) })
  })
}
