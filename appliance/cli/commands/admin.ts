/**
 * `kairo-gw disconnect LINK --reason TEXT` and `kairo-gw reconnect LINK`: an operator takes a
 * link out of service and brings it back (control socket methods `disconnect` and `reconnect`).
 * A disconnect is latched: the link stays down until reconnected, even if its driver could carry
 * on. Both are recorded in the VoV log with the reason and who asked.
 */
import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import { callGateway, controlOptions, SOCKET_HELP, type ControlOptions } from '../control.js'
import { printJson } from '../output.js'
import { at, cell, formatMs, formatTime } from '../table.js'

/** A link name as the config allows it (appliance/config/README.md): 1-15 of a-z 0-9 _ -. */
export function parseLinkName(value: string): string {
  if (!/^[a-z0-9_-]{1,15}$/.test(value)) throw new InvalidArgumentError('must be a link name: 1-15 of a-z 0-9 _ - (see `kairo-gw links`)')
  return value
}

function parseReason(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('must say why (it goes into the audit log)')
  return value
}

type Opts = ControlOptions & { json: boolean }

export function registerAdmin(program: Command): void {
  controlOptions(
    program
      .command('disconnect')
      .description('take a link out of service now; it stays down (latched) until `kairo-gw reconnect`')
      .argument('<link>', 'the link name, as `kairo-gw links` shows it', parseLinkName)
      .requiredOption('-r, --reason <text>', 'why: recorded in the VoV audit log with who asked', parseReason),
  )
    .option('--json', "print the gateway's answer as one JSON object", false)
    .addHelpText(
      'after',
      `
Examples:
  $ sudo kairo-gw disconnect lora0 --reason 'antenna swap'
  lora0: disconnected at 2025-06-01T10:03:11Z (latched until \`kairo-gw reconnect lora0\`), 3 ms
  $ kairo-gw disconnect udp0 --reason 'suspected loop' --json

Messages for destinations only reachable over the link wait in the durable outbox (within
their TTL) and go out when it is back or another route appears.

${SOCKET_HELP}

Exit 0 when the link is disconnected; 2 for an unknown link or a bad command line; 1 when the
gateway cannot be reached or refuses; 3 when it did not answer in time.`,
    )
    .action(async (link: string, opts: Opts & { reason: string }) => {
      const r = await callGateway<unknown>(opts, 'disconnect', { link, reason: opts.reason })
      if (opts.json) {
        printJson(r)
        return
      }
      const latency = at(r, 'latency_ms')
      process.stdout.write(
        `${cell(at(r, 'link') ?? link)}: ${cell(at(r, 'state'))} at ${formatTime(at(r, 'at'))}${at(r, 'latched') === true ? ` (latched until \`kairo-gw reconnect ${link}\`)` : ''}${latency !== undefined ? `, ${formatMs(latency)}` : ''}\n`,
      )
    })

  controlOptions(
    program
      .command('reconnect')
      .description('bring a link taken out by `kairo-gw disconnect` back into service')
      .argument('<link>', 'the link name, as `kairo-gw links` shows it', parseLinkName),
  )
    .option('--json', "print the gateway's answer as one JSON object", false)
    .addHelpText(
      'after',
      `
Examples:
  $ sudo kairo-gw reconnect lora0
  lora0: opening
  $ kairo-gw reconnect lora0 --json

The link reopens through its driver: \`kairo-gw links\` shows when it is up.

${SOCKET_HELP}

Exit 0 when the gateway took the link back; 2 for an unknown link or a bad command line; 1 when
the gateway cannot be reached or refuses; 3 when it did not answer in time.`,
    )
    .action(async (link: string, opts: Opts) => {
      const r = await callGateway<unknown>(opts, 'reconnect', { link })
      if (opts.json) printJson(r)
      else process.stdout.write(`${cell(at(r, 'link') ?? link)}: ${cell(at(r, 'state'))}\n`)
    })
}
