/** The kairo-gw command line: commander program, one file per command under commands/. */
import { Command } from 'commander'
import { registerAdmin } from './commands/admin.js'
import { registerConfig } from './commands/config.js'
import { registerIdentity } from './commands/identity.js'
import { registerKeys } from './commands/keys.js'
import { registerLab } from './commands/lab.js'
import { registerLinks } from './commands/links.js'
import { registerLog } from './commands/log.js'
import { registerLora } from './commands/lora.js'
import { registerPcap } from './commands/pcap.js'
import { registerPeers } from './commands/peers.js'
import { registerPolicy } from './commands/policy.js'
import { registerRoutes } from './commands/routes.js'
import { registerRun } from './commands/run.js'
import { registerSend } from './commands/send.js'
import { registerStatus } from './commands/status.js'
import { EXIT_CODES_HELP } from './errors.js'
import { packageVersion } from './version.js'

export function buildProgram(): Command {
  const program = new Command('kairo-gw')
  program
    .description(
      'kairo-gw turns a Linux board into a node of an encrypted AI-TCP mesh that carries messages between AI agents.\n' +
        'A gateway bridges its links (UDP, raw Ethernet, LoRa) into one mesh: signed announces, routing by link quality, ' +
        'end-to-end Noise sessions that relays forward without decrypting, and a durable store-and-forward queue.',
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
  registerStatus(program)
  registerLinks(program)
  registerPeers(program)
  registerRoutes(program)
  registerAdmin(program)
  registerKeys(program)
  registerIdentity(program)
  registerLora(program)
  registerConfig(program)
  registerLab(program)
  registerLog(program)
  registerPcap(program)
  registerPolicy(program)
  program.addHelpText(
    'after',
    `
Examples:
  $ npx kairo-gw run                                  # gateway on udp://127.0.0.1:47800
  $ npx kairo-gw send --to 127.0.0.1:47800 TASK_REQUEST 'hello'
  $ npx kairo-gw identity show --json
  $ npx kairo-gw lora probe /dev/ttyACM0             # what LoRa firmware is on this port?
  $ npx kairo-gw lora airtime --sf 12 --region EU868
  $ npx kairo-gw config check /etc/kairo-gw/config.yaml
  $ sudo npx kairo-gw lab run --topology line5-mixed --messages 50 --json

Message types: TASK_REQUEST, AGENT_MIGRATION, REPUTATION_DELTA, BROADCAST_ANNOUNCE, VECTOR_SYNC

State: identity.key and the message queues in --state-dir, else $KAIRO_STATE_DIR, else ./var/state.

${EXIT_CODES_HELP}`,
  )
  return program
}
