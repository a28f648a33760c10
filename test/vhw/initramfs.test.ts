/**
 * The rig's parts that need no boot: the newc writer (read back by busybox's cpio), module load
 * order from modules.dep (dependencies first, each once, whatever the graph), and the errors
 * bootVm gives before it fetches or boots anything.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { VhwError, bootVm, findBusybox, loadOrder, newc } from '../../scripts/vhw/index.mjs'
import { requirePart } from '../lib/parts.js'

function need(t: Test, ok: boolean, what: string): boolean {
  return requirePart(t as unknown as Parameters<typeof requirePart>[0], ok, what)
}

function tmp(t: Test): string {
  const d = mkdtempSync(join(tmpdir(), 'kairo-vhw-unit-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

t.test('newc archives read back by busybox cpio', async (t) => {
  const busybox = findBusybox()
  if (!need(t, busybox !== undefined, 'a static busybox (apt-get install busybox-static)')) return
  const name = fc.stringMatching(/^[a-z0-9_.-]{1,12}$/).filter((s) => s !== '.' && s !== '..')
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(fc.tuple(name, fc.uint8Array({ maxLength: 700 })), { minLength: 1, maxLength: 6, selector: ([n]) => n }), async (files) => {
      const d = tmp(t)
      const archive = newc([{ name: 'dir', mode: 0o040755 }, ...files.map(([n, data]) => ({ name: `dir/${n}`, mode: 0o100644, data: Buffer.from(data) }))])
      writeFileSync(join(d, 'a.cpio'), archive)
      mkdirSync(join(d, 'x'))
      const r = spawnSync(busybox as string, ['cpio', '-i', '-d', '-F', join(d, 'a.cpio')], { cwd: join(d, 'x'), encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`busybox cpio: ${r.stderr}`)
      for (const [n, data] of files) {
        if (!Buffer.from(data).equals(readFileSync(join(d, 'x', 'dir', n)))) throw new Error(`dir/${n} differs after extraction`)
      }
      const list = spawnSync(busybox as string, ['cpio', '-t', '-F', join(d, 'a.cpio')], { encoding: 'utf8' }).stdout.trim().split('\n')
      if (JSON.stringify(list) !== JSON.stringify(['dir', ...files.map(([n]) => `dir/${n}`)])) throw new Error(`listing ${JSON.stringify(list)}`)
    }),
    { numRuns: 25 },
  )
  t.pass('25 random archives extract to the same names and bytes')
  // Extracted as root, the node is made with mknod: its type and numbers must survive.
  if (!need(t, process.getuid?.() === 0, 'root (to extract a device node)')) return
  const d = tmp(t)
  writeFileSync(join(d, 'dev.cpio'), newc([{ name: 'dev', mode: 0o040755 }, { name: 'dev/console', mode: 0o020600, rdev: [5, 1] }]))
  const r = spawnSync(busybox as string, ['cpio', '-i', '-d', '-F', join(d, 'dev.cpio')], { cwd: d, encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  const st = statSync(join(d, 'dev', 'console'))
  t.ok(st.isCharacterDevice(), 'dev/console is a character device (the kernel opens it before any mount)')
  t.equal(st.rdev, (5 << 8) | 1, 'major 5, minor 1')
  t.equal(st.mode & 0o777, 0o600)
})

function writeDeps(dir: string, graph: Map<string, string[]>): void {
  const f = (n: string) => `kernel/${n}.ko.xz`
  writeFileSync(join(dir, 'modules.dep'), [...graph].map(([n, deps]) => `${f(n)}:${deps.length > 0 ? ' ' : ''}${deps.map(f).join(' ')}`).join('\n') + '\n')
}

t.test('loadOrder: dependencies first, each module once', async (t) => {
  // A DAG: module i may only depend on modules with a larger index.
  const dag = fc.integer({ min: 1, max: 12 }).chain((n) =>
    fc.tuple(
      fc.constant(n),
      fc.array(fc.array(fc.integer({ min: 0, max: n - 1 }), { maxLength: 4 }), { minLength: n, maxLength: n }),
      fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { minLength: 1, maxLength: 3 }),
    ),
  )
  const d = tmp(t)
  fc.assert(
    fc.property(dag, ([n, rawDeps, wanted]) => {
      const name = (i: number) => `m${i}`
      const direct = new Map<string, string[]>()
      for (let i = 0; i < n; i++) direct.set(name(i), [...new Set((rawDeps[i] ?? []).filter((j) => j > i).map(name))])
      // modules.dep lists every transitive dependency, as depmod writes it.
      const closure = (m: string, seen = new Set<string>()): Set<string> => {
        for (const dep of direct.get(m) ?? []) if (!seen.has(dep)) closure(dep, seen.add(dep))
        return seen
      }
      writeDeps(d, new Map([...direct.keys()].map((m) => [m, [...closure(m)]])))
      const order = loadOrder(d, wanted.map(name)).map((f) => f.replace(/^kernel\/|\.ko\.xz$/g, ''))
      if (new Set(order).size !== order.length) throw new Error(`loaded twice: ${order.join(' ')}`)
      const need = new Set(wanted.map(name).flatMap((m) => [m, ...closure(m)]))
      if (order.length !== need.size || !order.every((m) => need.has(m))) throw new Error(`loads ${order.join(' ')}, needs ${[...need].join(' ')}`)
      for (const [i, m] of order.entries()) for (const dep of closure(m)) if (order.indexOf(dep) > i) throw new Error(`${m} before its dependency ${dep}`)
    }),
    { numRuns: 300 },
  )
  t.pass('300 random graphs')
  writeDeps(d, new Map([['a', ['b']], ['b', ['a']]]))
  t.throws(() => loadOrder(d, ['a']), /module dependency loop at kernel\/a\.ko\.xz/)
  t.throws(() => loadOrder(d, ['nosuch']), { name: 'VhwError', message: /module nosuch is not in .*modules\.dep/ })
  // A name with dashes is the module with underscores (modprobe's rule).
  writeDeps(d, new Map([['gpio_sim', []]]))
  t.same(loadOrder(d, ['gpio-sim']), ['kernel/gpio_sim.ko.xz'])
})

t.test('loadOrder never throws anything but VhwError on arbitrary modules.dep text', async (t) => {
  const d = tmp(t)
  fc.assert(
    fc.property(fc.string({ maxLength: 400 }), fc.array(fc.string({ maxLength: 8 }), { minLength: 1, maxLength: 3 }), (text, names) => {
      writeFileSync(join(d, 'modules.dep'), text)
      try {
        loadOrder(d, names)
      } catch (err) {
        if (!(err instanceof VhwError)) throw err
      }
    }),
    { numRuns: 300 },
  )
  t.pass()
})

t.test('bootVm names the problem before booting', async (t) => {
  await t.rejects(bootVm({ script: 'test/vhw/guest/no-such-script.ts' }), { name: 'VhwError', message: /the guest script test\/vhw\/guest\/no-such-script\.ts does not exist/ })
  await t.rejects(bootVm({ script: '../outside.ts' }), { name: 'VhwError', message: /\.\.\/outside\.ts is outside the repo/ })
  await t.rejects(bootVm({ script: '' }), { name: 'VhwError', message: /no guest script given/ })
  await t.rejects(bootVm({ script: 'test/vhw/guest/rig.ts', env: { 'BAD-NAME': 'x' } }), { name: 'VhwError', message: /env name "BAD-NAME" is not a shell variable name/ })
})
