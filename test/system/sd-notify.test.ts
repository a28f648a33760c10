/**
 * sd_notify against a real notify socket: a python3 receiver bound like systemd's (AF_UNIX
 * SOCK_DGRAM with SO_PASSCRED, so each datagram carries its sender's pid as the kernel saw it),
 * NOTIFY_SOCKET set for a child process that runs appliance/system/sd-notify.ts. Checks what
 * arrives (READY=1, WATCHDOG=1 at half the interval and never later than the deadline,
 * RELOADING=1 with a CLOCK_MONOTONIC stamp, STOPPING=1), that it comes from the main pid
 * (NotifyAccess=main), abstract addresses, the watchdog environment rules of
 * sd_watchdog_enabled(3), and the errors of every way the socket can be wrong.
 */
import t from 'tap'
import fc from 'fast-check'
import net from 'node:net'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import {
  SdNotifyError,
  WatchdogConfigError,
  notifyReady,
  notifyReloading,
  notifyStatus,
  notifyStopping,
  sdNotify,
  startWatchdog,
  watchdogUsec,
} from '../../appliance/system/sd-notify.js'
import { NOTIFY_CHILD, requirePython, run, startReceiver, tempDir, type Datagram } from './helpers.js'
import { until } from '../lib/until.js'

const NOTIFY_VARS = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const

/** Runs `fn` with these variables set (others of NOTIFY_VARS unset), then restores them. */
async function withEnv<T>(vars: Partial<Record<(typeof NOTIFY_VARS)[number], string>>, fn: () => T | Promise<T>): Promise<T> {
  const saved = NOTIFY_VARS.map((k) => [k, process.env[k]] as const)
  for (const k of NOTIFY_VARS) delete process.env[k]
  Object.assign(process.env, vars)
  try {
    return await fn()
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

function childEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const k of NOTIFY_VARS) delete env[k]
  return { ...env, ...vars }
}

function gaps(ds: Datagram[]): number[] {
  const out: number[] = []
  for (let i = 1; i < ds.length; i++) out.push((ds[i]!.t_us - ds[i - 1]!.t_us) / 1000)
  return out
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('without NOTIFY_SOCKET everything is a no-op that says so', async (t) => {
  await withEnv({}, () => {
    t.equal(sdNotify('READY=1'), false)
    t.equal(notifyReady('x'), false)
    t.equal(notifyStopping(), false)
    t.equal(notifyStatus('x'), false)
    t.equal(notifyReloading(), false)
    const stop = startWatchdog({ onError: (e) => t.fail(e.message) })
    t.type(stop, 'function')
    stop()
  })
  await withEnv({ NOTIFY_SOCKET: '' }, () => t.equal(sdNotify('READY=1'), false, 'empty counts as unset'))
  // A watchdog asked for but no socket to ping: nothing to do, no error.
  await withEnv({ WATCHDOG_USEC: '1000000' }, () => {
    startWatchdog({ onError: (e) => t.fail(e.message) })()
  })
})

t.test('a daemon lifecycle over a path socket: READY, watchdog at half the interval, STOPPING, all from the main pid', async (t) => {
  if (!requirePython(t)) return
  const dir = await tempDir(t)
  const rx = await startReceiver(t, join(dir, 'notify'))
  const WATCHDOG_USEC = 600_000
  const r = await run(process.execPath, ['--import=tsx', NOTIFY_CHILD, '2400'], childEnv({ NOTIFY_SOCKET: rx.address, WATCHDOG_USEC: String(WATCHDOG_USEC) }))
  t.equal(r.code, 0, r.stderr)
  const result = JSON.parse(r.stdout) as Record<string, unknown>
  t.same(result, { pid: r.pid, ready: true, status: true, stopping: true, errors: [] })
  await rx.waitFor('STOPPING=1', (ds) => ds.some((d) => d.data.startsWith('STOPPING=1')))
  await sleep(100)
  const ds = rx.datagrams
  t.ok(ds.every((d) => d.pid === r.pid), 'every datagram was sent by the main pid (NotifyAccess=main accepts it)')
  t.ok(ds.every((d) => d.uid === process.getuid!()), 'and by our uid')
  t.equal(ds[0]?.data, 'READY=1\nSTATUS=starting up second line', 'READY=1 first; the status newline cannot inject a field')
  const stopIdx = ds.findIndex((d) => d.data.startsWith('STOPPING=1'))
  t.equal(ds[stopIdx - 1]?.data, 'STATUS=draining')
  t.equal(ds[stopIdx]?.data, 'STOPPING=1')
  t.equal(stopIdx, ds.length - 1, 'nothing after STOPPING=1: the stop function stopped the pings')
  const pings = ds.filter((d) => d.data === 'WATCHDOG=1')
  t.ok(pings.length >= 5 && pings.length <= 12, `${pings.length} pings in 2.4 s at a 300 ms interval`)
  t.ok(pings[0]!.t_us - ds[0]!.t_us < 100_000, 'the first ping goes out at once')
  const g = gaps([ds[0]!, ...pings, ds[stopIdx]!])
  const m = median(gaps(pings))
  t.ok(m >= 225 && m <= 450, `median interval ${m} ms, asked for ${WATCHDOG_USEC / 2000} ms`)
  t.ok(Math.max(...g) < WATCHDOG_USEC / 1000, `no gap reaches the watchdog deadline (${WATCHDOG_USEC / 1000} ms): longest ${Math.max(...g)} ms`)
})

t.test('reload: RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC), then READY=1', async (t) => {
  if (!requirePython(t)) return
  const dir = await tempDir(t)
  const rx = await startReceiver(t, join(dir, 'notify'))
  const r = await run(process.execPath, ['--import=tsx', NOTIFY_CHILD, '200', '--reload'], childEnv({ NOTIFY_SOCKET: rx.address }))
  t.equal(r.code, 0, r.stderr)
  t.match(JSON.parse(r.stdout), { reloading: true, readyAgain: true, errors: [] })
  await rx.waitFor('STOPPING=1', (ds) => ds.some((d) => d.data === 'STOPPING=1'))
  const data = rx.datagrams.map((d) => d.data)
  t.notOk(data.includes('WATCHDOG=1'), 'no WATCHDOG_USEC, no pings')
  const i = data.findIndex((d) => d.startsWith('RELOADING=1'))
  const m = /^RELOADING=1\nMONOTONIC_USEC=(\d+)$/.exec(data[i] ?? '')
  t.ok(m, `RELOADING=1 then MONOTONIC_USEC: ${JSON.stringify(data[i])}`)
  const stamp = Number(m?.[1])
  const arrival = rx.datagrams[i]!.t_us
  t.ok(stamp <= arrival && arrival - stamp < 1_000_000, `stamp ${stamp} µs is CLOCK_MONOTONIC just before arrival at ${arrival} µs`)
  t.equal(data[i + 1], 'READY=1', 'READY=1 ends the reload')
})

t.test('an abstract notify socket (@name)', async (t) => {
  if (!requirePython(t)) return
  const rx = await startReceiver(t, `@kairo-test/${randomBytes(8).toString('hex')}`)
  const r = await run(process.execPath, ['--import=tsx', NOTIFY_CHILD, '300'], childEnv({ NOTIFY_SOCKET: rx.address, WATCHDOG_USEC: '200000' }))
  t.equal(r.code, 0, r.stderr)
  await rx.waitFor('STOPPING=1', (ds) => ds.some((d) => d.data === 'STOPPING=1'))
  const data = rx.datagrams.map((d) => d.data)
  t.equal(data[0], 'READY=1\nSTATUS=starting up second line')
  t.ok(data.includes('WATCHDOG=1'))
  t.equal(data.at(-1), 'STOPPING=1')
  t.ok(rx.datagrams.every((d) => d.pid === r.pid))
})

t.test('WATCHDOG_PID: pings only from the process it names', async (t) => {
  if (!requirePython(t)) return
  const dir = await tempDir(t)
  const rx = await startReceiver(t, join(dir, 'notify'))
  // The shell's pid becomes node's with exec: WATCHDOG_PID names the child itself.
  const own = await run('sh', ['-c', `WATCHDOG_PID=$$ exec "${process.execPath}" --import=tsx "${NOTIFY_CHILD}" 300`], childEnv({ NOTIFY_SOCKET: rx.address, WATCHDOG_USEC: '200000' }))
  t.equal(own.code, 0, own.stderr)
  await rx.waitFor('STOPPING=1 (own pid)', (ds) => ds.some((d) => d.data === 'STOPPING=1'))
  t.ok(rx.datagrams.some((d) => d.data === 'WATCHDOG=1' && d.pid === own.pid), 'WATCHDOG_PID = own pid: pings')
  rx.datagrams.length = 0
  // Another pid (ours, the parent's): a child that inherited the environment must not ping.
  const other = await run(process.execPath, ['--import=tsx', NOTIFY_CHILD, '300'], childEnv({ NOTIFY_SOCKET: rx.address, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) }))
  t.equal(other.code, 0, other.stderr)
  await rx.waitFor('STOPPING=1 (other pid)', (ds) => ds.some((d) => d.data === 'STOPPING=1'))
  t.notOk(rx.datagrams.some((d) => d.data === 'WATCHDOG=1'), 'WATCHDOG_PID = another pid: no pings')
  t.equal(rx.datagrams[0]?.data, 'READY=1\nSTATUS=starting up second line', 'READY=1 still goes out')
})

t.test('watchdogUsec follows sd_watchdog_enabled(3)', async (t) => {
  t.equal(watchdogUsec({}), 0, 'unset: disabled')
  t.equal(watchdogUsec({ WATCHDOG_USEC: '30000000' }), 30_000_000)
  t.equal(watchdogUsec({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), 30_000_000)
  t.equal(watchdogUsec({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '43' }, 42), 0, 'for another pid: disabled')
  t.equal(watchdogUsec({ WATCHDOG_PID: 'junk' }), 0, 'no WATCHDOG_USEC: disabled, whatever WATCHDOG_PID says')
  for (const bad of ['0', '', ' 5', '-5', '1.5', '0x10', '18446744073709551615', '99999999999999999999999']) {
    t.throws(() => watchdogUsec({ WATCHDOG_USEC: bad }), WatchdogConfigError, `WATCHDOG_USEC=${JSON.stringify(bad)}`)
  }
  for (const bad of ['', '0', '-1', 'x', '1e3']) {
    t.throws(() => watchdogUsec({ WATCHDOG_USEC: '1000', WATCHDOG_PID: bad }), { name: 'WatchdogConfigError', variable: 'WATCHDOG_PID' })
  }
  t.throws(() => watchdogUsec({ WATCHDOG_USEC: 'x', WATCHDOG_PID: '1' }, 2), { name: 'WatchdogConfigError', variable: 'WATCHDOG_USEC' }, 'the interval is checked before whose it is')
  t.equal(watchdogUsec({ WATCHDOG_USEC: '18446744073709551614' }), 2_000_000_000_000, 'huge intervals are capped where timers can hold them')
  // A bad environment reaches onError; the daemon keeps running without pings.
  await withEnv({ NOTIFY_SOCKET: '/nonexistent/notify', WATCHDOG_USEC: 'nope' }, () => {
    const errs: Error[] = []
    startWatchdog({ onError: (e) => errs.push(e) })()
    t.equal(errs.length, 1)
    t.type(errs[0], WatchdogConfigError)
  })

  t.test('property: any environment either disables, yields its number, or throws WatchdogConfigError', async (t) => {
    fc.assert(
      fc.property(
        fc.option(fc.oneof(fc.string(), fc.bigInt({ min: 0n, max: 2n ** 65n }).map(String)), { nil: undefined }),
        fc.option(fc.oneof(fc.string(), fc.integer({ min: 0, max: 100 }).map(String)), { nil: undefined }),
        fc.integer({ min: 1, max: 100 }),
        (usec, wpid, pid) => {
          const env: NodeJS.ProcessEnv = {}
          if (usec !== undefined) env.WATCHDOG_USEC = usec
          if (wpid !== undefined) env.WATCHDOG_PID = wpid
          let v: number
          try {
            v = watchdogUsec(env, pid)
          } catch (err) {
            return err instanceof WatchdogConfigError && usec !== undefined
          }
          if (usec === undefined || (wpid !== undefined && Number(wpid) !== pid)) return v === 0
          return v > 0 && v <= 2_000_000_000_000 && (v === 2_000_000_000_000 || BigInt(v) === BigInt(usec))
        },
      ),
      { numRuns: 2000 },
    )
    t.pass('2000 generated environments')
  })
})

t.test('send failures are SdNotifyErrors with the errno name and the socket', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'plain-file')
  await fsp.writeFile(file, '')
  const stream = join(dir, 'stream.sock')
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(stream, r))
  t.teardown(() => server.close())
  const cases: Array<[string, string]> = [
    [join(dir, 'missing'), 'ENOENT'],
    [file, 'ECONNREFUSED'],
    [stream, 'EPROTOTYPE'],
    [`@kairo-test/nobody-here-${randomBytes(6).toString('hex')}`, 'ECONNREFUSED'],
    ['relative/notify', 'EINVAL'],
    ['@', 'EINVAL'],
    ['vsock:2:1234', 'EINVAL'],
    [`/tmp/${'x'.repeat(110)}`, 'ENAMETOOLONG'],
    [`@${'x'.repeat(108)}`, 'ENAMETOOLONG'],
  ]
  for (const [socket, code] of cases) {
    await withEnv({ NOTIFY_SOCKET: socket }, () => {
      let err: unknown
      try {
        notifyReady('x')
      } catch (e) {
        err = e
      }
      t.type(err, SdNotifyError, socket)
      t.match(err, { code, socket, state: 'READY=1\nSTATUS=x' }, `${socket} → ${code}`)
      t.match((err as Error).message, socket.slice(0, 40), 'the message names the socket')
    })
  }
  // The watchdog reports a vanished socket through onError and keeps going.
  await withEnv({ NOTIFY_SOCKET: join(dir, 'missing'), WATCHDOG_USEC: '20000' }, async () => {
    const errs: Error[] = []
    const stop = startWatchdog({ onError: (e) => errs.push(e) })
    await until('two failed pings', 2000, () => errs.length >= 2)
    stop()
    t.match(errs[0], { name: 'SdNotifyError', code: 'ENOENT' })
  })
})

t.test('a receiver that stopped reading: the send gives up after about 1 s (EAGAIN), the loop is not held forever', async (t) => {
  if (!requirePython(t)) return
  const dir = await tempDir(t)
  const rx = await startReceiver(t, join(dir, 'wedged'), { read: false })
  await withEnv({ NOTIFY_SOCKET: rx.address }, () => {
    let sent = 0
    let err: unknown
    let took = 0
    for (let i = 0; i < 10_000 && err === undefined; i++) {
      const start = performance.now()
      try {
        sdNotify(`STATUS=${i}`)
        sent++
      } catch (e) {
        err = e
        took = performance.now() - start
      }
    }
    t.ok(sent > 0, `${sent} datagrams queued before the queue was full`)
    t.match(err, { name: 'SdNotifyError', code: 'EAGAIN' })
    t.ok(took >= 900 && took < 5000, `the blocked send gave up after ${Math.round(took)} ms`)
  })
})
