/**
 * `kairo-gw send --to HOST:PORT TYPE PAYLOAD`: one agent message to a gateway, end to end
 * encrypted. Uses a fresh identity for this one send (or the one in --state-dir), learns the
 * peer from its signed announce unless --node pins its node ID, runs the handshake, sends.
 */
import { isIP } from 'node:net'
import { lookup } from 'node:dns/promises'
import type { Command } from 'commander'
import { Identity } from '../../core/identity.js'
import { UdpGateway, AGENT_TYPE_NAMES, DATA_FRAME_OVERHEAD, formatAddress, parseAddress, parseAgentType, type SendResult, type UdpAddress } from '../../gateway/udp-gateway.js'
import { UsageError } from '../errors.js'
import { cliLogger, printJson } from '../output.js'
import { parseNodeIdOption, parsePositiveMs } from '../options.js'
import { loadOrCreateIdentity, resolveStateDir } from '../state.js'

interface SendOptions {
  to: string
  node?: string
  stateDir?: string
  timeout: number
  hex: boolean
  json: boolean
  verbose: boolean
}

export function registerSend(program: Command): void {
  program
    .command('send')
    .description('send one message to a gateway (handshake included) and report what it cost')
    .argument('<type>', `message type: ${AGENT_TYPE_NAMES.join(' | ')} (any case)`)
    .argument('<payload>', 'message payload (UTF-8 text; hex bytes with --hex)')
    .requiredOption('--to <host:port>', 'UDP address of the gateway, e.g. 127.0.0.1:47800')
    .option('--node <id>', "the peer's node ID (32 hex digits): pins who must answer; without it the node ID is taken from the peer's signed announce", parseNodeIdOption)
    .option('--state-dir <dir>', 'send as the identity in this state directory (default: a fresh identity for this send)')
    .option('--timeout <ms>', 'how long to wait for the peer', parsePositiveMs, 5000)
    .option('--hex', 'PAYLOAD is hex-encoded bytes', false)
    .option('--json', 'print the result as one JSON object', false)
    .option('-v, --verbose', 'log the protocol steps (stderr)', false)
    .addHelpText(
      'after',
      `
Examples:
  $ npx kairo-gw send --to 127.0.0.1:47800 TASK_REQUEST 'hello'
  $ npx kairo-gw send --to 127.0.0.1:47800 vector_sync 00ff10 --hex --json`,
    )
    .action((type: string, payload: string, opts: SendOptions) => sendOne(type, payload, opts))
}

async function resolveTarget(text: string): Promise<UdpAddress> {
  let a: UdpAddress
  try {
    a = parseAddress(text)
  } catch (err) {
    throw new UsageError(`--to: ${(err as Error).message}`)
  }
  if (isIP(a.host) !== 0) return a
  try {
    const r = await lookup(a.host)
    return { host: r.address, port: a.port }
  } catch (err) {
    throw new UsageError(`--to: cannot resolve host ${JSON.stringify(a.host)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

function isLoopback(host: string): boolean {
  return host === '::1' || host.startsWith('127.')
}

export async function sendOne(typeArg: string, payloadArg: string, opts: SendOptions): Promise<void> {
  try {
    parseAgentType(typeArg)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  let payload: Buffer
  if (opts.hex) {
    if (!/^([0-9a-fA-F]{2})*$/.test(payloadArg)) throw new UsageError('--hex: PAYLOAD must be an even number of hex digits')
    payload = Buffer.from(payloadArg, 'hex')
  } else {
    payload = Buffer.from(payloadArg, 'utf8')
  }
  const to = await resolveTarget(opts.to)
  const own = opts.stateDir !== undefined ? loadOrCreateIdentity(resolveStateDir(opts.stateDir)) : null
  const identity = own?.identity ?? Identity.generate()
  const bindHost = isLoopback(to.host) ? (to.host === '::1' ? '::1' : '127.0.0.1') : to.host.includes(':') ? '::' : '0.0.0.0'
  const gateway = new UdpGateway({ identity, host: bindHost, port: 0, timeoutMs: opts.timeout, log: cliLogger({ json: opts.json, verbose: opts.verbose }) })
  await gateway.start()
  let result: SendResult
  try {
    result = await gateway.send(to, opts.node ?? null, typeArg, payload, { timeoutMs: opts.timeout })
  } finally {
    await gateway.stop()
  }
  const address = formatAddress(to)
  const identityKind = own ? `identity from ${own.file}` : 'fresh identity for this send'
  const how = result.pattern === null ? 'existing session' : `Noise ${result.pattern}${result.discovered ? ", peer learned from its signed announce" : opts.node ? ', peer pinned by --node' : ''}`
  if (opts.json) {
    printJson({
      ok: true,
      type: result.type,
      to: address,
      from_node_id: identity.nodeIdHex,
      to_node_id: result.peer,
      identity: own ? 'state-dir' : 'ephemeral',
      pattern: result.pattern,
      peer_from_announce: result.discovered,
      payload_bytes: result.payloadBytes,
      frame_bytes: result.frameBytes,
      overhead_bytes: result.frameBytes - result.payloadBytes,
      wire_bytes_sent: result.wireBytesSent,
      wire_bytes_received: result.wireBytesReceived,
      ms: Math.round(result.ms * 100) / 100,
    })
    return
  }
  process.stdout.write(
    [
      `sent ${result.type} to ${result.peer} at ${address}`,
      `  from        ${identity.nodeIdHex} (${identityKind})`,
      `  handshake   ${how}`,
      `  message     ${result.payloadBytes} B payload in a ${result.frameBytes} B Data frame (${DATA_FRAME_OVERHEAD} B header + tag)`,
      `  on the wire ${result.wireBytesSent} B sent, ${result.wireBytesReceived} B received (announce, handshake, message)`,
      `  took        ${result.ms.toFixed(1)} ms`,
      '',
    ].join('\n'),
  )
}
