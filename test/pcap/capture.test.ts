/**
 * Captures: the engine (pcap/capture.ts) on fake links, then captures run inside real gateways
 * through the CLI: UDP on loopback, the embedded default's emulated LoRa radio (air and serial
 * line), and raw Ethernet between two gateways over a veth pair, each file read back with tshark.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { createFakeLinkPair } from '../../drivers/fake/link.js'
import { Capture, CaptureError } from '../../pcap/capture.js'
import { LINKTYPE } from '../../pcap/pcapng.js'
import { cli, gatewayPair, json, routeTo, shortDir, startGateway } from '../lib/gateway.js'
import { hasCommand, requirePart } from '../lib/parts.js'
import { decodeFile, dissectorFailures, errorExperts, field, HAS_TSHARK, isFlaggedMalformed } from '../lib/tshark.js'
import { freeUdpPorts } from '../lib/ports.js'
import { until, untilAsync } from '../lib/until.js'
import { Lab, requireEthernetLab } from '../ethernet/lab.js'

type Skippable = Parameters<typeof requirePart>[0]

/** tshark -T fields: one array of values per packet. */
function fields(file: string, names: string[], extra: string[] = []): string[][] {
  const r = spawnSync('tshark', ['-r', file, ...extra, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=f', ...names.flatMap((n) => ['-e', n])], { encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.status !== 0) throw new Error(`tshark -r ${file} exited ${r.status}: ${r.stderr}`)
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'))
}

const dirOf = (flags: string): 'in' | 'out' | '?' => (Number(flags) & 3) === 1 ? 'in' : (Number(flags) & 3) === 2 ? 'out' : '?'

t.test('the engine on fake links: count, both directions, bytes as sent, statistics', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, 'tshark (Debian package tshark)')) return
  const { a, b } = createFakeLinkPair({ latencyMs: 0 })
  await a.open()
  await b.open()
  t.teardown(async () => {
    await a.close()
    await b.close()
  })
  const out = join(shortDir(t), 'fake.pcapng')
  const cap = await Capture.start({ id: '00000001', links: [a], out, count: 12, section: { userappl: 'kairo-gw test' }, interfaceComment: 'node test' })
  t.same(cap.status().files, [out])
  const sent: Buffer[] = []
  for (let i = 0; i < 10; i++) {
    const f = Buffer.alloc(20 + i, i + 1)
    sent.push(f)
    a.send(f)
    b.send(Buffer.alloc(40 + i, 0x80 + i))
  }
  const s = await cap.done
  t.equal(s.state, 'done')
  t.equal(s.reason, 'count')
  t.equal(s.packets, 12, 'exactly --count packets')
  t.equal(s.interfaces[0]!.linktype, LINKTYPE.AITCP)
  const rows = fields(out, ['frame.interface_name', 'frame.packet_flags_direction', 'frame.len', 'frame.interface_description'])
  t.equal(rows.length, 12)
  t.ok(rows.every((r) => r[0] === 'fake-a'), 'every packet on the link interface')
  const dirs = rows.map((r) => dirOf(r[1]!))
  t.ok(dirs.includes('in') && dirs.includes('out'), `both directions (${dirs.join(',')})`)
  const outLens = rows.filter((r) => dirOf(r[1]!) === 'out').map((r) => Number(r[2]))
  t.same(outLens, sent.slice(0, outLens.length).map((f) => f.length), 'sent frames in order, whole')
  // The file is a valid pcapng to a third party.
  const info = spawnSync('capinfos', ['-c', '-M', out], { encoding: 'utf8' })
  t.equal(info.status, 0, info.stderr)
  t.match(info.stdout, /Number of packets:\s+12/)
  // Sending after the capture ended changes nothing.
  const size = readFileSync(out).length
  a.send(Buffer.alloc(30, 1))
  await new Promise((r) => setTimeout(r, 20))
  t.equal(readFileSync(out).length, size, 'nothing written after the end')
})

t.test('the engine: ring files keep only the newest, each a whole pcapng', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, 'tshark (Debian package tshark)')) return
  const { a, b } = createFakeLinkPair({ latencyMs: 0, queueLimit: 1024, highWater: 1024 })
  await a.open()
  await b.open()
  t.teardown(async () => {
    await a.close()
    await b.close()
  })
  const dir = shortDir(t)
  const out = join(dir, 'ring.pcapng')
  const cap = await Capture.start({ id: '00000002', links: [b], out, ring: { files: 3, bytes: 4096 }, section: {} })
  for (let i = 0; i < 60; i++) {
    a.send(Buffer.alloc(400, i))
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5))
  }
  await until('60 packets captured', 10_000, () => cap.status().packets >= 60)
  const s = await cap.stop()
  t.equal(s.packets, 60)
  const files = readdirSync(dir).filter((f) => f.startsWith('ring_')).sort()
  t.equal(files.length, 3, `only the newest 3 ring files are kept (${files.join(', ')})`)
  t.same(files.map((f) => join(dir, f)), s.files, 'status lists the files kept')
  const seqs = files.map((f) => Number(/^ring_(\d{5})_\d{14}\.pcapng$/.exec(f)?.[1]))
  t.ok(seqs.every((n, i) => i === 0 || n === seqs[i - 1]! + 1) && seqs[0]! > 1, `numbered in order, the oldest removed (${seqs.join(',')})`)
  let total = 0
  for (const f of files) {
    const bytes = readFileSync(join(dir, f)).length
    t.ok(bytes <= 4096 + 512, `${f}: ${bytes} bytes, about the ring size`)
    const rows = fields(join(dir, f), ['frame.interface_name', 'frame.len'])
    t.ok(rows.length > 0 && rows.every((r) => r[0] === 'fake-b' && r[1] === '400'), `${f} opens on its own with its interface`)
    total += rows.length
  }
  t.ok(total < 60, 'older packets went with the older files')
})

t.test('the engine never waits: a full queue drops and counts instead of blocking the tap', async (t) => {
  // A link whose tap this test drives by hand: 40 frames handed over in one synchronous burst,
  // before the writer can run, as a busy relay would.
  let sink: ((p: { iface: number; dir: 'in' | 'out'; data: Buffer }) => void) | undefined
  const link = {
    name: 'burst0',
    kind: 'fake',
    tapInterfaces: () => [{ linktype: LINKTYPE.AITCP, name: 'burst0' }],
    startTap: async (s: typeof sink) => {
      sink = s
      return { stop: async () => void (sink = undefined) }
    },
  } as unknown as Parameters<typeof Capture.start>[0]['links'][number]
  const out = join(shortDir(t), 'drop.pcapng')
  // Room for about 4 packets of 1000 bytes in memory.
  const cap = await Capture.start({ id: '00000003', links: [link], out, maxQueueBytes: 4400, section: {} })
  for (let i = 0; i < 40; i++) sink!({ iface: 0, dir: 'in', data: Buffer.alloc(1000, i) })
  const s = await cap.stop()
  t.ok(s.dropped > 0, `packets beyond the queue dropped by the capture (${s.dropped})`)
  t.equal(s.packets + s.dropped, 40, 'every frame is either written or counted as dropped')
  t.equal(s.interfaces[0]!.dropped, s.dropped, 'counted on its interface')
  if (HAS_TSHARK) t.equal(fields(out, ['frame.number']).length, s.packets, 'the file holds what was counted as written')
  // The statistics block at the end says so too: isb_ifrecv 40, isb_ifdrop = dropped.
  const buf = readFileSync(out)
  const at = buf.length - 4 - (buf.readUInt32LE(buf.length - 4) - 4)
  t.equal(buf.readUInt32LE(at), 5, 'the file ends with an Interface Statistics Block')
  const isb = buf.subarray(at, buf.length)
  const opt = (code: number): bigint | undefined => {
    let o = 20
    while (o + 4 <= isb.length - 4) {
      const c = isb.readUInt16LE(o)
      const len = isb.readUInt16LE(o + 2)
      if (c === 0) return undefined
      if (c === code) return isb.readBigUInt64LE(o + 4)
      o += 4 + len + ((4 - (len % 4)) % 4)
    }
    return undefined
  }
  t.equal(opt(4), 40n, 'isb_ifrecv: every packet seen')
  t.equal(opt(5), BigInt(s.dropped), 'isb_ifdrop: the packets dropped')
})

t.test('the engine refuses what it cannot do, and leaves nothing behind', async (t) => {
  const { a } = createFakeLinkPair()
  const dir = shortDir(t)
  const existing = join(dir, 'exists.pcapng')
  writeFileSync(existing, 'keep me')
  const err = await Capture.start({ id: '00000004', links: [a], out: existing, section: {} }).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err instanceof CaptureError && err.field === 'out' && /exists already/.test(err.message) && err.message.includes(existing), `names the file and why: ${String(err)}`)
  t.equal(readFileSync(existing, 'utf8'), 'keep me', 'an existing file is never overwritten')
  await t.rejects(Capture.start({ id: '00000005', links: [a], out: join(dir, 'no', 'such', 'dir.pcapng'), section: {} }), /directory does not exist/)
  const proxy = { name: 'px0', kind: 'udp' } as unknown as Parameters<typeof Capture.start>[0]['links'][number]
  await t.rejects(Capture.start({ id: '00000006', links: [proxy], out: join(dir, 'px.pcapng'), section: {} }), /link px0 \(udp\) cannot be captured/)
  t.notOk(existsSync(join(dir, 'px.pcapng')), 'no file for a capture that never started')
})

t.test('a gateway captures its UDP link from the CLI: IP/UDP as on the wire, both ways, audited', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, 'tshark (Debian package tshark)')) return
  const ports = await freeUdpPorts(2)
  const [ga, gb] = await gatewayPair(t, ports as [number, number])
  await routeTo(ga, gb)
  const dir = shortDir(t)
  const out = join(dir, 'udp.pcapng')
  const sock = ['--socket', ga.socket]
  const sender = setInterval(() => void cli(['send', '--to', gb.nodeId, 'TASK_REQUEST', 'captured', ...sock]), 200)
  t.teardown(() => clearInterval(sender))
  const r = await cli(['pcap', 'capture', '--link', 'udp0', '--count', '20', '--out', out, '--json', ...sock])
  clearInterval(sender)
  t.equal(r.code, 0, r.stderr)
  const s = json(r)
  t.equal(s.state, 'done')
  t.equal(s.reason, 'count')
  t.equal(s.packets, 20)
  t.match(r.stderr, /capturing udp0 to/, 'progress on stderr')
  const rows = fields(out, ['frame.interface_name', 'frame.packet_flags_direction', 'ip.src', 'ip.dst', 'udp.srcport', 'udp.dstport', 'udp.checksum.status', 'frame.interface_description'], ['-o', 'udp.check_checksum:TRUE'])
  t.equal(rows.length, 20)
  // The gateway's own port, as its interface description says.
  const own = /on 127\.0\.0\.1:(\d+)/.exec(rows[0]?.[7] ?? '')?.[1]
  const other = String(ports.find((p) => String(p) !== own))
  t.ok(own !== undefined && ports.map(String).includes(own), `the interface names the link's address (${rows[0]?.[7]})`)
  for (const [i, row] of rows.entries()) {
    const [name, flags, src, dst, sport, dport, ck] = row
    const d = dirOf(flags!)
    const ok = name === 'udp0' && src === '127.0.0.1' && dst === '127.0.0.1' && (d === 'out' ? sport === own && dport === other : sport === other && dport === own) && ck === '1'
    if (!ok) t.fail(`packet ${i + 1} is not a good UDP datagram between the two gateways: ${row.join(' ')}`)
  }
  const dirs = new Set(rows.map((row) => dirOf(row[1]!)))
  t.ok(dirs.has('in') && dirs.has('out'), 'both directions')
  t.pass('every packet an IP/UDP datagram with good checksums between the two gateways')
  // The VoV log records who captured what.
  const vovDir = join(ga.stateDir, 'vov')
  const lines = readdirSync(vovDir)
    .filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => readFileSync(join(vovDir, f), 'utf8').split('\n'))
    .filter((l) => l.includes('"pcap_'))
  const started = lines.map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown> }).find((e) => e.type === 'pcap_started')
  t.ok(started, 'pcap_started in the VoV log')
  t.same(started?.data.links, ['udp0'])
  t.equal((started?.data.by as { uid?: number } | undefined)?.uid, process.getuid!(), 'with the caller uid (SO_PEERCRED)')
  await untilAsync('pcap_stopped in the VoV log', 5000, async () => readdirSync(vovDir).some((f) => f.endsWith('.jsonl') && readFileSync(join(vovDir, f), 'utf8').includes('"pcap_stopped"')))

  // --detach, list, stop.
  const out2 = join(dir, 'detached.pcapng')
  const d = await cli(['pcap', 'capture', '--link', 'udp0', '--detach', '--json', '--out', out2, ...sock])
  t.equal(d.code, 0, d.stderr)
  const id = String(json(d).id)
  t.match(id, /^[0-9a-f]{8}$/)
  const l = await cli(['pcap', 'list', ...sock])
  t.equal(l.code, 0, l.stderr)
  t.match(l.stdout, new RegExp(`${id}\\s+running\\s+udp0`))
  const st = await cli(['pcap', 'stop', id, '--json', ...sock])
  t.equal(st.code, 0, st.stderr)
  t.equal(json(st).state, 'done')
  t.equal(json(st).reason, 'stopped')
  t.ok(existsSync(out2))

  // Errors name what is wrong.
  const unknown = await cli(['pcap', 'capture', '--link', 'nope0', '--count', '1', '--out', join(dir, 'x.pcapng'), ...sock])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /no running link named "nope0".*udp0/)
  const exists = await cli(['pcap', 'capture', '--link', 'udp0', '--count', '1', '--out', out, ...sock])
  t.equal(exists.code, 2)
  t.match(exists.stderr, new RegExp(`${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*exists already`))
  const ring = await cli(['pcap', 'capture', '--link', 'udp0', '--ring', '10', ...sock])
  t.equal(ring.code, 2)
  t.match(ring.stderr, /--ring.*FILES:MB/)
  const stopUnknown = await cli(['pcap', 'stop', 'deadbeef', ...sock])
  t.equal(stopUnknown.code, 2)
  t.match(stopUnknown.stderr, /no capture deadbeef/)
  const help = await cli(['pcap', 'capture', '--help'])
  t.match(help.stdout, /--ring <files:mb>/)
  t.match(help.stdout, /Examples:/)
})

t.test('the embedded default: the emulated LoRa radio as LoRaTap and its serial line as firmware-bridge frames', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, 'tshark (Debian package tshark)')) return
  if (!requirePart(t as unknown as Skippable, hasCommand('socat', ['-V']), 'socat')) return
  const g = await startGateway(t, { name: 'loracap' })
  const out = join(shortDir(t), 'lora.pcapng')
  const r = await cli(['pcap', 'capture', '--link', 'lora0', '--count', '16', '--out', out, '--json', '--socket', g.socket])
  t.equal(r.code, 0, r.stderr)
  const s = json<{ interfaces: { name: string; linktype: number; packets: number }[] }>(r)
  t.same(
    s.interfaces.map((i) => [i.name, i.linktype]),
    [
      ['lora0', 270],
      ['lora0/bridge', 147],
    ],
  )
  const rows = fields(out, ['frame.interface_name', 'frame.packet_flags_direction', 'loratap.channel.frequency', 'loratap.channel.sf', 'frame.len'])
  t.equal(rows.length, 16)
  const air = rows.filter((r) => r[0] === 'lora0')
  const bridge = rows.filter((r) => r[0] === 'lora0/bridge')
  t.ok(air.length > 0, `radio frames captured (${air.length})`)
  t.ok(air.every((r) => r[2] === '869525000' && r[3] === '9'), 'LoRaTap carries the frequency and SF of the link')
  t.ok(bridge.length > 0, `serial frames captured (${bridge.length})`)
  const bdirs = new Set(bridge.map((r) => dirOf(r[1]!)))
  t.ok(bdirs.has('in') && bdirs.has('out'), 'serial line both ways (host → MCU and MCU → host)')
  // Every serial frame is a whole firmware-bridge link frame: header, Frame, CRC (≥ 8 bytes).
  t.ok(bridge.every((r) => Number(r[4]) >= 8), 'no serial frame shorter than a link frame')
})

t.test('two gateways over a veth pair: the raw Ethernet link captured through libpcap', async (t) => {
  if (!(await requireEthernetLab(t, { cap: true }))) return
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, 'tshark (Debian package tshark)')) return
  const lab = new Lab(t)
  const [va, vb] = lab.veth()
  lab.ip('link', 'set', vb, 'up')
  await lab.up(va, [va, vb])
  const ports = await freeUdpPorts(2)
  const eth = (ifname: string) => ['  - name: eth0', '    ethernet:', `      interface: ${ifname}`]
  const ga = await startGateway(t, { name: 'etha', udp: { port: ports[0]!, peers: [] }, links: eth(va) })
  const gb = await startGateway(t, { name: 'ethb', udp: { port: ports[1]!, peers: [] }, links: eth(vb) })
  await routeTo(ga, gb)
  const out = join(shortDir(t), 'veth.pcapng')
  const sender = setInterval(() => void cli(['send', '--to', gb.nodeId, 'VECTOR_SYNC', 'over veth', '--socket', ga.socket]), 200)
  t.teardown(() => clearInterval(sender))
  const r = await cli(['pcap', 'capture', '--link', 'eth0', '--count', '30', '--out', out, '--json', '--socket', ga.socket])
  clearInterval(sender)
  t.equal(r.code, 0, r.stderr)
  t.equal(json(r).packets, 30)
  const macA = readFileSync(`/sys/class/net/${va}/address`, 'utf8').trim()
  const rows = fields(out, ['frame.interface_name', 'frame.packet_flags_direction', 'eth.src', 'eth.type', 'frame.interface_description'])
  t.equal(rows.length, 30)
  t.ok(rows.every((r) => r[0] === 'eth0' && r[3] === '0x88b5'), 'every frame is ours (EtherType 0x88B5, the BPF filter)')
  t.ok(rows.every((r) => (dirOf(r[1]!) === 'out') === (r[2] === macA)), 'direction from the source MAC')
  const dirs = new Set(rows.map((r) => dirOf(r[1]!)))
  t.ok(dirs.has('in') && dirs.has('out'), 'both ways')
  const info = spawnSync('capinfos', ['-I', out], { encoding: 'utf8' })
  t.match(info.stdout, /Filter string = ether proto 0x88b5/, 'the BPF filter is recorded in the interface block')
  // Decoded by the dissector: every frame aitcp, none malformed, no error expert, no dissector failure.
  const decoded = await decodeFile(out, ['aitcp.kind'])
  t.equal(decoded.length, 30)
  const bad = decoded.filter((p) => field(p, 'aitcp.kind') === undefined || isFlaggedMalformed(p) || errorExperts(p).length > 0 || dissectorFailures(p).length > 0)
  t.same(
    bad.map((p) => `${p.number}: ${p.info}`),
    [],
    'every frame decodes as aitcp, none malformed or with an expert error',
  )
})
