/**
 * `kairo-gw peers`: the gateway's peer registry (control socket method `peers`): every node it
 * has seen, admitted (trust on first use or the config's allowlist) or refused (a changed key, not
 * on the allowlist), with when it was first and last seen.
 */
import type { Command } from 'commander'
import { callGateway, controlOptions, SOCKET_HELP, type ControlOptions } from '../control.js'
import { printJson } from '../output.js'
import { at, formatTime, listAt, renderTable } from '../table.js'
import { indent } from './links.js'

export function renderPeers(peers: readonly unknown[]): string {
  return renderTable(
    [{ header: 'NODE ID' }, { header: 'NAME' }, { header: 'MESH IP' }, { header: 'STATE' }, { header: 'FIRST SEEN' }, { header: 'LAST SEEN' }, { header: 'UUID' }, { header: 'REASON' }],
    peers.map((p) => [at(p, 'node_id'), at(p, 'name'), at(p, 'mesh_ip'), at(p, 'state'), formatTime(at(p, 'first_seen')), formatTime(at(p, 'last_seen')), at(p, 'uuid'), at(p, 'reason')]),
    '(no peers yet)',
  )
}

const EXAMPLE = [
  { node_id: '9d3e1f7a2b4c6d8e0f1a2b3c4d5e6f70', name: 'gw-b', mesh_ip: '100.64.88.2', state: 'admitted', first_seen: '2025-06-01T08:00:03Z', last_seen: '2025-06-01T10:03:11Z', uuid: 'c1a2b3d4-0000-4000-8000-000000000002', reason: null },
  { node_id: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', name: 'gw-x', mesh_ip: null, state: 'refused', first_seen: '2025-06-01T09:12:00Z', last_seen: '2025-06-01T09:12:00Z', uuid: null, reason: 'identity key changed' },
]

export function registerPeers(program: Command): void {
  controlOptions(program.command('peers').description("the gateway's peer registry: nodes admitted or refused, and when they were seen"))
    .option('--json', "print the gateway's answer as one JSON object: {peers: [...]}, identity keys included", false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw peers
${indent(renderPeers(EXAMPLE))}
  $ kairo-gw peers --json | jq -r '.peers[] | select(.state == "refused") | .node_id'

A peer whose identity key changes is refused and recorded in the VoV log (\`kairo-gw log tail\`).

${SOCKET_HELP}

Exit 0 when the gateway answered; 1 when it cannot be reached; 3 when it did not answer in time.`,
    )
    .action(async (opts: ControlOptions & { json: boolean }) => {
      const r = await callGateway<unknown>(opts, 'peers')
      if (opts.json) printJson(r)
      else process.stdout.write(renderPeers(listAt(r, 'peers')))
    })
}
