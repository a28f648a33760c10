/**
 * `kairo-gw run`: the gateway daemon in the foreground. The config is --config FILE, else
 * $KAIRO_CONFIG, else /etc/kairo-gw/config.yaml when it exists, else (and with --embedded) the
 * embedded default: a UDP link on 127.0.0.1:47800 and an emulated LoRa radio, state under
 * ./var/state, no hardware, no root (what `npm start` runs).
 *
 * Under systemd (Type=notify) it sends READY=1 once the control socket listens, WATCHDOG=1 pings,
 * RELOADING=1/READY=1 around a SIGHUP reload, and STOPPING=1. SIGHUP reloads the config file:
 * links added, removed or changed without touching the others. SIGINT/SIGTERM stop it cleanly
 * (exit 0); accepted messages not yet delivered stay in the durable outbox.
 */
import { existsSync } from 'node:fs'
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
import { devRuntimeDir, SOCKET_NAME, SYSTEM_RUNTIME_DIR } from '../../sdk/socket.js'
import { notifyReady, notifyReloading, notifyStopping, startWatchdog } from '../../system/sd-notify.js'

/** The config a bare `kairo-gw run` reads when it exists (systemd's ConfigurationDirectory). */
export const SYSTEM_CONFIG = '/etc/kairo-gw/config.yaml'
export const SYSTEM_STATE_DIR = '/var/lib/kairo-gw'

export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_PORT = 47800

interface RunOptions {
  config?: string
  embedded: boolean
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
    .option('-c, --config <file>', `gateway config file (YAML); default: $KAIRO_CONFIG, else ${SYSTEM_CONFIG} if it exists, else the embedded default`)
    .option('--embedded', 'run the embedded default (UDP on loopback + an emulated LoRa radio) even if a config file exists', false)
    .option('-p, --port <port>', 'embedded default only: UDP port to listen on (0 picks a free one)', parsePort, DEFAULT_PORT)
    .option('-H, --host <host>', 'embedded default only: address to bind', DEFAULT_HOST)
    .option('--state-dir <dir>', `keys, queues, latches, audit log (default: the config's state_dir, $KAIRO_STATE_DIR, then ${SYSTEM_STATE_DIR} with a config file or ./var/state for the embedded default)`)
    .option('--runtime-dir <dir>', `where control.sock goes (default: the config's runtime_dir, $KAIRO_RUNTIME_DIR, then ${SYSTEM_RUNTIME_DIR} with a config file or <state-dir>/run)`)
    .option('--json', 'JSON lines on stdout instead of text', false)
    .option('-v, --verbose', 'also log dropped frames, handshakes and route changes (stderr)', false)
    .addHelpText(
      'after',
      `
The first start creates <state-dir>/identity.key (mode 0600): the node's secret seed.
Keep it to keep the node ID. It also picks the node's UUID ($KAIRO_NODE_ID if set) and its
mesh IP in 100.64.0.0/16 (derived from the key; conflicts with neighbours are settled
between the gateways). Messages accepted for delivery are kept in <state-dir>/mesh/ until
the destination acknowledges them, across restarts and power loss. Everything that matters
to an auditor goes to the VoV log in <state-dir>/vov/ (kairo-gw log verify).

Signals: SIGHUP reloads the config file (links added/removed/changed, the others untouched);
SIGINT (Ctrl-C) or SIGTERM stops the gateway, exit 0.

Administer it with the other commands (status, links, peers, routes, send, disconnect,
reconnect, keys, log); they talk to <runtime-dir>/control.sock (mode 0660, group kairo).

Examples:
  $ npm start                                   # the embedded default, from a checkout
  $ npx kairo-gw run --port 47801 --state-dir /tmp/gw2 --json
  $ sudo kairo-gw run --config /etc/kairo-gw/config.yaml
  $ kill -HUP $(pidof kairo-gw)                 # reload after editing the config`,
    )
    .action((opts: RunOptions) => runGateway(opts))
}

function runtimeDirFor(opts: RunOptions, cfg: GatewayConfig, stateDir: string, system: boolean): string {
  if (opts.runtimeDir !== undefined) return resolve(opts.runtimeDir)
  if (cfg.runtimeDir !== undefined) return cfg.runtimeDir
  const env = process.env.KAIRO_RUNTIME_DIR
  if (env !== undefined && env !== '') return resolve(env)
  if (system) return SYSTEM_RUNTIME_DIR
  // <stateDir>/run, or a dir under /tmp when the socket path would be too long (the SDK and the
  // CLI find it by the same function).
  return devRuntimeDir(stateDir)
}

/** --config, else $KAIRO_CONFIG, else /etc/kairo-gw/config.yaml if it exists; undefined: the embedded default. */
export function configFileFor(opts: { config?: string; embedded?: boolean }): string | undefined {
  if (opts.config !== undefined) return resolve(opts.config)
  if (opts.embedded) return undefined
  const env = process.env.KAIRO_CONFIG
  if (env !== undefined && env !== '') return resolve(env)
  return existsSync(SYSTEM_CONFIG) ? SYSTEM_CONFIG : undefined
}

export async function runGateway(opts: RunOptions): Promise<void> {
  let cfg: GatewayConfig
  const configFile = configFileFor(opts)
  if (configFile !== undefined) {
    cfg = loadConfig(configFile)
  } else {
    const stateDir = resolveStateDir(opts.stateDir)
    cfg = embeddedDefaultConfig({ stateDir, runtimeDir: join(stateDir, 'run'), udpPort: opts.port })
    const udp = cfg.links[0]
    if (udp?.driver === 'udp') udp.udp.host = opts.host
    cfg.stateDir = undefined
    cfg.runtimeDir = undefined
  }
  const envState = process.env.KAIRO_STATE_DIR
  const stateDir =
    opts.stateDir !== undefined
      ? resolve(opts.stateDir)
      : (cfg.stateDir ?? (configFile !== undefined && (envState === undefined || envState === '') ? SYSTEM_STATE_DIR : resolveStateDir(undefined)))
  const runtimeDir = runtimeDirFor(opts, cfg, stateDir, configFile !== undefined)
  const log = cliLogger({ json: opts.json, verbose: opts.verbose })
  const ts = () => new Date().toISOString()
  let received = 0
  const daemon = await startDaemon(cfg, {
    stateDir,
    runtimeDir,
    log,
    ...(configFile !== undefined ? { configFile } : {}),
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
    await announceAndWait(daemon, cfg, opts, stateDir, configFile, () => received)
  } catch (err) {
    // Whatever went wrong after the start, the links and the control socket are released.
    await daemon.stop('error')
    throw err
  }
}

/** The --socket option the other commands need to find this gateway, when they would not by default. */
function socketHint(socket: string, stateDir: string): string {
  return socket === join(devRuntimeDir(resolveStateDir(undefined)), SOCKET_NAME) ? '' : ` --socket ${socket}`
}

async function announceAndWait(daemon: Daemon, cfg: GatewayConfig, opts: RunOptions, stateDir: string, configFile: string | undefined, received: () => number): Promise<void> {
  const ts = () => new Date().toISOString()
  const { node, identity } = daemon
  const udpAddresses: string[] = []
  for (const l of daemon.links()) {
    if (l.kind !== 'udp') continue
    const address = (l as { address?: unknown }).address
    const addr = typeof address === 'function' ? (address as () => unknown).call(l) : null
    if (typeof addr === 'string') udpAddresses.push(addr)
  }
  const first = udpAddresses[0]
  const example = first !== undefined ? `npx kairo-gw send --to ${first} TASK_REQUEST 'hello'` : null
  if (opts.json) {
    printJson({ ts: ts(), event: 'ready', version: packageVersion(), node_id: node.nodeId, uuid: daemon.nodeInfo.uuid, mesh_ip: daemon.meshIp(), name: cfg.node.name, pid: process.pid, config_file: configFile ?? null, control_socket: daemon.controlSocket, state_dir: stateDir, identity_file: identity.file, identity_created: identity.created, vov_file: daemon.vov.file, links: node.linkTable().map((l) => ({ name: l.name, kind: l.kind, state: l.state, mtu: l.mtu })), udp: udpAddresses, ...(first !== undefined ? { address: first } : {}), ...(example ? { example } : {}) })
  } else {
    process.stdout.write(
      [
        `kairo-gw ${packageVersion()}: gateway running. Ctrl-C stops it.`,
        `  node ID     ${node.nodeId}`,
        `  UUID        ${daemon.nodeInfo.uuid}`,
        `  mesh IP     ${daemon.meshIp()}`,
        `  name        ${cfg.node.name}`,
        `  config      ${configFile ?? 'the embedded default (no hardware: UDP on loopback, an emulated LoRa radio)'}`,
        ...node.linkTable().map((l) => `  link        ${l.name.padEnd(8)} ${l.kind.padEnd(9)} ${l.state}, MTU ${l.mtu}`),
        ...udpAddresses.map((a) => `  listening   udp://${a}`),
        `  identity    ${identity.file}${identity.created ? ' (created now)' : ''}`,
        `  control     ${daemon.controlSocket}`,
        `  audit log   ${daemon.vov.file}`,
        '',
        ...(example ? ['Send it a message from another terminal:', `  ${example}`, ''] : []),
        'Ask it how it is, from another terminal:',
        `  npx kairo-gw status${socketHint(daemon.controlSocket, stateDir)}`,
        // A LoRa link when there is one: its serial line is never quiet, so 20 packets come at once.
        ...[...daemon.links()]
          .sort((a, b) => Number(b.kind === 'lora') - Number(a.kind === 'lora'))
          .slice(0, 1)
          .map((l) => `  npx kairo-gw pcap capture --link ${l.name} --count 20${socketHint(daemon.controlSocket, stateDir)}    # open it with pcap/kairo-gw.lua (docs/pcap.md)`),
        `  npx kairo-gw log verify${stateDir === resolveStateDir(undefined) ? '' : ` --state-dir ${stateDir}`}`,
        `  echo '{"jsonrpc":"2.0","id":1,"method":"status"}' | socat - UNIX-CONNECT:${daemon.controlSocket}`,
        '',
        'Waiting for messages...',
        '',
      ].join('\n'),
    )
  }

  notifyReady(`${node.linkTable().length} link(s), node ${node.nodeId}`)
  const stopWatchdog = startWatchdog()
  const onHup = () => {
    notifyReloading('reloading the config')
    daemon
      .reload()
      .then((r) => {
        if (opts.json) printJson({ ts: ts(), event: 'reloaded', ...r })
        else process.stdout.write(`${ts()}  config reloaded: ${r.added.length} added, ${r.removed.length} removed, ${r.changed.length} changed, ${r.unchanged.length} unchanged${r.restart_needed.length > 0 ? `; a restart applies: ${r.restart_needed.join(', ')}` : ''}\n`)
      })
      .catch((err: Error) => {
        const msg = err.message
        if (opts.json) printJson({ ts: ts(), event: 'reload_failed', error: msg })
        else process.stderr.write(`kairo-gw: reload failed, the running config stays: ${msg}\n`)
      })
      .finally(() => notifyReady(`${node.linkTable().length} link(s), node ${node.nodeId}`))
  }
  process.on('SIGHUP', onHup)
  const signal = await new Promise<NodeJS.Signals>((resolveSignal) => {
    process.once('SIGINT', () => resolveSignal('SIGINT'))
    process.once('SIGTERM', () => resolveSignal('SIGTERM'))
  })
  process.off('SIGHUP', onHup)
  const force = () => process.exit(1)
  process.once('SIGINT', force)
  process.once('SIGTERM', force)
  notifyStopping(`stopping (${signal})`)
  stopWatchdog()
  const stats = node.stats()
  await daemon.stop(signal)
  if (opts.json) printJson({ ts: ts(), event: 'stopped', signal, stats })
  else process.stdout.write(`\nstopped (${signal}): ${received()} messages received, ${stats.messagesOut} sent, ${stats.delivered} delivered, ${stats.relayed} relayed, ${Object.values(stats.dropped).reduce((a, b) => a + b, 0)} frames dropped\n`)
  process.off('SIGINT', force)
  process.off('SIGTERM', force)
}

