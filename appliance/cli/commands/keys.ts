/**
 * `kairo-gw keys show` and `kairo-gw keys rotate`: the running gateway's public keys (control
 * socket `keys_show`) and a rotation of its VoV log-signing key (`keys_rotate`).
 *
 * Only the log-signing key rotates. The node identity key (Ed25519) is the node: its node ID,
 * mesh IP and every peer's trust derive from it, so a "rotated" identity is a new node that
 * peers refuse as a changed key. The log key signs the VoV audit log; the identity key certifies
 * each new log key in the log, so a verifier follows the rotations.
 */
import type { Command } from 'commander'
import { callGateway, controlOptions, SOCKET_HELP, type ControlOptions } from '../control.js'
import { printJson } from '../output.js'
import { at, cell, formatTime, renderFields } from '../table.js'

type Opts = ControlOptions & { json: boolean }

export function renderKeys(k: unknown): string {
  return renderFields(
    [
      ['node ID', at(k, 'node_id')],
      ['UUID', at(k, 'uuid')],
      ['mesh IP', at(k, 'mesh_ip')],
      ['identity key', `${cell(at(k, 'identity_key'))}  (Ed25519, public: the node itself; never rotates)`],
      ['static key', `${cell(at(k, 'static_key'))}  (X25519 for Noise, public)`],
      ['log key', `${cell(at(k, 'log_key.key_id'))}  ${cell(at(k, 'log_key.public_key'))}  (Ed25519, signs the VoV log)`],
      ['  created', formatTime(at(k, 'log_key.created_at'))],
      ['  expires', `${formatTime(at(k, 'log_key.expires_at'))}  (rotated then, or by \`kairo-gw keys rotate\`)`],
    ],
    '',
  )
}

export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description("the running gateway's keys: show them (public parts), rotate the VoV log-signing key")
    .addHelpText(
      'after',
      `
The node identity key (Ed25519, in <state-dir>/identity.key) is the node: node ID, mesh IP and
peers' trust all derive from it. It cannot rotate without the gateway becoming a new node. What
rotates is the VoV log-signing key: every 24 h by itself, or now with \`kairo-gw keys rotate\`.`,
    )

  controlOptions(keys.command('show').description('print the node ID, UUID, mesh IP and public keys, and the current VoV log-signing key'))
    .option('--json', "print the gateway's answer as one JSON object", false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw keys show
  $ kairo-gw keys show --json | jq -r .identity_key

Only public keys are shown; the secret keys never leave the gateway.

${SOCKET_HELP}

Exit 0 when the gateway answered; 1 when it cannot be reached; 3 when it did not answer in time.`,
    )
    .action(async (opts: Opts) => {
      const r = await callGateway<unknown>(opts, 'keys_show')
      if (opts.json) printJson(r)
      else process.stdout.write(renderKeys(r))
    })

  controlOptions(keys.command('rotate').description('rotate the VoV log-signing key now (not the node identity: that would make a new node)'))
    .option('--json', "print the gateway's answer as one JSON object: {log_key, previous_key_id}", false)
    .addHelpText(
      'after',
      `
What rotates: the key that signs the VoV audit log. The gateway makes a new one, the node
identity key certifies it in the log (a key_rotated entry), and later entries are signed with
it; \`kairo-gw log verify\` follows the chain across the rotation. Do it when the log key may
have leaked, or to mark a point in the log. It also rotates by itself every 24 h.

What does not: the node identity key. The node ID, the mesh IP and every peer's trust derive
from it; a new identity is a new node (peers refuse it as a changed key until re-admitted).

Examples:
  $ sudo kairo-gw keys rotate
  log key rotated: k-3a9f -> k-77c1 (expires 2025-06-02T10:03:11Z)
  $ kairo-gw keys rotate --json

${SOCKET_HELP}

Exit 0 when the key was rotated; 1 when the gateway cannot be reached or refuses; 3 when it
did not answer in time.`,
    )
    .action(async (opts: Opts) => {
      const r = await callGateway<unknown>(opts, 'keys_rotate')
      if (opts.json) printJson(r)
      else process.stdout.write(`log key rotated: ${cell(at(r, 'previous_key_id'))} -> ${cell(at(r, 'log_key.key_id'))} (expires ${formatTime(at(r, 'log_key.expires_at'))})\n`)
    })
}
