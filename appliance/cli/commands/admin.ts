/**
 * `kairo-gw disconnect LINK --reason TEXT` and `kairo-gw reconnect LINK`: an operator cuts a
 * link physically and brings it back (control socket methods `disconnect` and `reconnect`).
 * The link's `cut:` actions run in order and each is observed (docs/force-disconnect.md); the
 * output lists them with the latency from the command to the observed state. A disconnect is
 * latched: the link stays cut across restarts and reboots until reconnected. Both are recorded
 * in the VoV log with the reason, who asked, the actions and the latency.
 */
import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import { callGateway, controlOptions, SOCKET_HELP, type ControlOptions } from '../control.js'
import { printJson } from '../output.js'
import { at, cell, formatMs, formatTime, listAt } from '../table.js'
import { EXIT_PARTIAL } from '../errors.js'

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

/** The actions of a disconnect or reconnect, one line each, then the latency. */
function actionLines(r: unknown): string {
  const actions = listAt(r, 'actions')
  if (actions.length === 0) return '  no physical action configured for this link: only its driver was closed (see `cut:` in docs/force-disconnect.md)\n'
  const lines = actions.map((a, i) => {
    const ok = at(a, 'ok') === true
    const status = at(a, 'skipped') === true ? 'skipped' : ok ? 'ok' : 'FAILED'
    const detail = ok ? at(a, 'observed') : at(a, 'error') ?? at(a, 'observed')
    return `  ${i + 1}. ${cell(at(a, 'action'))}  ${status}  ${at(a, 'skipped') === true ? '' : `${formatMs(at(a, 'ms'))}  `}${cell(detail)}`
  })
  const latency = at(r, 'latency_ms')
  lines.push(`  trigger → last action observed: ${typeof latency === 'number' ? formatMs(latency) : 'nothing observed'}`)
  return `${lines.join('\n')}\n`
}

export function registerAdmin(program: Command): void {
  controlOptions(
    program
      .command('disconnect')
      .description('cut a link physically now (its cut: actions, each observed); it stays cut (latched) until `kairo-gw reconnect`')
      .argument('<link>', 'the link name, as `kairo-gw links` shows it', parseLinkName)
      .requiredOption('-r, --reason <text>', 'why: recorded in the VoV audit log with who asked', parseReason),
  )
    .option('--json', "print the gateway's answer as one JSON object", false)
    .addHelpText(
      'after',
      `
Examples:
  $ sudo kairo-gw disconnect lora0 --reason 'antenna swap'
  lora0: disconnected at 2026-11-23T01:03:11Z (latched until \`kairo-gw reconnect lora0\`)
    1. radio_off  ok  2.4 ms  radio off (confirmed by the firmware)
    2. gpio gpiochip0:lora-power=0  ok  0.1 ms  gpiochip0 line 0 (lora-power) reads 0
    3. gpio gpiochip0:lora-reset=0  ok  0.1 ms  gpiochip0 line 1 (lora-reset) reads 0
    trigger → last action observed: 2.7 ms
  $ kairo-gw disconnect eth1 --reason 'suspected loop' --json

What is cut: the link's \`cut:\` list in the config, in order (GPIO lines driven and read back,
rfkill blocked and its event seen, the interface set down and its flags read, the radio switched
off by its firmware). Without one: the radio off for LoRa, the interface down for Ethernet and
raw IP, nothing physical for UDP. A driver that hangs is not waited for: each action has its own
timeout and the next runs regardless. GPIO lines stay driven while the gateway runs; at its next
start a latched link is cut again before any link opens.

Messages for destinations only reachable over the link wait in the durable outbox (within
their TTL) and go out when it is back or another route appears.

${SOCKET_HELP}

Exit 0 when the link is disconnected and every action observed; 5 when it is disconnected and
latched but an action failed (the list says which and why); 2 for an unknown link or a bad
command line; 1 when the gateway cannot be reached or refuses; 3 when it did not answer in time.`,
    )
    .action(async (link: string, opts: Opts & { reason: string }) => {
      const r = await callGateway<unknown>(opts, 'disconnect', { link, reason: opts.reason })
      if (at(r, 'ok') === false) process.exitCode = EXIT_PARTIAL
      if (opts.json) {
        printJson(r)
        return
      }
      const already = at(r, 'already') === true
      process.stdout.write(
        `${cell(at(r, 'link') ?? link)}: ${already ? 'already ' : ''}${cell(at(r, 'state'))} ${already ? 'since' : 'at'} ${formatTime(at(r, 'at'))}${at(r, 'latched') === true ? ` (latched until \`kairo-gw reconnect ${link}\`)` : ''}${already ? `: ${cell(at(r, 'reason'))}` : ''}\n${already ? '' : actionLines(r)}`,
      )
    })

  controlOptions(
    program
      .command('reconnect')
      .description('undo a `kairo-gw disconnect`: its cut actions reversed, the latch cleared, the link reopened')
      .argument('<link>', 'the link name, as `kairo-gw links` shows it', parseLinkName),
  )
    .option('--json', "print the gateway's answer as one JSON object", false)
    .addHelpText(
      'after',
      `
Examples:
  $ sudo kairo-gw reconnect lora0
  lora0: opening
    1. gpio gpiochip0:lora-reset=1  ok  0.1 ms  gpiochip0 line 1 (lora-reset) reads 1
    2. gpio gpiochip0:lora-power=1  ok  0.1 ms  gpiochip0 line 0 (lora-power) reads 1
    3. radio_on  skipped  radio on again when the link opens
    trigger → last action observed: 0.3 ms
  $ kairo-gw reconnect lora0 --json

The link's cut actions are undone in reverse order (lines driven back, rfkill unblocked, the
interface set up), the latch is cleared, and the link reopens through its driver: \`kairo-gw
links\` shows when it is up.

${SOCKET_HELP}

Exit 0 when the gateway took the link back; 5 when it did but an action was not observed; 2
for an unknown link or a bad command line; 1 when the gateway cannot be reached or refuses; 3
when it did not answer in time.`,
    )
    .action(async (link: string, opts: Opts) => {
      const r = await callGateway<unknown>(opts, 'reconnect', { link })
      if (at(r, 'ok') === false) process.exitCode = EXIT_PARTIAL
      if (opts.json) printJson(r)
      else if (at(r, 'already') === true) process.stdout.write(`${cell(at(r, 'link') ?? link)}: not disconnected (${cell(at(r, 'state'))})\n`)
      else process.stdout.write(`${cell(at(r, 'link') ?? link)}: ${cell(at(r, 'state'))}\n${actionLines(r)}`)
    })
}
