/**
 * `kairo-gw routes` and `kairo-gw neighbours`: the gateway's route table (control socket method
 * `routes`: one best route per destination, learned from signed announces) and its neighbours
 * (`neighbours`: nodes heard directly, with the link quality the routes are costed by).
 * `routes --neighbours` prints both.
 */
import type { Command } from 'commander'
import { callGateway, controlOptions, SOCKET_HELP, withControl, type ControlOptions } from '../control.js'
import { printJson } from '../output.js'
import { at, formatMs, listAt, renderTable } from '../table.js'
import { indent } from './links.js'

export function renderRoutes(routes: readonly unknown[]): string {
  return renderTable(
    [{ header: 'DESTINATION' }, { header: 'HOPS', align: 'right' }, { header: 'COST', align: 'right' }, { header: 'LINK' }, { header: 'NEXT HOP' }, { header: 'ADDRESS' }, { header: 'AGE', align: 'right' }],
    // via: the next hop's node ID; next_hop: its address on the link.
    routes.map((r) => [at(r, 'dst'), at(r, 'hops'), roundCost(at(r, 'cost')), at(r, 'link'), at(r, 'via'), at(r, 'next_hop'), formatMs(at(r, 'age_ms'))]),
    '(no routes: no other node heard yet)',
  )
}

export function renderNeighbours(neighbours: readonly unknown[]): string {
  return renderTable(
    [{ header: 'NODE ID' }, { header: 'LINK' }, { header: 'ADDRESS' }, { header: 'ETX', align: 'right' }, { header: 'ANNOUNCES', align: 'right' }, { header: 'LAST HEARD', align: 'right' }],
    neighbours.map((n) => [at(n, 'node_id'), at(n, 'link'), at(n, 'address'), roundCost(at(n, 'etx')), every(at(n, 'interval_ms')), ago(at(n, 'last_seen_ms'))]),
    '(no neighbours heard yet)',
  )
}

function roundCost(v: unknown): unknown {
  return typeof v === 'number' && Number.isFinite(v) ? Math.round(v * 100) / 100 : v
}

function every(ms: unknown): string {
  const t = formatMs(ms)
  return t === '-' ? t : `every ${t}`
}

function ago(ms: unknown): string {
  const t = formatMs(ms)
  return t === '-' ? t : `${t} ago`
}

const B = '9d3e1f7a2b4c6d8e0f1a2b3c4d5e6f70'
const C = '51aa0c3e7d9b2f4a6c8e0d1f3b5a7c9e'
const EXAMPLE_ROUTES = [
  { dst: B, hops: 1, cost: 1.02, link: 'udp0', next_hop: '10.0.0.2:47800', via: B, age_ms: 2300 },
  { dst: C, hops: 2, cost: 2.5, link: 'udp0', next_hop: '10.0.0.2:47800', via: B, age_ms: 4100 },
]
const EXAMPLE_NEIGHBOURS = [{ node_id: B, link: 'udp0', address: '10.0.0.2:47800', etx: 1.02, interval_ms: 10_000, last_seen_ms: 2300 }]

type Opts = ControlOptions & { json: boolean; neighbours?: boolean }

export function registerRoutes(program: Command): void {
  controlOptions(program.command('routes').description("the gateway's route table: one best route per destination node"))
    .option('-n, --neighbours', 'also list the neighbours (nodes heard directly)', false)
    .option('--json', "print the gateway's answer as one JSON object: {routes: [...]} (with --neighbours: {routes, neighbours})", false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw routes
${indent(renderRoutes(EXAMPLE_ROUTES))}
  $ kairo-gw routes --neighbours
  $ kairo-gw routes --json | jq '.routes[] | select(.hops > 1)'

NEXT HOP is the neighbour a message goes to first, ADDRESS its address on LINK. COST adds up
the links' expected transmission counts (ETX) along the path; routes are learned from signed
announces and expire when they are not heard again.

${SOCKET_HELP}

Exit 0 when the gateway answered; 1 when it cannot be reached; 3 when it did not answer in time.`,
    )
    .action(async (opts: Opts) => {
      const [routes, neighbours] = await withControl(opts, (c) => Promise.all([c.call<unknown>('routes'), opts.neighbours ? c.call<unknown>('neighbours') : Promise.resolve(undefined)]))
      if (opts.json) {
        printJson(opts.neighbours ? { routes: listAt(routes, 'routes'), neighbours: listAt(neighbours, 'neighbours') } : routes)
        return
      }
      let out = renderRoutes(listAt(routes, 'routes'))
      if (opts.neighbours) out += '\nNeighbours:\n' + renderNeighbours(listAt(neighbours, 'neighbours'))
      process.stdout.write(out)
    })

  controlOptions(program.command('neighbours').alias('neighbors').description('the nodes this gateway hears directly, per link, with their link quality'))
    .option('--json', "print the gateway's answer as one JSON object: {neighbours: [...]}", false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw neighbours
${indent(renderNeighbours(EXAMPLE_NEIGHBOURS))}
  $ kairo-gw neighbours --json

ETX is the expected number of transmissions for one frame to get through (1.0: no loss),
from the announces heard and missed.

${SOCKET_HELP}

Exit 0 when the gateway answered; 1 when it cannot be reached; 3 when it did not answer in time.`,
    )
    .action(async (opts: Opts) => {
      const r = await callGateway<unknown>(opts, 'neighbours')
      if (opts.json) printJson(r)
      else process.stdout.write(renderNeighbours(listAt(r, 'neighbours')))
    })
}
