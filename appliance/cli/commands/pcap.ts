/**
 * `kairo-gw pcap …`: packet captures (docs/pcap.md).
 *
 *  - capture: the running gateway taps links and writes pcapng (control methods pcap_start,
 *    pcap_status, pcap_stop); traffic is neither stopped nor slowed. Progress on stderr while it
 *    runs; Ctrl-C ends it cleanly. --detach leaves it running (pcap list / pcap stop).
 *  - list, stop: captures of the running gateway.
 *  - generate: a sample capture made by the real packet code (pcap-generate.ts).
 *  - inspect: what a capture file holds, without Wireshark (pcap-inspect.ts).
 */
import { resolve } from 'node:path'
import { InvalidArgumentError, type Command } from 'commander'
import type { ControlClient } from '../../control/client.js'
import { controlOptions, SOCKET_HELP, withControl, callGateway, type ControlOptions } from '../control.js'
import { printJson } from '../output.js'
import { at, cell, formatTime, renderFields, renderTable } from '../table.js'
import { linktypeName } from '../../../pcap/reader.js'
import { parseLinkName } from './admin.js'
import { registerPcapGenerate } from './pcap-generate.js'
import { registerPcapInspect } from './pcap-inspect.js'


function parseLinks(value: string, previous: string[] | undefined): string[] {
  const names = value.split(',').map((s) => s.trim())
  for (const n of names) parseLinkName(n)
  return [...(previous ?? []), ...names]
}

function parseSeconds(value: string): number {
  const v = Number(value)
  if (!/^\d+(\.\d+)?$/.test(value) || !(v > 0) || v > 31_536_000) throw new InvalidArgumentError('must be a number of seconds, more than 0 (e.g. 30 or 0.5)')
  return v
}

function parseCount(value: string): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) < 1 || Number(value) > 1_000_000_000) throw new InvalidArgumentError('must be a whole number of packets, 1..1000000000')
  return Number(value)
}

export function parseRing(value: string): { files: number; mb: number } {
  const m = /^(\d{1,6}):(\d+(?:\.\d+)?)$/.exec(value)
  if (m === null || Number(m[1]) < 1 || !(Number(m[2]) > 0)) throw new InvalidArgumentError('must be FILES:MB, e.g. 10:100 = keep the newest 10 files of at most 100 MB each')
  return { files: Number(m[1]), mb: Number(m[2]) }
}

function parseId(value: string): string {
  if (!/^[0-9a-f]{8}$/.test(value)) throw new InvalidArgumentError('must be a capture ID: 8 hex digits, as `kairo-gw pcap list` shows it')
  return value
}

const num = (v: unknown): number => (typeof v === 'number' ? v : 0)

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

function summary(s: unknown): string {
  const ifaces = (at(s, 'interfaces') as unknown[] | undefined) ?? []
  const files = (at(s, 'files') as string[] | undefined) ?? []
  const fields: [string, string][] = [
    ['capture', cell(at(s, 'id'))],
    ['state', `${cell(at(s, 'state'))}${at(s, 'reason') ? ` (${cell(at(s, 'reason'))})` : ''}`],
    ['links', ((at(s, 'links') as string[] | undefined) ?? []).join(', ')],
    ['files', files.length > 0 ? files.join(', ') : '(none)'],
    ['packets', `${num(at(s, 'packets'))} (${formatBytes(num(at(s, 'bytes')))})`],
    ['dropped', `${num(at(s, 'dropped'))}${num(at(s, 'dropped')) > 0 ? ' (the disk fell behind; the relay was not slowed)' : ''}`],
    ['started', formatTime(at(s, 'started_at'))],
    ['ended', at(s, 'ended_at') ? formatTime(at(s, 'ended_at')) : '-'],
  ]
  if (at(s, 'error')) fields.push(['error', cell(at(s, 'error'))])
  const table = renderTable(
    [{ header: 'interface' }, { header: 'link type' }, { header: 'packets', align: 'right' }, { header: 'dropped', align: 'right' }],
    ifaces.map((i) => [cell(at(i, 'name')), linktypeName(num(at(i, 'linktype'))), String(num(at(i, 'packets'))), String(num(at(i, 'dropped')))]),
  )
  return `${renderFields(fields)}\n${table}`
}

type CaptureOpts = ControlOptions & { link: string[]; out?: string; duration?: number; count?: number; ring?: { files: number; mb: number }; detach: boolean; json: boolean; quiet: boolean }

async function follow(c: ControlClient, id: string, opts: CaptureOpts): Promise<unknown> {
  const tty = process.stderr.isTTY === true && !opts.quiet
  let stopRequested = false
  const onSigint = () => {
    if (stopRequested) process.exit(130)
    stopRequested = true
    if (tty) process.stderr.write('\n')
    process.stderr.write(`stopping capture ${id} (Ctrl-C again to leave it running)\n`)
  }
  process.on('SIGINT', onSigint)
  const t0 = Date.now()
  let lastLine = 0
  try {
    for (;;) {
      if (stopRequested) return await c.call('pcap_stop', { id })
      const s = await c.call<unknown>('pcap_status', { id })
      const state = at(s, 'state')
      if (state === 'done' || state === 'failed') {
        if (tty) process.stderr.write('\n')
        return s
      }
      const line = `capture ${id}: ${num(at(s, 'packets'))} packets, ${formatBytes(num(at(s, 'bytes')))}, ${num(at(s, 'dropped'))} dropped, ${((Date.now() - t0) / 1000).toFixed(1)} s`
      if (tty) process.stderr.write(`\r${line}  `)
      else if (!opts.quiet && Date.now() - lastLine >= 5000) {
        process.stderr.write(line + '\n')
        lastLine = Date.now()
      }
      await new Promise((r) => setTimeout(r, 250))
    }
  } finally {
    process.off('SIGINT', onSigint)
  }
}

export function registerPcap(program: Command): void {
  const pcap = program
    .command('pcap')
    .description('packet captures: capture links of the running gateway, generate a sample capture, inspect a file')
    .addHelpText(
      'after',
      `
Captures are pcapng: one interface per link (Ethernet for NICs, IP for UDP, LoRaTap for LoRa
radio frames and a second interface for the firmware-bridge serial line), both directions,
microsecond timestamps. Open them in Wireshark with pcap/kairo-gw.lua (docs/pcap.md).

Examples:
  $ sudo kairo-gw pcap capture --link lora0 --duration 60 --out /var/lib/kairo-gw/pcap/lora0.pcapng
  $ kairo-gw pcap generate --out sample.pcapng --count 500 --seed 7
  $ kairo-gw pcap inspect sample.pcapng
  $ wireshark -X lua_script:pcap/kairo-gw.lua sample.pcapng`,
    )

  controlOptions(
    pcap
      .command('capture')
      .description('capture links of the running gateway to a pcapng file, without stopping traffic')
      .requiredOption('-l, --link <names>', 'link(s) to capture: repeat or separate with commas (see `kairo-gw links`)', parseLinks)
      .option('-o, --out <file>', "the file to write (never overwritten); default <state-dir>/pcap/<links>-<time>.pcapng. The gateway writes it, so it must be somewhere the gateway may write")
      .option('-d, --duration <seconds>', 'stop after this many seconds', parseSeconds)
      .option('-c, --count <packets>', 'stop after this many packets', parseCount)
      .option('--ring <files:mb>', 'ring buffer: numbered files of at most MB each, keeping the newest FILES (e.g. 10:100)', parseRing)
      .option('--detach', 'start it and return at once with its ID; `kairo-gw pcap stop ID` ends it', false)
      .option('-q, --quiet', 'no progress on stderr', false)
      .option('--json', 'print the final status (or, with --detach, the started capture) as one JSON object', false),
  )
    .addHelpText(
      'after',
      `
Without --duration or --count it runs until Ctrl-C (or \`kairo-gw pcap stop ID\`). Progress goes
to stderr; the summary to stdout. Raw NIC links are captured through libpcap with a BPF filter
for kairo-gw's traffic; radio and UDP links are tapped inside their drivers (what was sent and
what was received, with RSSI/SNR for LoRa). A capture never slows the relay: if the disk falls
behind, packets are counted as dropped (shown, and in the file's statistics blocks).

Examples:
  $ sudo kairo-gw pcap capture --link eth1 --count 1000 --out /tmp/eth1.pcapng
  $ sudo kairo-gw pcap capture --link lora0,udp0 --duration 600 --ring 10:50 --out /var/lib/kairo-gw/pcap/field.pcapng
  $ sudo kairo-gw pcap capture --link lora0 --detach --json     # then: kairo-gw pcap stop <id>

${SOCKET_HELP}

Exit 0 when the capture ended and its file is complete; 2 for a bad command line, an unknown
link or an unusable --out (named); 1 when the gateway cannot be reached or writing failed.`,
    )
    .action(async (opts: CaptureOpts) => {
      const params: Record<string, unknown> = { links: opts.link }
      if (opts.out !== undefined) params.out = resolve(opts.out)
      if (opts.duration !== undefined) params.duration_s = opts.duration
      if (opts.count !== undefined) params.count = opts.count
      if (opts.ring !== undefined) params.ring = opts.ring
      const final = await withControl(opts, async (c) => {
        const started = await c.call<unknown>('pcap_start', params)
        const id = String(at(started, 'id'))
        if (opts.detach) return started
        if (!opts.quiet) process.stderr.write(`capturing ${opts.link.join(', ')} to ${((at(started, 'files') as string[] | undefined) ?? []).join(', ')} (capture ${id}; Ctrl-C to stop)\n`)
        return follow(c, id, opts)
      })
      if (opts.json) printJson(final)
      else process.stdout.write(summary(final))
      if (at(final, 'state') === 'failed') process.exitCode = 1
    })

  controlOptions(pcap.command('list').description("the gateway's captures, running and recently finished").option('--json', 'print them as one JSON object', false))
    .addHelpText('after', `\nExamples:\n  $ kairo-gw pcap list\n  $ kairo-gw pcap list --json\n\n${SOCKET_HELP}`)
    .action(async (opts: ControlOptions & { json: boolean }) => {
      const r = await callGateway<unknown>(opts, 'pcap_status', {})
      if (opts.json) return printJson(r)
      const list = (at(r, 'captures') as unknown[] | undefined) ?? []
      if (list.length === 0) return void process.stdout.write('no captures (start one with `kairo-gw pcap capture --link NAME`)\n')
      process.stdout.write(
        renderTable(
          [{ header: 'id' }, { header: 'state' }, { header: 'links' }, { header: 'packets', align: 'right' }, { header: 'dropped', align: 'right' }, { header: 'started' }, { header: 'file' }],
          list.map((s) => [cell(at(s, 'id')), cell(at(s, 'state')), ((at(s, 'links') as string[] | undefined) ?? []).join(','), String(num(at(s, 'packets'))), String(num(at(s, 'dropped'))), formatTime(at(s, 'started_at')), ((at(s, 'files') as string[] | undefined) ?? []).at(-1) ?? '-']),
        ) + '\n',
      )
    })

  controlOptions(pcap.command('stop').description('stop a running capture; its file gets its statistics blocks and is closed').argument('<id>', 'the capture ID (kairo-gw pcap list)', parseId).option('--json', 'print the final status as one JSON object', false))
    .addHelpText('after', `\nExamples:\n  $ kairo-gw pcap stop 1a2b3c4d\n\n${SOCKET_HELP}`)
    .action(async (id: string, opts: ControlOptions & { json: boolean }) => {
      const r = await callGateway<unknown>(opts, 'pcap_stop', { id })
      if (opts.json) printJson(r)
      else process.stdout.write(summary(r))
    })

  registerPcapGenerate(pcap)
  registerPcapInspect(pcap)
}
