/**
 * `kairo-gw policy check FILE | show | reload`: the .klp-policy a gateway enforces on its relay
 * path (docs/policy.md). `check` reads a file offline and names every problem (key path and
 * line); `show` prints the policy in force with its counters and the peers it has blocked for a
 * time; `reload` reads the configured file again and puts it in force only if it is good (the
 * old one stays otherwise), as SIGHUP does with the whole config.
 */
import type { Command } from 'commander'
import { formatProblem } from '../../config/errors.js'
import { PolicyError, formatPolicy, loadPolicy, type Policy } from '../../policy/index.js'
import { callGateway, controlOptions, SOCKET_HELP, type ControlOptions } from '../control.js'
import { EXIT_FAILURE, EXIT_OK } from '../errors.js'
import { printJson } from '../output.js'
import { at, cell, formatCount, formatTime, listAt, renderTable } from '../table.js'

type Opts = ControlOptions & { json: boolean }

/** One line: what a policy allows and limits. */
export function describePolicy(p: Policy): string {
  const types = p.types.agent === null ? 'all agent types' : `${p.types.agent.length} agent type${p.types.agent.length === 1 ? '' : 's'}`
  const peers = p.peers.allow === null ? 'any peer' : `${p.peers.allow.length} allowed peer${p.peers.allow.length === 1 ? '' : 's'}`
  return `"${p.name}": ${types}, ${peers}, ${p.peers.block.length} blocked, min trust ${p.peers.minTrust}, ${p.quotas.length} quota${p.quotas.length === 1 ? '' : 's'}`
}

/** The status table of `policy show` and `status`: counters by violation, then the blocks in force. */
export function renderPolicyStatus(r: unknown): string {
  if (at(r, 'enforcing') !== true) return 'policy: none (no policy_file in the config: every frame the mesh accepts is relayed)\n'
  const lines = [`policy: ${cell(at(r, 'name'))} from ${cell(at(r, 'file'))}, loaded ${formatTime(at(r, 'loaded_at'))} (sha256 ${String(at(r, 'sha256') ?? '').slice(0, 16)}…)`]
  lines.push(`  checked ${formatCount(at(r, 'counters.checked'))}, allowed ${formatCount(at(r, 'counters.allowed'))}, refused ${formatCount(at(r, 'counters.refused'))}`)
  const byV = (at(r, 'counters.by_violation') ?? {}) as Record<string, number>
  const refused = Object.entries(byV).filter(([, n]) => n > 0)
  if (refused.length > 0) lines.push(renderTable([{ header: 'VIOLATION' }, { header: 'REFUSED', align: 'right' }], refused.map(([v, n]) => [v, formatCount(n)])).replace(/^/gm, '  ').trimEnd())
  const blocked = listAt(r, 'blocked_peers')
  if (blocked.length > 0) lines.push(renderTable([{ header: 'BLOCKED PEER' }, { header: 'UNTIL' }, { header: 'RULE' }], blocked.map((b) => [at(b, 'peer'), formatTime(at(b, 'until')), at(b, 'rule')])).replace(/^/gm, '  ').trimEnd())
  const suppressed = Number(at(r, 'recorded.suppressed') ?? 0)
  if (suppressed > 0) lines.push(`  ${formatCount(suppressed)} violations not written one by one to the audit log (rate limit); summarised there`)
  return `${lines.join('\n')}\n`
}

export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description('the .klp-policy enforced on the relay path: check a file, show the one in force, reload it')

  policy
    .command('check')
    .description('check a .klp-policy file offline: every problem, one per line, with its key path and line')
    .argument('<file>', 'the policy file (YAML or JSON)')
    .option('--json', 'print one JSON object: {ok, file, problems, policy}', false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw policy check /etc/kairo-gw/field-relay.klp-policy
  /etc/kairo-gw/field-relay.klp-policy: ok ("field-relay": 3 agent types, 3 allowed peers, 1 blocked, min trust tofu, 3 quotas)
  $ kairo-gw policy check bad.klp-policy
  quotas[1].window_s: 0 is out of range 1..86400 (bad.klp-policy:31)

The file format, with a worked example: docs/policy.md (and docs/examples/field-relay.klp-policy).
Exit 0 when the file is good, 1 when it has problems, 2 for a bad command line.`,
    )
    .action((file: string, opts: { json: boolean }) => {
      let p: Policy
      try {
        p = loadPolicy(file)
      } catch (err) {
        if (!(err instanceof PolicyError)) throw err
        if (opts.json) printJson({ ok: false, file, problems: err.problems })
        process.stderr.write(err.problems.map((x) => `${formatProblem(x)}\n`).join(''))
        process.exitCode = EXIT_FAILURE
        return
      }
      if (opts.json) printJson({ ok: true, file, problems: [], policy: { name: p.name, sha256: p.sha256, text: formatPolicy(p) } })
      else process.stdout.write(`${file}: ok (${describePolicy(p)})\n`)
      process.exitCode = EXIT_OK
    })

  controlOptions(policy.command('show').description('the policy in force: its counters, the peers blocked for a time, and the policy itself'))
    .option('--json', "print the gateway's answer as one JSON object", false)
    .option('--text', 'also print the policy as a file (every default written out)', false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw policy show
  policy: field-relay from /etc/kairo-gw/field-relay.klp-policy, loaded 2026-11-23T09:00:00Z (sha256 3f1c…)
    checked 10,412, allowed 10,377, refused 35
    VIOLATION         REFUSED
    type_not_allowed       31
    quota_messages          4
    BLOCKED PEER                      UNTIL                 RULE
    0a1b2c3d4e5f60718293a4b5c6d7e8f9  2026-11-23T09:10:00Z  tasks-per-peer
  $ kairo-gw policy show --text      # the policy as a file, as the gateway understood it

${SOCKET_HELP}`,
    )
    .action(async (opts: Opts & { text: boolean }) => {
      const r = await callGateway<unknown>(opts, 'policy_show', {})
      if (opts.json) return printJson(r)
      process.stdout.write(renderPolicyStatus(r))
      const text = at(r, 'policy.text')
      if (opts.text && typeof text === 'string') process.stdout.write(`\n${text}`)
    })

  controlOptions(policy.command('reload').description('read the configured policy file again; put it in force only if it is good'))
    .option('--json', "print the gateway's answer as one JSON object", false)
    .addHelpText(
      'after',
      `
Examples:
  $ sudo kairo-gw policy reload
  policy: field-relay from /etc/kairo-gw/field-relay.klp-policy, loaded 2026-11-23T09:12:03Z (sha256 9e02…)
    checked 0, allowed 0, refused 0
  $ sudo kairo-gw policy reload      # a bad file: nothing changes, every problem is named
  kairo-gw: quotas[0].per: "node" is not one of peer, type, peer_type (/etc/kairo-gw/field-relay.klp-policy:22)

The old policy stays in force until the new file is good; temporary peer blocks carry over.
SIGHUP (or \`systemctl reload kairo-gw\`) reloads the config and the policy together. Both
reloads are recorded in the VoV audit log (policy_loaded, policy_reload_failed) with who asked.

${SOCKET_HELP}

Exit 0 when the policy was reloaded; 1 when the file has problems or the gateway refuses.`,
    )
    .action(async (opts: Opts) => {
      const r = await callGateway<unknown>(opts, 'policy_reload', {})
      if (opts.json) return printJson(r)
      process.stdout.write(renderPolicyStatus(r))
      if (at(r, 'changed') === false) process.stdout.write('  (the file had not changed)\n')
    })
}
