/**
 * The gateway's control-socket results (docs/sdk.md, "Wire") read into the SDK's types.
 *
 * Every reader takes the `unknown` a call resolved with and either returns a well-formed value or
 * throws a KairoSdkError with code EPROTO naming the method and the field at fault: a gateway
 * that answers something else (another version, a bug) is reported as such, never as a crash
 * deep inside an agent. Times arrive as milliseconds since the epoch or as ISO-8601 text and are
 * returned as Date.
 */
import { AGENT_TYPE_NAMES } from '../core/wire/constants.js'
import { KairoSdkError } from './errors.js'

/** The five agent message types. */
export const AGENT_TYPES = ['TASK_REQUEST', 'AGENT_MIGRATION', 'REPUTATION_DELTA', 'BROADCAST_ANNOUNCE', 'VECTOR_SYNC'] as const
export type AgentType = (typeof AGENT_TYPES)[number]

// The SDK's literal list is the wire's list; a type added to one and not the other fails here,
// at import, rather than as a message an agent cannot read.
if (AGENT_TYPES.length !== AGENT_TYPE_NAMES.length || AGENT_TYPES.some((t, i) => AGENT_TYPE_NAMES[i] !== t)) {
  throw new Error(`sdk: AGENT_TYPES (${AGENT_TYPES.join(', ')}) differ from the wire's AGENT_TYPE_NAMES (${AGENT_TYPE_NAMES.join(', ')})`)
}

export function isAgentType(value: unknown): value is AgentType {
  return typeof value === 'string' && (AGENT_TYPE_NAMES as readonly string[]).includes(value)
}

/** What send() resolves with. */
export interface SendResult {
  /** The message ID (32 hex digits): also the transaction ID under which the gateway records it. Empty for an unreliable send. */
  id: string
  acceptedAt: Date
  /** True when the message is in the gateway's durable outbox (reliable, not a broadcast). */
  durable: boolean
  broadcast: boolean
}

export type MessageState = 'pending' | 'delivered' | 'expired' | 'failed' | 'unknown'
const STATES: readonly MessageState[] = ['pending', 'delivered', 'expired', 'failed', 'unknown']

export interface DeliveryError {
  code: string
  message: string
  transactionId: string | undefined
}

/** What status() resolves with. */
export interface MessageStatus {
  id: string
  state: MessageState
  /** The destination node ID (null when the gateway does not know the message). */
  to: string | null
  attempts: number
  deliveredAt: Date | null
  lastError: DeliveryError | null
}

/** A message the gateway received for this node, as messages() yields it. */
export class ReceivedMessage {
  /** Position in the gateway's inbox: pass it as `since` to resume after this message. */
  readonly cursor: number
  /** Message ID (32 hex digits), the sender's. */
  readonly id: string
  /** Sender's node ID (32 hex digits), authenticated by the end-to-end session. */
  readonly from: string
  readonly type: AgentType
  readonly payload: Buffer
  readonly receivedAt: Date

  constructor(m: { cursor: number; id: string; from: string; type: AgentType; payload: Buffer; receivedAt: Date }) {
    this.cursor = m.cursor
    this.id = m.id
    this.from = m.from
    this.type = m.type
    this.payload = m.payload
    this.receivedAt = m.receivedAt
  }

  /** The payload as UTF-8 text (invalid sequences become U+FFFD). */
  text(): string {
    return this.payload.toString('utf8')
  }

  toJSON(): Record<string, unknown> {
    return { cursor: this.cursor, id: this.id, from: this.from, type: this.type, bytes: this.payload.length, payload_b64: this.payload.toString('base64'), received_at: this.receivedAt.toISOString() }
  }
}

export interface MessagesPage {
  messages: ReceivedMessage[]
  /** The cursor to ask from next. */
  next: number
}

// ---------------------------------------------------------------------------------------------

function proto(method: string, field: string, what: string): KairoSdkError {
  return new KairoSdkError(`gateway answered ${method} with a malformed result: ${field} ${what}`, 'EPROTO')
}

function obj(v: unknown, method: string, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw proto(method, field, 'is not an object')
  return v as Record<string, unknown>
}

function str(o: Record<string, unknown>, key: string, method: string, field = key): string {
  const v = o[key]
  if (typeof v !== 'string') throw proto(method, field, 'is not a string')
  return v
}

function bool(o: Record<string, unknown>, key: string, method: string, fallback?: boolean): boolean {
  const v = o[key]
  if (v === undefined && fallback !== undefined) return fallback
  if (typeof v !== 'boolean') throw proto(method, key, 'is not a boolean')
  return v
}

function count(o: Record<string, unknown>, key: string, method: string, field = key): number {
  const v = o[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw proto(method, field, 'is not a non-negative integer')
  return v
}

function time(v: unknown, method: string, field: string): Date {
  const d = typeof v === 'number' && Number.isFinite(v) ? new Date(v) : typeof v === 'string' ? new Date(v) : null
  if (d === null || Number.isNaN(d.getTime())) throw proto(method, field, 'is not a time (ms since the epoch or ISO-8601)')
  return d
}

const HEX32 = /^[0-9a-f]{32}$/
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

export function parseSendResult(v: unknown): SendResult {
  const o = obj(v, 'send', 'result')
  const id = str(o, 'id', 'send')
  if (id !== '' && !HEX32.test(id)) throw proto('send', 'id', 'is not 32 hex digits')
  return { id, acceptedAt: time(o.accepted_at, 'send', 'accepted_at'), durable: bool(o, 'durable', 'send'), broadcast: bool(o, 'broadcast', 'send') }
}

export function parseMessageStatus(v: unknown): MessageStatus {
  const m = 'message_status'
  const o = obj(v, m, 'result')
  const state = str(o, 'state', m)
  if (!(STATES as readonly string[]).includes(state)) throw proto(m, 'state', `is ${JSON.stringify(state)}, not one of ${STATES.join(', ')}`)
  const to = o.to === null || o.to === undefined ? null : str(o, 'to', m)
  const attempts = o.attempts === undefined ? 0 : count(o, 'attempts', m)
  const deliveredAt = o.delivered_at === null || o.delivered_at === undefined ? null : time(o.delivered_at, m, 'delivered_at')
  let lastError: DeliveryError | null = null
  if (o.last_error !== null && o.last_error !== undefined) {
    const e = obj(o.last_error, m, 'last_error')
    const tid = e.transaction_id
    if (tid !== undefined && tid !== null && typeof tid !== 'string') throw proto(m, 'last_error.transaction_id', 'is not a string')
    lastError = { code: str(e, 'code', m, 'last_error.code'), message: str(e, 'message', m, 'last_error.message'), transactionId: typeof tid === 'string' ? tid : undefined }
  }
  return { id: str(o, 'id', m), state: state as MessageState, to, attempts, deliveredAt, lastError }
}

export function parseMessagesPage(v: unknown): MessagesPage {
  const m = 'messages'
  const o = obj(v, m, 'result')
  const list = o.messages
  if (!Array.isArray(list)) throw proto(m, 'messages', 'is not an array')
  const messages = list.map((item, i) => {
    const f = (k: string) => `messages[${i}].${k}`
    const e = obj(item, m, `messages[${i}]`)
    const type = e.type
    if (!isAgentType(type)) throw proto(m, f('type'), `is ${JSON.stringify(type)}, not one of ${AGENT_TYPES.join(', ')}`)
    const b64 = str(e, 'payload_b64', m, f('payload_b64'))
    if (!BASE64.test(b64) || b64.length % 4 !== 0) throw proto(m, f('payload_b64'), 'is not base64')
    return new ReceivedMessage({
      cursor: count(e, 'cursor', m, f('cursor')),
      id: str(e, 'id', m, f('id')),
      from: str(e, 'from', m, f('from')),
      type,
      payload: Buffer.from(b64, 'base64'),
      receivedAt: time(e.received_at, m, f('received_at')),
    })
  })
  const next = count(o, 'next', m)
  return { messages, next }
}
