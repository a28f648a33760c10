/**
 * `kairo-gw send --to TARGET TYPE PAYLOAD`: one agent message.
 *
 * - `--to NODE_ID` (32 hex digits) or `--to '*'` (broadcast): through the running gateway, over
 *   its control socket (method `send`): the gateway queues it durably and delivers it over the
 *   mesh. Prints the message ID; with --wait, polls `message_status` until the message is
 *   delivered (exit 0), expired (exit 3) or failed (exit 1), progress on stderr.
 * - `--to HOST:PORT`: straight to a gateway's UDP address, end to end encrypted, without a local
 *   gateway. Uses a fresh identity for this one send (or the one in --state-dir), learns the
 *   peer from its signed announce unless --node pins its node ID, runs the handshake, sends.
 */
import { isIP } from 'node:net'
import { lookup } from 'node:dns/promises'
import { InvalidArgumentError, type Command } from 'commander'
import { Identity } from '../../core/identity.js'
import { UdpGateway, AGENT_TYPE_NAMES, DATA_FRAME_OVERHEAD, formatAddress, parseAddress, parseAgentType, type SendResult, type UdpAddress } from '../../gateway/udp-gateway.js'
import { packetTypeName } from '../../core/wire/constants.js'
import { EXIT_FAILURE, EXIT_OK, EXIT_TIMEOUT, UsageError } from '../errors.js'
import { cliLogger, printJson } from '../output.js'
import { parseNodeIdOption, parsePositiveMs } from '../options.js'
import { loadOrCreateIdentity, resolveStateDir } from '../state.js'
import { SOCKET_HELP, withControl } from '../control.js'
import { at, cell, formatMs } from '../table.js'

interface SendOptions {
  to: string
  node?: string
  stateDir?: string
  timeout: number
  hex: boolean
  json: boolean
  verbose: boolean
  // through the gateway (--to NODE_ID or '*') only
  socket?: string
  runtimeDir?: string
  wait?: boolean
  ttl?: number
  unreliable?: boolean
  poll?: number
}

/** A node ID or '*': the message goes through the local gateway's control socket. */
export function isGatewayTarget(to: string): boolean {
  return to === '*' || /^[0-9a-fA-F]{32}$/.test(to)
}

const MAX_TTL_S = 31_536_000

function parseTtl(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1 || n > MAX_TTL_S) throw new InvalidArgumentError(`must be a whole number of seconds, 1-${MAX_TTL_S}`)
  return n
}

export function registerSend(program: Command): void {
  program
    .command('send')
    .description('send one message: through the running gateway to a node ID (or * for all), or straight to a gateway\'s HOST:PORT')
    .argument('<type>', `message type: ${AGENT_TYPE_NAMES.join(' | ')} (any case)`)
    .argument('<payload>', 'message payload (UTF-8 text; hex bytes with --hex)')
    .requiredOption('--to <node-id|*|host:port>', "a node ID (32 hex digits) or '*' (broadcast): sent by the running gateway; HOST:PORT: straight to that gateway over UDP, e.g. 127.0.0.1:47800")
    .option('--node <id>', "HOST:PORT only: the peer's node ID (32 hex digits): pins who must answer; without it the node ID is taken from the peer's signed announce", parseNodeIdOption)
    .option('--state-dir <dir>', "HOST:PORT: send as the identity in this state directory (default: a fresh identity for this send); node ID: the local gateway's state dir, to find its socket")
    .option('--timeout <ms>', 'how long to wait for the peer (HOST:PORT) or for each answer of the gateway (node ID)', parsePositiveMs, 5000)
    .option('--hex', 'PAYLOAD is hex-encoded bytes', false)
    .option('--json', 'print the result as one JSON object', false)
    .option('-v, --verbose', 'log the protocol steps (stderr)', false)
    .option('--wait', 'node ID only: wait until the message is delivered, expires or fails (progress on stderr)')
    .option('--ttl <seconds>', "node ID only: give up delivering after this long (default: the gateway's store.ttl_s)", parseTtl)
    .option('--unreliable', 'node ID only: no durable queue, no acknowledgement, no retry (one attempt if a route is known)')
    .option('--poll <ms>', '--wait: how often to ask the gateway', parsePositiveMs, 250)
    .option('--socket <path>', "node ID only: the gateway's control socket")
    .option('--runtime-dir <dir>', "node ID only: the gateway's runtime dir (socket: <dir>/control.sock)")
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw send --to 9d3e1f7a2b4c6d8e0f1a2b3c4d5e6f70 TASK_REQUEST 'summarise the logs'
  accepted 5f0c...e1 for 9d3e1f7a2b4c6d8e0f1a2b3c4d5e6f70: TASK_REQUEST, 18 B, queued durably in the gateway
  $ kairo-gw send --to 9d3e1f7a2b4c6d8e0f1a2b3c4d5e6f70 VECTOR_SYNC 00ff10 --hex --wait --ttl 60
  $ kairo-gw send --to '*' BROADCAST_ANNOUNCE 'gw-a is up' --json
  $ npx kairo-gw send --to 127.0.0.1:47800 TASK_REQUEST 'hello'
  $ npx kairo-gw send --to 127.0.0.1:47800 vector_sync 00ff10 --hex --json

With a node ID, the running gateway takes the message: a reliable one (the default) is on disk
in its outbox when this command returns, and is retried until the destination acknowledges it
or its TTL runs out. --wait exits 0 when delivered, 3 when it expired, 1 when the gateway gave
up; a failure names the transaction ID to look up in the gateway's log.

${SOCKET_HELP}`,
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
  let typeName: string
  try {
    typeName = packetTypeName(parseAgentType(typeArg))
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
  if (isGatewayTarget(opts.to)) return sendThroughGateway(typeName, payload, opts)
  if (!opts.to.includes(':')) throw new UsageError(`--to: ${JSON.stringify(opts.to)} is not a node ID (32 hex digits), '*' (broadcast) or HOST:PORT`)
  const gatewayOnly = (['wait', 'ttl', 'unreliable', 'socket', 'runtimeDir'] as const).filter((k) => opts[k] !== undefined)
  if (gatewayOnly.length > 0) {
    const flag = (k: string) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
    throw new UsageError(`${gatewayOnly.map(flag).join(', ')}: only with --to NODE_ID or '*' (through the running gateway), not with --to HOST:PORT`)
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

// ---------------------------------------------------------------------------------------------
// Through the running gateway

interface Accepted {
  id: string
  accepted_at: unknown
  durable: boolean
  broadcast: boolean
}

const FINAL = new Set(['delivered', 'expired', 'failed', 'unknown'])

async function sendThroughGateway(type: string, payload: Buffer, opts: SendOptions): Promise<void> {
  const to = opts.to === '*' ? '*' : opts.to.toLowerCase()
  if (opts.node !== undefined) throw new UsageError('--node: only with --to HOST:PORT (with a node ID, --to already names the destination)')
  if (opts.wait && to === '*') throw new UsageError("--wait: a broadcast ('*') is not acknowledged, there is nothing to wait for")
  if (opts.wait && opts.unreliable) throw new UsageError('--wait: an --unreliable message is not acknowledged, there is nothing to wait for')
  const params: Record<string, unknown> = { to, type }
  if (opts.hex) params.payload_b64 = payload.toString('base64')
  else params.text = payload.toString('utf8')
  if (opts.unreliable) params.reliable = false
  if (opts.ttl !== undefined) params.ttl_s = opts.ttl
  const control = { socket: opts.socket, runtimeDir: opts.runtimeDir, stateDir: opts.stateDir, timeout: opts.timeout }
  await withControl(control, async (client) => {
    const started = Date.now()
    const r = await client.call<Accepted>('send', params)
    const summary = { to, type, bytes: payload.length, id: r.id, accepted_at: r.accepted_at, durable: r.durable, broadcast: r.broadcast }
    const how = r.broadcast ? 'broadcast to every node in range (not acknowledged)' : r.durable ? 'queued durably in the gateway' : 'sent once, unreliable (no message ID, no acknowledgement)'
    const line = `accepted ${r.id || '(no ID)'} for ${to}: ${type}, ${payload.length} B, ${how}\n`
    if (!opts.wait) {
      if (opts.json) printJson({ ok: true, ...summary })
      else process.stdout.write(line)
      return
    }
    if (!opts.json) process.stdout.write(line)
    let last = ''
    let st: Record<string, unknown>
    for (;;) {
      st = await client.call<Record<string, unknown>>('message_status', { id: r.id })
      const state = String(st.state)
      if (FINAL.has(state)) break
      const progress = `waiting: ${state}, ${cell(st.attempts)} attempt(s)${st.last_error ? `, last error: ${cell(at(st, 'last_error.message'))}` : ''}`
      if (progress !== last) process.stderr.write(`${progress} (${formatMs(Date.now() - started)})\n`)
      last = progress
      await new Promise((res) => setTimeout(res, opts.poll ?? 250))
    }
    const state = String(st.state)
    const code = state === 'delivered' ? EXIT_OK : state === 'expired' ? EXIT_TIMEOUT : EXIT_FAILURE
    const tid = at(st, 'last_error.transaction_id') ?? r.id
    if (opts.json) printJson({ ok: code === EXIT_OK, ...summary, ...st, ...(code === EXIT_OK ? {} : { transaction_id: tid, exit_code: code }) })
    if (state === 'delivered') {
      if (!opts.json) process.stdout.write(`delivered ${r.id} to ${to}: ${cell(st.attempts)} attempt(s), ${formatMs(Date.now() - started)}\n`)
    } else {
      const why =
        state === 'expired'
          ? `expired undelivered after ${cell(st.attempts)} attempt(s)`
          : state === 'failed'
            ? 'failed: the gateway gave up delivering it'
            : 'is unknown to the gateway (not sent from it, or forgotten)'
      const lastError = at(st, 'last_error.message')
      process.stderr.write(`kairo-gw: message ${r.id} to ${to} ${why}${lastError !== undefined ? `; last error: ${cell(lastError)}` : ''} (transaction ${cell(tid)})\n`)
    }
    process.exitCode = code
  })
}
