/**
 * `kairo-gw config check FILE [--json]`: validates a gateway config file and reports every
 * problem, one per line, each with its key path and line (appliance/config/README.md).
 * Exit 0 when the file is good, 1 when it has problems, 2 for a bad command line.
 */
import type { Command } from 'commander'
import { ConfigFileError, formatProblem, type ConfigFileProblem } from '../../config/errors.js'
import { EXAMPLE_CONFIG } from '../../config/example.js'
import { loadConfig } from '../../config/load.js'
import type { GatewayConfig } from '../../config/schema.js'
import { EXIT_FAILURE, EXIT_OK } from '../errors.js'

export interface ConfigCheckResult {
  ok: boolean
  file: string
  problems: ConfigFileProblem[]
  /** The normalised configuration, when ok. */
  config?: GatewayConfig
}

/** Checks `file`: the result, never a throw for a bad file. */
export function checkConfigFile(file: string): ConfigCheckResult {
  try {
    return { ok: true, file, problems: [], config: loadConfig(file) }
  } catch (err) {
    if (err instanceof ConfigFileError) return { ok: false, file, problems: [...err.problems] }
    throw err
  }
}

/** `udp0 udp, lora0 lora (disabled)`. */
export function describeLinks(cfg: GatewayConfig): string {
  return cfg.links.map((l) => `${l.name} ${l.driver}${l.enabled ? '' : ' (disabled)'}`).join(', ')
}

export function registerConfig(program: Command): void {
  const config = program.command('config').description('gateway config file tools: check a file')

  config
    .command('check')
    .description('check a gateway config file: every problem, one per line, with its key path and line')
    .argument('<file>', 'the config file (YAML or JSON)')
    .option('--json', 'print one JSON object: {ok, file, problems, config}', false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw config check /etc/kairo-gw/config.yaml
  /etc/kairo-gw/config.yaml: ok (2 links: udp0 udp, lora0 lora)
  $ kairo-gw config check bad.yaml
  links[2].lora.spreading_factor: 13 is out of range 5..12 (bad.yaml:31)
  links[3].name: "udp0" is already the name of links[0] (bad.yaml:34)
  $ kairo-gw config check config.yaml --json      # with the normalised config when ok

Exit 0 when the file is good, 1 when it has problems, 2 for a bad command line.

A complete config file (every key; only links: is required, the rest has defaults):

${EXAMPLE_CONFIG.replace(/^/gm, '  ').replace(/ +$/gm, '')}`,
    )
    .action((file: string, opts: { json: boolean }, cmd: Command) => {
      const out = cmd.configureOutput()
      const writeOut = (s: string) => (out.writeOut ? out.writeOut(s) : process.stdout.write(s))
      const writeErr = (s: string) => (out.writeErr ? out.writeErr(s) : process.stderr.write(s))
      const result = checkConfigFile(file)
      if (opts.json) writeOut(JSON.stringify(result) + '\n')
      if (result.ok) {
        const n = result.config!.links.length
        if (!opts.json) writeOut(`${file}: ok (${n} link${n === 1 ? '' : 's'}: ${describeLinks(result.config!)})\n`)
      } else {
        writeErr(result.problems.map((p) => formatProblem(p) + '\n').join(''))
      }
      // main() returns its own code; a command that fails without throwing says so here.
      process.exitCode = result.ok ? EXIT_OK : EXIT_FAILURE
    })
}
