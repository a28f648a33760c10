/** `kairo-gw identity show`: the node's public identity (never the secret seed). */
import type { Command } from 'commander'
import { printJson } from '../output.js'
import { loadIdentity, resolveStateDir } from '../state.js'

export function registerIdentity(program: Command): void {
  const identity = program.command('identity').description("the node's identity (node ID and public keys)")
  identity
    .command('show')
    .description('print the node ID, the Ed25519 identity key and the X25519 static key (public parts only)')
    .option('--state-dir <dir>', 'where identity.key lives (default: $KAIRO_STATE_DIR or ./var/state)')
    .option('--json', 'print one JSON object', false)
    .action((opts: { stateDir?: string; json: boolean }) => {
      const stateDir = resolveStateDir(opts.stateDir)
      const { identity: id, file } = loadIdentity(stateDir)
      const pub = id.toJSON()
      if (opts.json) {
        printJson({ ...pub, identity_file: file })
        return
      }
      process.stdout.write(
        [
          `node ID        ${pub.node_id}`,
          `identity key   ${pub.identity_key}  (Ed25519, public)`,
          `static key     ${pub.static_key}  (X25519 for Noise, public)`,
          `identity file  ${file}`,
          '',
        ].join('\n'),
      )
    })
}
