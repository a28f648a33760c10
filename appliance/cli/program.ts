/** The kairo-gw command line: commander program, one file per command under commands/. */
import { Command } from 'commander'
import { registerIdentity } from './commands/identity.js'
import { registerLora } from './commands/lora.js'
import { registerRun } from './commands/run.js'
import { registerSend } from './commands/send.js'
import { EXIT_CODES_HELP } from './errors.js'
import { packageVersion } from './version.js'

export function buildProgram(): Command {
  const program = new Command('kairo-gw')
  program
    .description(
      'kairo-gw turns a Linux board into a node of an encrypted AI-TCP mesh that carries messages between AI agents.\n' +
        'This build runs one UDP link (Noise XX/IK handshakes, ChaCha20-Poly1305) and has the LoRa link with its field ' +
        'tools (kairo-gw lora); bridging between links and the control socket come later.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      // commander's own errors, in the same one-line form as every other error.
      outputError: (str, write) => write(str.replace(/^error: /, 'kairo-gw: ')),
    })
    .exitOverride()
  registerRun(program)
  registerSend(program)
  registerIdentity(program)
  registerLora(program)
  program.addHelpText(
    'after',
    `
Examples:
  $ npx kairo-gw run                                  # gateway on udp://127.0.0.1:47800
  $ npx kairo-gw send --to 127.0.0.1:47800 TASK_REQUEST 'hello'
  $ npx kairo-gw identity show --json
  $ npx kairo-gw lora probe /dev/ttyACM0             # what LoRa firmware is on this port?
  $ npx kairo-gw lora airtime --sf 12 --region EU868

Message types: TASK_REQUEST, AGENT_MIGRATION, REPUTATION_DELTA, BROADCAST_ANNOUNCE, VECTOR_SYNC

State: identity.key in --state-dir, else $KAIRO_STATE_DIR, else ./var/state.

${EXIT_CODES_HELP}`,
  )
  return program
}
