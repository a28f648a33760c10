/**
 * `kairo-gw run`: the gateway daemon in the foreground. With --config, the links, mesh and store
 * of that file (docs: appliance/config/README.md); without, the embedded default: one UDP link on
 * 127.0.0.1:47800, state under ./var, no hardware, no root. Runs until SIGINT or SIGTERM, then
 * stops cleanly (exit 0); accepted messages not yet delivered stay in the durable outbox.
 */
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { CliError } from '../errors.js'
import { cliLogger, describePayload, printJson } from '../output.js'
import { parsePort } from '../options.js'
import { resolveStateDir } from '../state.js'
import { packageVersion } from '../version.js'
import { embeddedDefaultConfig, loadConfig } from '../../config/load.js'
import type { GatewayConfig } from '../../config/schema.js'
import { startDaemon, type Daemon } from '../../daemon/daemon.js'

export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_PORT = 47800

interface RunOptions {
  config?: string
  port: number
  host: string
  stateDir?: string
  runtimeDir?: string
  json: boolean
  verbose: boolean
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run the gateway daemon in the foreground (the embedded default, or --config FILE)')
    .option('-c, --config <file>', 'gateway config file (YAML); default: the embedded default (one UDP link on loopback)')
    .option('-p, --port <port>', 'embedded default only: UDP port to listen on (0 picks a free one)', parsePort, DEFAULT_PORT)
    .option('-H, --host <host>', 'embedded default only: address to bind', DEFAULT_HOST)
    .option('--state-dir <dir>', 'identity, outbox and inbox (default: the config\'s state_dir, $KAIRO_STATE_DIR or ./var/state)')
    .option('--runtime-dir <dir>', 'where control.sock goes (default: the config\'s runtime_dir, $KAIRO_RUNTIME_DIR, <state-dir>/run)')
    .option('--json', 'JSON lines on stdout instead of text', false)
    .option('-v, --verbose', 'also log dropped frames, handshakes and route changes (stderr)', false)
    .addHelpText(
      'after',
      `
The first start creates <state-dir>/identity.key (mode 0600): the node's secret seed.
Keep it to keep the node ID. Messages accepted for delivery are kept in <state-dir>/mesh/
until the destination acknowledges them, across restarts and power loss.
Ctrl-C (SIGINT) or SIGTERM stops the gateway, exit 0.

The control socket (<runtime-dir>/control.sock, mode 0660) takes JSON-RPC 2.0, one object
per line: status, send, messages, routes, neighbours, outbox (docs/mesh.md).

Examples:
  $ npx kairo-gw run
  $ npx kairo-gw run --port 47801 --state-dir /tmp/gw2 --json
  $ sudo kairo-gw run --config /etc/kairo-gw/config.yaml`,
    )
    .action((opts: RunOptions) => runGateway(opts))
}

function runtimeDirFor(opts: RunOptions, cfg: GatewayConfig, stateDir: string): string {
  if (opts.runtimeDir !== undefined) return resolve(opts.runtimeDir)
  if (cfg.runtimeDir !== undefined) return cfg.runtimeDir
  const env = process.env.KAIRO_RUNTIME_DIR
  if (env !== undefined && env !== '') return resolve(env)
  const beside = join(stateDir, 'run')
  // A Unix socket path holds 107 bytes: a deep state dir gets its socket under /tmp instead.
  if (Buffer.byteLength(join(beside, 'control.sock')) <= 107) return beside
  return join(tmpdir(), `kairo-gw-${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`)
}

export async function runGateway(opts: RunOptions): Promise<void> {
  let cfg: GatewayConfig
  if (opts.config !== undefined) {
    cfg = loadConfig(opts.config)
  } else {
    const stateDir = resolveStateDir(opts.stateDir)
    cfg = embeddedDefaultConfig({ stateDir, runtimeDir: join(stateDir, 'run'), udpPort: opts.port })
    const udp = cfg.links[0]
    if (udp?.driver === 'udp') udp.udp.host = opts.host
    cfg.stateDir = undefined
    cfg.runtimeDir = undefined
  }
  const stateDir = opts.stateDir !== undefined ? resolve(opts.stateDir) : (cfg.stateDir ?? resolveStateDir(undefined))
  const runtimeDir = runtimeDirFor(opts, cfg, stateDir)
  const log = cliLogger({ json: opts.json, verbose: opts.verbose })
  const ts = () => new Date().toISOString()
  let received = 0
  const daemon = await startDaemon(cfg, {
    stateDir,
    runtimeDir,
    log,
    onEvent: (event, fields) => {
      if (event === 'message') {
        received++
        const payload = fields.payload as Buffer
        if (opts.json) {
          const { payload: _p, ...rest } = fields
          printJson({ ts: ts(), event, ...rest, payload_b64: payload.toString('base64') })
        } else process.stdout.write(`${ts()}  ${String(fields.type).padEnd(18)} from ${String(fields.from)}, ${payload.length} B: ${describePayload(payload)}\n`)
        return
      }
      if (opts.json) printJson({ ts: ts(), event, ...fields })
      else if (event === 'delivered') process.stdout.write(`${ts()}  delivered          ${String(fields.id)} to ${String(fields.to)} (${String(fields.attempts)} attempt(s), ${String(fields.ms)} ms)\n`)
      else if (event === 'expired') process.stdout.write(`${ts()}  EXPIRED            ${String(fields.id)} to ${String(fields.to)}: not delivered within its TTL\n`)
    },
  }).catch((err: Error) => {
    const e = err as NodeJS.ErrnoException
    const hint = e.code === 'EADDRINUSE' ? ' (another kairo-gw running? pick another --port)' : ''
    throw new CliError(`cannot start the gateway: ${e.message}${hint}`)
  })
  try {
    await announceAndWait(daemon, cfg, opts, stateDir, () => received)
  } catch (err) {
    // Whatever went wrong after the start, the links and the control socket are released.
    await daemon.stop()
    throw err
  }
}

async function announceAndWait(daemon: Daemon, cfg: GatewayConfig, opts: RunOptions, stateDir: string, received: () => number): Promise<void> {
  const ts = () => new Date().toISOString()
  const { node, identity } = daemon
  const udpAddresses: string[] = []
  for (const l of daemon.links) {
    if (l.kind !== 'udp') continue
    const address = (l as { address?: unknown }).address
    const addr = typeof address === 'function' ? (address as () => unknown).call(l) : null
    if (typeof addr === 'string') udpAddresses.push(addr)
  }
  const first = udpAddresses[0]
  const example = first !== undefined ? `npx kairo-gw send --to ${first} TASK_REQUEST 'hello'` : null
  if (opts.json) {
    printJson({ ts: ts(), event: 'ready', version: packageVersion(), node_id: node.nodeId, name: cfg.node.name, pid: process.pid, control_socket: daemon.controlSocket, state_dir: stateDir, identity_file: identity.file, identity_created: identity.created, links: node.linkTable().map((l) => ({ name: l.name, kind: l.kind, state: l.state, mtu: l.mtu })), udp: udpAddresses, ...(first !== undefined ? { address: first } : {}), ...(example ? { example } : {}) })
  } else {
    process.stdout.write(
      [
        `kairo-gw ${packageVersion()}: gateway running. Ctrl-C stops it.`,
        `  node ID     ${node.nodeId}`,
        `  name        ${cfg.node.name}`,
        ...node.linkTable().map((l) => `  link        ${l.name.padEnd(8)} ${l.kind.padEnd(9)} ${l.state}, MTU ${l.mtu}`),
        ...udpAddresses.map((a) => `  listening   udp://${a}`),
        `  identity    ${identity.file}${identity.created ? ' (created now)' : ''}`,
        `  control     ${daemon.controlSocket}`,
        '',
        ...(example ? ['Send it a message from another terminal:', `  ${example}`, ''] : []),
        'Ask it how it is (JSON-RPC over the control socket):',
        `  echo '{"jsonrpc":"2.0","id":1,"method":"status"}' | socat - UNIX-CONNECT:${daemon.controlSocket}`,
        '',
        'Waiting for messages...',
        '',
      ].join('\n'),
    )
  }

  const signal = await new Promise<NodeJS.Signals>((resolveSignal) => {
    process.once('SIGINT', () => resolveSignal('SIGINT'))
    process.once('SIGTERM', () => resolveSignal('SIGTERM'))
  })
  const force = () => process.exit(1)
  process.once('SIGINT', force)
  process.once('SIGTERM', force)
  const stats = node.stats()
  await daemon.stop()
  if (opts.json) printJson({ ts: ts(), event: 'stopped', signal, stats })
  else process.stdout.write(`\nstopped (${signal}): ${received()} messages received, ${stats.messagesOut} sent, ${stats.delivered} delivered, ${stats.relayed} relayed, ${Object.values(stats.dropped).reduce((a, b) => a + b, 0)} frames dropped\n`)
  process.off('SIGINT', force)
  process.off('SIGTERM', force)
}

