/**
 * The local client SDK: how an agent on the gateway's host sends and receives AI-TCP messages.
 *
 *   import { KairoClient } from 'kairo-gw/appliance/sdk/index.js'
 *
 *   const kairo = await KairoClient.connect()                      // finds the gateway's socket
 *   const { id } = await kairo.send(peer, 'TASK_REQUEST', 'summarise this')
 *   await kairo.sendAndWait(peer, 'VECTOR_SYNC', bytes)             // resolves once delivered
 *   for await (const m of kairo.messages({ signal })) console.log(m.from, m.type, m.text())
 *   await kairo.close()
 *
 * It talks JSON-RPC to the gateway's control socket (appliance/control/client.ts): the same
 * access rule as the CLI (root or group kairo), nothing on the network. The gateway does the
 * cryptography, routing and the durable queue; a message is the gateway's once send() resolves
 * with a durable result. Errors are typed (errors.ts) and carry the gateway's transactionId.
 *
 * The connection is made again on the next call after it was lost (a gateway restart): a call in
 * flight when it went away fails with GatewayUnavailableError, the next one reconnects. Calls may
 * run concurrently. docs/sdk.md has the whole API and an example agent.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { ControlClient } from '../control/client.js'
import {
  DeliveryFailedError,
  GatewayUnavailableError,
  InvalidRequestError,
  KairoSdkError,
  MessageExpiredError,
  WaitTimeoutError,
  toSdkError,
} from './errors.js'
import { AGENT_TYPES, isAgentType, parseMessagesPage, parseMessageStatus, parseSendResult, type AgentType, type MessageStatus, type ReceivedMessage, type SendResult } from './parse.js'
import { findControlSocket } from './socket.js'

export * from './errors.js'
export { AGENT_TYPES, isAgentType, ReceivedMessage, type AgentType, type DeliveryError, type MessageState, type MessageStatus, type MessagesPage, type SendResult } from './parse.js'
export { findControlSocket, devRuntimeDir, SYSTEM_RUNTIME_DIR } from './socket.js'

export interface ConnectOptions {
  /** The control socket; default: found as findControlSocket() says ($KAIRO_RUNTIME_DIR, /run/kairo-gw, ./var/state/run). */
  socket?: string
  /** Connect timeout and the default timeout of each call. Default 10 s. */
  timeoutMs?: number
}

export interface SendOptions {
  /** Default true: kept in the gateway's durable outbox and retried until acknowledged or expired. */
  reliable?: boolean
  /** Time to live in seconds (1 .. 31536000); default the gateway's store.ttl_s. */
  ttlS?: number
}

export interface WaitOptions {
  /** How often to ask the gateway, default 200 ms. */
  pollMs?: number
  /** Give up waiting after this long (WaitTimeoutError); default: wait until delivered or expired. */
  timeoutMs?: number
  /** Stops waiting (rejects with the signal's reason); the message stays queued in the gateway. */
  signal?: AbortSignal
}

export interface MessagesOptions {
  /** Yield messages after this cursor (a ReceivedMessage's `cursor`); default 0: every message the gateway still holds. */
  since?: number
  /** How often to poll when there is nothing new, default 250 ms. */
  pollMs?: number
  /** Ends the iteration (without an error). */
  signal?: AbortSignal
  /** Messages asked for per call, default 500. */
  batch?: number
}

const HEX32 = /^[0-9a-fA-F]{32}$/
const MAX_TTL_S = 31_536_000

export class KairoClient {
  /** The control socket this client talks to. */
  readonly socket: string
  private readonly timeoutMs: number | undefined
  private client: ControlClient | null
  private connecting: Promise<ControlClient> | null = null
  private closedByUser = false
  private readonly closing = new AbortController()

  private constructor(socket: string, client: ControlClient, timeoutMs: number | undefined) {
    this.socket = socket
    this.client = client
    this.timeoutMs = timeoutMs
  }

  /** Connects to the gateway; GatewayUnavailableError says why it could not (and what to do). */
  static async connect(opts: ConnectOptions = {}): Promise<KairoClient> {
    const socket = findControlSocket({ socket: opts.socket })
    const client = await KairoClient.open(socket, opts.timeoutMs)
    return new KairoClient(socket, client, opts.timeoutMs)
  }

  private static async open(socket: string, timeoutMs: number | undefined): Promise<ControlClient> {
    try {
      return await ControlClient.connect(socket, timeoutMs === undefined ? {} : { timeoutMs })
    } catch (err) {
      throw toSdkError(err, socket)
    }
  }

  /** True after close(). */
  get closed(): boolean {
    return this.closedByUser
  }

  /**
   * Hands one message to the gateway. `to` is a node ID (32 hex digits) or '*' for a broadcast to
   * every node in range (not acknowledged, not queued). Resolves once the gateway accepted it:
   * for a reliable message (the default), once it is on disk in the gateway's outbox.
   */
  async send(to: string, type: AgentType, payload: string | Uint8Array, opts: SendOptions = {}): Promise<SendResult> {
    const params = sendParams(to, type, payload, opts)
    return parseSendResult(await this.call('send', params))
  }

  /**
   * send(), then waits for the destination's acknowledgement. Resolves with the delivered status;
   * rejects with MessageExpiredError (TTL ran out), DeliveryFailedError (the gateway gave up),
   * WaitTimeoutError (opts.timeoutMs passed; the message stays queued), or the errors of send().
   * A broadcast and an unreliable message have no acknowledgement: InvalidRequestError.
   */
  async sendAndWait(to: string, type: AgentType, payload: string | Uint8Array, opts: SendOptions & WaitOptions = {}): Promise<MessageStatus> {
    if (to === '*') throw new InvalidRequestError("a broadcast ('*') is not acknowledged: use send()", 'to')
    if (opts.reliable === false) throw new InvalidRequestError('an unreliable message is not acknowledged: use send(), or reliable: true', 'reliable')
    const sent = await this.send(to, type, payload, opts)
    return this.waitDelivered(sent.id, opts)
  }

  /** What the gateway knows of a message it accepted from this node (by the ID send() returned). */
  async status(id: string): Promise<MessageStatus> {
    if (typeof id !== 'string' || !HEX32.test(id)) throw new InvalidRequestError(`message ID must be 32 hex digits, got ${JSON.stringify(id)}`, 'id')
    return parseMessageStatus(await this.call('message_status', { id: id.toLowerCase() }))
  }

  /** Polls status(id) until the message is delivered; fails as sendAndWait() says. */
  async waitDelivered(id: string, opts: WaitOptions = {}): Promise<MessageStatus> {
    const pollMs = opts.pollMs ?? 200
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs
    for (;;) {
      opts.signal?.throwIfAborted()
      const s = await this.status(id)
      switch (s.state) {
        case 'delivered':
          return s
        case 'expired':
          throw new MessageExpiredError(
            `message ${id} to ${s.to ?? '?'} expired undelivered after ${s.attempts} attempt(s)${s.lastError ? `; last error: ${s.lastError.message}` : ''}`,
            id,
            s.attempts,
            { transactionId: s.lastError?.transactionId ?? id },
          )
        case 'failed':
          throw new DeliveryFailedError(`message ${id} to ${s.to ?? '?'} failed: ${s.lastError?.message ?? 'the gateway gave up'}`, id, s.lastError?.code ?? 'EDELIVERY', {
            transactionId: s.lastError?.transactionId ?? id,
          })
        case 'unknown':
          throw new KairoSdkError(`the gateway does not know message ${id} (not sent from this node, or forgotten after a long time)`, 'EUNKNOWNMESSAGE', { transactionId: id })
        case 'pending':
          break
      }
      const left = deadline - Date.now()
      if (left <= 0) throw new WaitTimeoutError(`message ${id} not delivered within ${opts.timeoutMs} ms (still queued in the gateway: ${s.attempts} attempt(s) so far)`, id, { transactionId: id })
      try {
        await sleep(Math.min(pollMs, left), undefined, opts.signal ? { signal: opts.signal } : {})
      } catch (err) {
        opts.signal?.throwIfAborted() // the signal's own reason, as at the top of the loop
        throw err
      }
    }
  }

  /**
   * The messages this node received, oldest first, then new ones as they arrive, until the signal
   * aborts or close() is called. Remember the last `cursor` you handled and pass it as `since`
   * after a restart to carry on where you stopped. Throws (ends the loop) on gateway errors, e.g.
   * GatewayUnavailableError when the gateway stops.
   */
  async *messages(opts: MessagesOptions = {}): AsyncGenerator<ReceivedMessage, void, undefined> {
    let since = opts.since ?? 0
    if (!Number.isSafeInteger(since) || since < 0) throw new InvalidRequestError(`since must be a non-negative integer cursor, got ${String(since)}`, 'since')
    const pollMs = opts.pollMs ?? 250
    const limit = opts.batch ?? 500
    const signal = opts.signal
    // Woken by the caller's signal or by close().
    const wake = signal ? AbortSignal.any([signal, this.closing.signal]) : this.closing.signal
    while (!this.closedByUser && !signal?.aborted) {
      let page
      try {
        page = parseMessagesPage(await this.call('messages', { since, limit }))
      } catch (err) {
        if (this.closedByUser || signal?.aborted) return // the call was cut short by close() or the abort
        throw err
      }
      for (const m of page.messages) {
        if (m.cursor <= since) continue // never yield one twice, whatever the gateway sends
        since = m.cursor
        yield m
        if (this.closedByUser || signal?.aborted) return
      }
      since = Math.max(since, page.next)
      if (page.messages.length >= limit) continue
      try {
        await sleep(pollMs, undefined, { signal: wake })
      } catch {
        return // aborted or closed
      }
    }
  }

  /**
   * Any control-socket method (status, routes, peers, ...), for what the SDK has no wrapper of;
   * the raw result. Errors typed as for the rest.
   */
  async call<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const client = await this.connection()
    try {
      return await client.call<T>(method, params)
    } catch (err) {
      throw toSdkError(err, this.socket)
    }
  }

  /** Closes the connection; calls still in flight fail with GatewayUnavailableError, iterators end. */
  async close(): Promise<void> {
    this.closedByUser = true
    this.closing.abort()
    const c = this.client
    this.client = null
    if (c !== null) await c.close()
  }

  private async connection(): Promise<ControlClient> {
    if (this.closedByUser) throw new GatewayUnavailableError('this KairoClient was closed', this.socket, 'ECLOSED')
    if (this.client !== null && !this.client.closed) return this.client
    // Lost (a gateway restart): connect again, once for all the calls that want it now.
    this.connecting ??= KairoClient.open(this.socket, this.timeoutMs).finally(() => (this.connecting = null))
    const c = await this.connecting
    if (this.closedByUser) {
      await c.close()
      throw new GatewayUnavailableError('this KairoClient was closed', this.socket, 'ECLOSED')
    }
    this.client = c
    return c
  }
}

/** The `send` params, checked here so that a bad argument fails before any I/O, naming the field. */
export function sendParams(to: string, type: string, payload: string | Uint8Array, opts: SendOptions = {}): Record<string, unknown> {
  if (typeof to !== 'string' || (to !== '*' && !HEX32.test(to))) throw new InvalidRequestError(`to must be a node ID (32 hex digits) or '*' for a broadcast, got ${JSON.stringify(to)}`, 'to')
  if (!isAgentType(type)) throw new InvalidRequestError(`type must be one of ${AGENT_TYPES.join(', ')}, got ${JSON.stringify(type)}`, 'type')
  const params: Record<string, unknown> = { to: to.toLowerCase(), type }
  if (typeof payload === 'string') params.text = payload
  else if (payload instanceof Uint8Array) params.payload_b64 = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64')
  else throw new InvalidRequestError('payload must be a string or a Uint8Array (Buffer)', 'payload')
  if (opts.reliable !== undefined) {
    if (typeof opts.reliable !== 'boolean') throw new InvalidRequestError('reliable must be a boolean', 'reliable')
    params.reliable = opts.reliable
  }
  if (opts.ttlS !== undefined) {
    if (!Number.isSafeInteger(opts.ttlS) || opts.ttlS < 1 || opts.ttlS > MAX_TTL_S) throw new InvalidRequestError(`ttlS must be a whole number of seconds, 1..${MAX_TTL_S}, got ${String(opts.ttlS)}`, 'ttl_s')
    params.ttl_s = opts.ttlS
  }
  return params
}
