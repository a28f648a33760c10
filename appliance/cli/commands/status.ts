/**
 * `kairo-gw status`: how the running gateway is, from its control socket's `status` method:
 * node ID, UUID, mesh IP, version, uptime, every link's state and counters, the size of the
 * neighbour, route and peer tables, the durable queues and the VoV log. --json prints the
 * gateway's answer as it is.
 */
import type { Command } from 'commander'
import { callGateway, controlOptions, SOCKET_HELP, type ControlOptions } from '../control.js'
import { printJson } from '../output.js'
import { at, cell, formatBytes, formatCount, formatDuration, formatTime, listAt, renderFields } from '../table.js'
import { EXAMPLE_LINK, indent, renderLinks } from './links.js'

/** The human-readable status report. Renders whatever part of the answer is there. */
export function renderStatus(st: unknown): string {
  const uptime = at(st, 'uptime_s')
  const started = at(st, 'started_at')
  const head = `kairo-gw ${cell(at(st, 'version'))} on ${cell(at(st, 'name'))}: up ${formatDuration(uptime)}${started !== undefined ? ` (since ${formatTime(started)})` : ''}, pid ${cell(at(st, 'pid'))}\n`
  const outbox = at(st, 'store.outbox')
  const inbox = at(st, 'store.inbox')
  const vov = at(st, 'vov')
  const config = at(st, 'config_file')
  const fields: Array<[string, unknown]> = [
    ['node ID', at(st, 'node_id')],
    ['UUID', at(st, 'uuid')],
    ['mesh IP', at(st, 'mesh_ip')],
    ['state dir', at(st, 'state_dir')],
    ['config', config === null ? 'embedded default' : config],
    ['neighbours', countOf(at(st, 'neighbours'))],
    ['routes', countOf(at(st, 'routes'))],
    ['peers', countOf(at(st, 'peers'))],
  ]
  if (outbox !== undefined) {
    fields.push([
      'outbox',
      `${formatCount(at(outbox, 'messages'))} queued (${formatBytes(at(outbox, 'bytes'))}); since start ${formatCount(at(outbox, 'accepted'))} accepted, ${formatCount(at(outbox, 'delivered'))} delivered, ${formatCount(at(outbox, 'expired'))} expired, ${formatCount(at(outbox, 'refused'))} refused`,
    ])
  }
  if (inbox !== undefined) {
    fields.push(['inbox', `${formatCount(at(inbox, 'messages'))} held; since start ${formatCount(at(inbox, 'accepted'))} received, ${formatCount(at(inbox, 'duplicates'))} duplicates dropped`])
  }
  if (vov !== undefined) fields.push(['VoV log', `${cell(at(vov, 'file'))} (${formatCount(at(vov, 'entries'))} entries, log key ${cell(at(vov, 'key_id'))})`])
  const policy = at(st, 'policy')
  if (policy !== undefined) {
    fields.push([
      'policy',
      at(policy, 'enforcing') === true
        ? `${cell(at(policy, 'name'))}: ${formatCount(at(policy, 'counters.checked'))} checked, ${formatCount(at(policy, 'counters.refused'))} refused, ${formatCount(listAt(policy, 'blocked_peers').length)} peers blocked now (kairo-gw policy show)`
        : 'none',
    ])
  }
  const links = listAt(st, 'links')
  return head + renderFields(fields) + '\n' + renderLinks(links)
}

/** The tables' sizes are numbers in `status`; an array (a future answer) counts its entries. */
function countOf(v: unknown): unknown {
  return Array.isArray(v) ? v.length : v
}

const EXAMPLE_STATUS = {
  version: '0.1.0',
  name: 'gw-a',
  pid: 4242,
  uptime_s: 7384,
  started_at: '2025-06-01T08:00:00.000Z',
  node_id: '6f1c0e5b9a2d4c7e8f0a1b2c3d4e5f60',
  uuid: '0b5e6a8c-3f1d-4e2a-9c7b-1d2e3f4a5b6c',
  mesh_ip: '100.64.23.7',
  state_dir: '/var/lib/kairo-gw',
  config_file: '/etc/kairo-gw/config.yaml',
  neighbours: 2,
  routes: 3,
  peers: 3,
  store: { outbox: { messages: 1, bytes: 120, accepted: 40, delivered: 39, expired: 0, refused: 0 }, inbox: { messages: 12, accepted: 12, duplicates: 1 } },
  vov: { file: '/var/lib/kairo-gw/vov/vov-20250601-000001.jsonl', entries: 57, key_id: 'k-3a9f' },
  links: [EXAMPLE_LINK],
}

export function registerStatus(program: Command): void {
  controlOptions(program.command('status').description('how the running gateway is: identity, uptime, links, tables, queues'))
    .option('--json', "print the gateway's answer as one JSON object", false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw status
${indent(renderStatus(EXAMPLE_STATUS))}

  $ kairo-gw status --json | jq -r .node_id
  $ kairo-gw status --state-dir /tmp/gw2          # the gateway of \`kairo-gw run --state-dir /tmp/gw2\`
  $ sudo kairo-gw status --socket /run/kairo-gw/control.sock

${SOCKET_HELP}

Exit 0 when the gateway answered (whatever the state of its links); 1 when it cannot be
reached; 3 when it did not answer in time.`,
    )
    .action(async (opts: ControlOptions & { json: boolean }) => {
      const st = await callGateway<unknown>(opts, 'status')
      if (opts.json) printJson(st)
      else process.stdout.write(renderStatus(st))
    })
}
