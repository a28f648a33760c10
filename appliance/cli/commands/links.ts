/**
 * `kairo-gw links`: every link of the running gateway with its state and counters (the control
 * socket's `links` method). renderLinks() is also the link table of `kairo-gw status`.
 */
import type { Command } from 'commander'
import { callGateway, controlOptions, SOCKET_HELP, type ControlOptions } from '../control.js'
import { printJson } from '../output.js'
import { at, cell, formatBytes, formatCount, formatTime, listAt, renderTable, sumCounts, type Column } from '../table.js'

/** The state column: 'disconnected' for a link an operator disconnected, whatever the driver says. */
function linkState(l: unknown): unknown {
  return at(l, 'disconnected') ? 'disconnected' : at(l, 'state')
}

/** The link table. `long` adds bitrate, queue, downs, relayed and budget columns. */
export function renderLinks(links: readonly unknown[], long = false): string {
  const cols: Column[] = [
    { header: 'LINK' },
    { header: 'KIND' },
    { header: 'STATE' },
    { header: 'MTU', align: 'right' },
    ...(long ? [{ header: 'BITRATE', align: 'right' } as Column] : []),
    { header: 'FRAMES IN', align: 'right' },
    { header: 'FRAMES OUT', align: 'right' },
    { header: 'BYTES IN', align: 'right' },
    { header: 'BYTES OUT', align: 'right' },
    { header: 'DROPPED', align: 'right' },
    { header: 'ERRORS', align: 'right' },
    ...(long
      ? ([
          { header: 'QUEUED', align: 'right' },
          { header: 'DOWNS', align: 'right' },
          { header: 'RELAYED', align: 'right' },
        ] as Column[])
      : []),
    { header: 'LAST ERROR' },
  ]
  const rows = links.map((l) => [
    at(l, 'name'),
    at(l, 'kind'),
    linkState(l),
    formatCount(at(l, 'mtu')),
    ...(long ? [formatBitrate(at(l, 'bitrate'))] : []),
    formatCount(at(l, 'stats.framesIn')),
    formatCount(at(l, 'stats.framesOut')),
    formatBytes(at(l, 'stats.bytesIn')),
    formatBytes(at(l, 'stats.bytesOut')),
    sumCounts(at(l, 'stats.dropped')),
    sumCounts(at(l, 'stats.errors')),
    ...(long ? [formatCount(at(l, 'stats.queued')), formatCount(at(l, 'stats.downs')), formatCount(at(l, 'mesh.relayed'))] : []),
    at(l, 'last_error'),
  ])
  let out = renderTable(cols, rows, '(no links)')
  for (const l of links) {
    const d = at(l, 'disconnected')
    if (!d) continue
    const by = at(d, 'by')
    const who = typeof by === 'string' ? by : [at(by, 'user'), at(by, 'uid') !== undefined ? `uid ${cell(at(by, 'uid'))}` : undefined, at(by, 'pid') !== undefined ? `pid ${cell(at(by, 'pid'))}` : undefined].filter((x) => x !== undefined).map(cell).join(', ')
    const rule = at(by, 'rule')
    const when = formatTime(at(d, 'at'))
    const source = at(by, 'policy') !== undefined ? `by policy ${cell(at(by, 'policy'))}${rule !== undefined && rule !== null ? ` (rule ${cell(rule)})` : ''} at ${when}` : `by an operator at ${when}${who ? ` (${who})` : ''}`
    out += `${cell(at(l, 'name'))}: disconnected ${source}: ${cell(at(d, 'reason'))}; \`kairo-gw reconnect ${cell(at(l, 'name'))}\` brings it back\n`
  }
  return out
}

function formatBitrate(bps: unknown): string {
  if (typeof bps !== 'number' || !Number.isFinite(bps) || bps <= 0) return '-'
  if (bps >= 1e9) return `${+(bps / 1e9).toFixed(1)} Gb/s`
  if (bps >= 1e6) return `${+(bps / 1e6).toFixed(1)} Mb/s`
  if (bps >= 1e3) return `${+(bps / 1e3).toFixed(1)} kb/s`
  return `${bps} b/s`
}

/** A link row as the gateway reports it, for the examples of --help. */
export const EXAMPLE_LINK = {
  name: 'udp0',
  kind: 'udp',
  state: 'up',
  mtu: 1200,
  bitrate: 100_000_000,
  last_error: null,
  disconnected: null,
  stats: { framesIn: 412, framesOut: 398, bytesIn: 52_300, bytesOut: 50_110, queued: 0, dropped: {}, errors: {}, downs: 0 },
  mesh: { relayed: 17 },
}

/** Text indented by two spaces, without its last newline (for examples in --help). */
export function indent(text: string): string {
  return text.replace(/\n$/, '').replace(/^/gm, '  ')
}

export function registerLinks(program: Command): void {
  controlOptions(program.command('links').description("the running gateway's links: state and counters"))
    .option('--json', 'print the gateway\'s answer as one JSON object: {links: [...]}', false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw links
${indent(renderLinks([EXAMPLE_LINK], true))}
  $ kairo-gw links --json | jq '.links[] | {name, state}'
  $ sudo kairo-gw links --socket /run/kairo-gw/control.sock

STATE is up, down, opening, or disconnected (by \`kairo-gw disconnect\`, until \`kairo-gw reconnect\`).

${SOCKET_HELP}

Exit 0 when the gateway answered; 1 when it cannot be reached; 3 when it did not answer in time.`,
    )
    .action(async (opts: ControlOptions & { json: boolean }) => {
      const r = await callGateway<unknown>(opts, 'links')
      if (opts.json) printJson(r)
      else process.stdout.write(renderLinks(listAt(r, 'links'), true))
    })
}
