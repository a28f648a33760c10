/**
 * `kairo-gw run`: the embedded default gateway. One UDP link (127.0.0.1:47800 unless told
 * otherwise), the node identity from the state directory, every received message logged.
 * Runs until SIGINT or SIGTERM, then stops cleanly (exit 0).
 */
import type { Command } from 'commander'
import { UdpGateway, formatAddress, type GatewayMessage, type GatewaySessionEvent } from '../../gateway/udp-gateway.js'
import { CliError } from '../errors.js'
import { cliLogger, describePayload, printJson, printableText } from '../output.js'
import { parsePort } from '../options.js'
import { loadOrCreateIdentity, resolveStateDir } from '../state.js'
import { packageVersion } from '../version.js'

export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_PORT = 47800

interface RunOptions {
  port: number
  host: string
  stateDir?: string
  json: boolean
  verbose: boolean
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run the gateway in the foreground: one UDP link, logs every message it receives')
    .option('-p, --port <port>', 'UDP port to listen on (0 picks a free one)', parsePort, DEFAULT_PORT)
    .option('-H, --host <host>', 'address to bind', DEFAULT_HOST)
    .option('--state-dir <dir>', 'where identity.key lives (default: $KAIRO_STATE_DIR or ./var/state)')
    .option('--json', 'JSON lines on stdout instead of text', false)
    .option('-v, --verbose', 'also log dropped frames, handshakes and announces (stderr)', false)
    .addHelpText(
      'after',
      `
The first start creates <state-dir>/identity.key (mode 0600): the node's secret seed.
Keep it to keep the node ID. Ctrl-C (SIGINT) or SIGTERM stops the gateway, exit 0.

Examples:
  $ npx kairo-gw run
  $ npx kairo-gw run --port 47801 --state-dir /tmp/gw2 --json`,
    )
    .action((opts: RunOptions) => runGateway(opts))
}

export async function runGateway(opts: RunOptions): Promise<void> {
  const stateDir = resolveStateDir(opts.stateDir)
  const { identity, file, created } = loadOrCreateIdentity(stateDir)
  const log = cliLogger({ json: opts.json, verbose: opts.verbose })
  const gateway = new UdpGateway({ identity, host: opts.host, port: opts.port, log })
  let bound
  try {
    bound = await gateway.start()
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const hint = e.code === 'EADDRINUSE' ? ' (another kairo-gw running? pick another --port)' : ''
    throw new CliError(`cannot listen on udp ${opts.host}:${opts.port}: ${e.code ?? e.message}${hint}`)
  }
  const address = formatAddress(bound)
  const example = `npx kairo-gw send --to ${address} TASK_REQUEST 'hello'`
  if (opts.json) {
    printJson({ ts: new Date().toISOString(), event: 'ready', version: packageVersion(), node_id: identity.nodeIdHex, address, host: bound.host, port: bound.port, state_dir: stateDir, identity_file: file, identity_created: created, example })
  } else {
    process.stdout.write(
      [
        `kairo-gw ${packageVersion()}: gateway running (UDP link only). Ctrl-C stops it.`,
        `  node ID     ${identity.nodeIdHex}`,
        `  listening   udp://${address}`,
        `  identity    ${file}${created ? ' (created now)' : ''}`,
        '',
        'Send it a message from another terminal:',
        `  ${example}`,
        '',
        'Waiting for messages...',
        '',
      ].join('\n'),
    )
  }

  gateway.on('session', (ev: GatewaySessionEvent) => {
    if (opts.json) printJson({ ts: new Date().toISOString(), event: 'session', peer: ev.peer, pattern: ev.pattern, initiator: ev.initiator, address: formatAddress(ev.address) })
    else process.stdout.write(`${new Date().toISOString()}  session     ${ev.pattern} with ${ev.peer} at ${formatAddress(ev.address)}\n`)
  })
  gateway.on('message', (m: GatewayMessage) => {
    if (opts.json) {
      const text = printableText(m.payload)
      printJson({ ts: new Date().toISOString(), event: 'message', type: m.type, from: m.from, address: formatAddress(m.address), bytes: m.payload.length, ...(text !== null ? { text } : { hex: m.payload.toString('hex') }) })
    } else {
      process.stdout.write(`${new Date().toISOString()}  ${m.type.padEnd(18)} from ${m.from} at ${formatAddress(m.address)}, ${m.payload.length} B: ${describePayload(m.payload)}\n`)
    }
  })

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  // A second signal while stopping exits at once.
  const force = () => process.exit(1)
  process.once('SIGINT', force)
  process.once('SIGTERM', force)
  const stats = gateway.stats()
  await gateway.stop()
  if (opts.json) printJson({ ts: new Date().toISOString(), event: 'stopped', signal, stats })
  else process.stdout.write(`\nstopped (${signal}): ${stats.messagesIn} messages received, ${stats.messagesOut} sent, ${stats.handshakes.handshakesCompleted} handshakes, ${Object.values(stats.dropped).reduce((a, b) => a + b, 0)} frames dropped\n`)
  process.off('SIGINT', force)
  process.off('SIGTERM', force)
}
