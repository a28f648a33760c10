/**
 * The control socket's wire protocol: JSON-RPC 2.0, one JSON object per line (newline-delimited,
 * UTF-8). Pure functions only; the socket I/O is in server.ts and client.ts.
 *
 *   parseRequest(line)        → { ok: true, request } | { ok: false, response } (never throws)
 *   encodeResponse(response)  → one line of JSON ending in '\n' (never throws)
 *   errorResponse(id, err)    → the response for an error a handler threw:
 *                                 InvalidParamsError → -32602, KairoError → -32000 with
 *                                 data {kairo_code, transaction_id, field?}, anything else → -32603
 *                                 with a generic message and data {transaction_id} (to find the
 *                                 stack trace in the gateway's log; the client never sees it)
 *   methodNotFoundResponse    → -32601 listing the available methods
 *   param(params, name, type, options) / rejectUnknownParams(params, names): validation helpers
 *                                 for handlers, throwing an InvalidParamsError naming the param
 *   LineSplitter              → newline framing with a per-line byte limit
 *
 * What is accepted, beyond JSON-RPC 2.0 itself:
 * - a request is one JSON object; batches (arrays) are refused (-32600);
 * - members other than jsonrpc, id, method, params are refused (-32600 naming the member), which
 *   catches typos such as "param";
 * - params are named (an object) or absent (→ {}); by-position arrays are refused (-32602);
 * - an id is a string, a safe integer or null (a fraction or an integer past 2^53 would not come
 *   back to the client as the same number);
 * - a request nested deeper than MAX_DEPTH levels is refused (-32600): handlers and the JSON
 *   encoder recurse, JSON.parse does not.
 *
 * A request without an id is a notification: it is run and never answered, not even with an
 * error, unless it cannot be read as a request at all (then the answer has id null, as the
 * JSON-RPC 2.0 spec says).
 */
import { isUtf8 } from 'node:buffer'
import { KairoError, newTransactionId } from '../core/errors.js'

// ---------------------------------------------------------------------------------------------
// Types and codes

export type JsonRpcId = string | number | null

export const PARSE_ERROR = -32700
export const INVALID_REQUEST = -32600
export const METHOD_NOT_FOUND = -32601
export const INVALID_PARAMS = -32602
export const INTERNAL_ERROR = -32603
/** A KairoError thrown by a handler (the "server error" range of JSON-RPC 2.0). */
export const KAIRO_ERROR = -32000

/** Deepest nesting of arrays/objects a request may have (the request object itself is level 1). */
export const MAX_DEPTH = 64

export interface JsonRpcRequest {
  /** undefined for a notification (no id member): it gets no response. */
  id: JsonRpcId | undefined
  method: string
  /** Named params; {} when the request had none. */
  params: Record<string, unknown>
}

export interface ControlErrorData {
  /** KairoError.code, e.g. 'ELIMIT' (-32000 only). */
  kairo_code?: string
  /** The operation's transaction id: the KairoError's own, or (-32603) the one the gateway logged the failure under. */
  transaction_id?: string
  /** The param (-32602) or setting (-32000, when the KairoError names one) at fault. */
  field?: string
}

export interface JsonRpcErrorObject {
  code: number
  message: string
  data?: ControlErrorData
}

export interface JsonRpcSuccess {
  jsonrpc: '2.0'
  id: JsonRpcId
  result: unknown
}

export interface JsonRpcFailure {
  jsonrpc: '2.0'
  id: JsonRpcId
  error: JsonRpcErrorObject
}

export type JsonRpcResponse = JsonRpcSuccess | JsonRpcFailure

export type ParseResult = { ok: true; request: JsonRpcRequest } | { ok: false; response: JsonRpcFailure }

// ---------------------------------------------------------------------------------------------
// Errors a handler may throw

/** Bad params: → -32602 with data {field: param}. Thrown by param() and rejectUnknownParams(). */
export class InvalidParamsError extends Error {
  /** The param at fault ('' when it is the params value as a whole). */
  readonly param: string
  constructor(param: string, message: string) {
    super(message)
    this.name = 'InvalidParamsError'
    this.param = param
  }
}

// ---------------------------------------------------------------------------------------------
// Responses

export function successResponse(id: JsonRpcId, result: unknown): JsonRpcSuccess {
  return { jsonrpc: '2.0', id, result: result === undefined ? null : result }
}

export function failureResponse(id: JsonRpcId, code: number, message: string, data?: ControlErrorData): JsonRpcFailure {
  const error: JsonRpcErrorObject = data === undefined ? { code, message } : { code, message, data }
  return { jsonrpc: '2.0', id, error }
}

/** -32601 naming the method and listing those there are. */
export function methodNotFoundResponse(id: JsonRpcId, method: string, available: readonly string[]): JsonRpcFailure {
  const list = available.length > 0 ? [...available].sort().join(', ') : '(none)'
  return failureResponse(id, METHOD_NOT_FOUND, `unknown method ${quote(method)} (available: ${list})`)
}

/**
 * The error object for something a handler threw. For -32603 the message is generic and
 * data.transaction_id is new: log the original error under it (the server does).
 */
export function errorObject(err: unknown): JsonRpcErrorObject {
  if (err instanceof InvalidParamsError) {
    return err.param === '' ? { code: INVALID_PARAMS, message: err.message } : { code: INVALID_PARAMS, message: err.message, data: { field: err.param } }
  }
  if (err instanceof KairoError) {
    const data: ControlErrorData = { kairo_code: String(err.code), transaction_id: String(err.transaction_id) }
    const field = (err as { field?: unknown }).field
    if (typeof field === 'string') data.field = field
    return { code: KAIRO_ERROR, message: safeMessage(err.message), data }
  }
  return { code: INTERNAL_ERROR, message: 'internal error', data: { transaction_id: newTransactionId() } }
}

export function errorResponse(id: JsonRpcId, err: unknown): JsonRpcFailure {
  return { jsonrpc: '2.0', id, error: errorObject(err) }
}

/**
 * One line of JSON, '\n'-terminated. Never throws: a result JSON cannot encode (a BigInt, a
 * cycle, nesting too deep for the encoder) becomes a -32603 for the same id.
 */
export function encodeResponse(response: JsonRpcResponse): string {
  try {
    const text = JSON.stringify(response)
    if (typeof text === 'string') return text + '\n'
  } catch {
    // fall through
  }
  const id = isValidId(response.id) ? response.id : null
  return JSON.stringify(failureResponse(id, INTERNAL_ERROR, 'internal error: the result could not be encoded as JSON')) + '\n'
}

// ---------------------------------------------------------------------------------------------
// Requests

const REQUEST_MEMBERS = new Set(['jsonrpc', 'id', 'method', 'params'])

/**
 * Reads one line (without its '\n') as a JSON-RPC 2.0 request. Never throws: anything that is not
 * a valid request comes back as the error response to send.
 */
export function parseRequest(line: string | Buffer): ParseResult {
  let text: string
  if (typeof line === 'string') {
    text = line
  } else {
    if (!isUtf8(line)) return parseError(`invalid UTF-8 at byte ${firstInvalidUtf8(line)}`)
    text = line.toString('utf8')
  }
  if (text.trim() === '') return parseError('empty request')

  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    return parseError(jsonParseReason(err))
  }

  if (typeof value !== 'object' || value === null) return invalid(null, `a request must be a JSON object, not ${describe(value)}`)
  if (Array.isArray(value)) return invalid(null, 'batch requests are not supported: send one JSON object per line')
  const obj = value as Record<string, unknown>

  const hasId = Object.hasOwn(obj, 'id')
  const rawId = obj.id
  if (hasId && !isValidId(rawId)) return invalid(null, `id must be a string, a safe integer or null, not ${describe(rawId)}`)
  const id = hasId ? (rawId as JsonRpcId) : undefined
  const replyId = id ?? null

  if (obj.jsonrpc !== '2.0') {
    return invalid(replyId, Object.hasOwn(obj, 'jsonrpc') ? `jsonrpc must be "2.0", not ${describe(obj.jsonrpc)}` : 'jsonrpc is missing: it must be "2.0"')
  }
  if (!Object.hasOwn(obj, 'method')) return invalid(replyId, 'method is missing')
  if (typeof obj.method !== 'string') return invalid(replyId, `method must be a string, not ${describe(obj.method)}`)
  for (const key of Object.keys(obj)) {
    if (!REQUEST_MEMBERS.has(key)) return invalid(replyId, `unexpected member ${quote(key)} (a request has jsonrpc, id, method, params)`)
  }

  let params: Record<string, unknown> = {}
  if (Object.hasOwn(obj, 'params')) {
    const p = obj.params
    if (Array.isArray(p)) {
      return { ok: false, response: failureResponse(replyId, INVALID_PARAMS, 'params must be an object of named params; by-position params (an array) are not supported') }
    }
    if (typeof p !== 'object' || p === null) return invalid(replyId, `params must be an object, not ${describe(p)}`)
    params = p as Record<string, unknown>
  }
  if (depthExceeds(params, MAX_DEPTH - 1)) return invalid(replyId, `request nested deeper than ${MAX_DEPTH} levels`)

  return { ok: true, request: { id, method: obj.method, params } }
}

export function isValidId(id: unknown): id is JsonRpcId {
  return id === null || typeof id === 'string' || Number.isSafeInteger(id)
}

function parseError(reason: string): { ok: false; response: JsonRpcFailure } {
  return { ok: false, response: failureResponse(null, PARSE_ERROR, `parse error: ${reason}`) }
}

function invalid(id: JsonRpcId, reason: string): { ok: false; response: JsonRpcFailure } {
  return { ok: false, response: failureResponse(id, INVALID_REQUEST, `invalid request: ${reason}`) }
}

/**
 * JSON.parse's own words, without the copy of the input V8 appends ("Unexpected token '}',
 * "{"a":}" is not valid JSON" → "Unexpected token '}'"), keeping "at position N" when it says it.
 */
function jsonParseReason(err: unknown): string {
  const message = err instanceof Error ? err.message : 'not valid JSON'
  const m = /^(.*?), ".*" is not valid JSON$/s.exec(message)
  let reason = m?.[1] ?? message
  if (/^".*" is not valid JSON$/s.test(reason)) reason = 'not valid JSON'
  return safeMessage(reason)
}

/** Messages go back over the socket: one line, bounded. */
function safeMessage(message: string): string {
  const flat = message.replace(/[\r\n]+/g, ' ')
  return flat.length > 500 ? flat.slice(0, 497) + '...' : flat
}

/** True when `value` has arrays/objects nested more than `limit` levels deep (iterative). */
function depthExceeds(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (typeof v !== 'object' || v === null) continue
    if (depth > limit) return true
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1])
    }
  }
  return false
}

/**
 * Offset of the first byte that is not part of a well-formed UTF-8 sequence (overlongs,
 * surrogates and code points past U+10FFFF included), or -1 when there is none.
 */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0
  while (i < b.length) {
    const c = b[i]!
    if (c < 0x80) {
      i++
      continue
    }
    let n: number
    let lo = 0x80
    let hi = 0xbf
    if (c >= 0xc2 && c <= 0xdf) n = 1
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2
      if (c === 0xe0) lo = 0xa0
      if (c === 0xed) hi = 0x9f
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3
      if (c === 0xf0) lo = 0x90
      if (c === 0xf4) hi = 0x8f
    } else return i
    if (i + n >= b.length) return i
    const c1 = b[i + 1]!
    if (c1 < lo || c1 > hi) return i
    for (let k = 2; k <= n; k++) if ((b[i + k]! & 0xc0) !== 0x80) return i
    i += n + 1
  }
  return -1
}

// ---------------------------------------------------------------------------------------------
// Param validation for handlers

interface ParamTypeMap {
  string: string
  number: number
  integer: number
  boolean: boolean
  object: Record<string, unknown>
  array: unknown[]
}
export type ParamType = keyof ParamTypeMap

export interface ParamOptions<T> {
  /** Absent → InvalidParamsError. */
  required?: boolean
  /** Returned when the param is absent. */
  default?: NoInfer<T>
  /** string: must match (use ^...$ for the whole string). */
  pattern?: RegExp
  /** Must be one of these (strict equality). */
  oneOf?: readonly T[]
  /** number/integer: the value; string/array: the length. */
  min?: number
  max?: number
  /** What is expected, in words, replacing the generated description: e.g. '32 hex digits'. */
  expected?: string
}

const ARTICLE: Record<ParamType, string> = {
  string: 'a string',
  number: 'a finite number',
  integer: 'an integer',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
}

/**
 * Reads and checks params[name]. Absent (undefined) gives the default, or undefined, or (when
 * required) an InvalidParamsError; null is a value, and the wrong type for all but none.
 *
 *   const to = param(params, 'to', 'string', { required: true, pattern: /^[0-9a-f]{32}$/, expected: '32 hex digits' })
 *   const limit = param(params, 'limit', 'integer', { default: 1000, min: 1, max: 10000 })
 *   const type = param(params, 'type', 'string', { required: true, oneOf: ['TASK_REQUEST', 'VECTOR_SYNC'] as const })
 */
export function param<K extends ParamType, T extends ParamTypeMap[K] = ParamTypeMap[K]>(
  params: Record<string, unknown>,
  name: string,
  type: K,
  options: ParamOptions<T> & ({ required: true } | { default: NoInfer<T> }),
): T
export function param<K extends ParamType, T extends ParamTypeMap[K] = ParamTypeMap[K]>(
  params: Record<string, unknown>,
  name: string,
  type: K,
  options?: ParamOptions<T>,
): T | undefined
export function param(params: Record<string, unknown>, name: string, type: ParamType, options: ParamOptions<unknown> = {}): unknown {
  const value = Object.hasOwn(params, name) ? params[name] : undefined
  if (value === undefined) {
    if (options.default !== undefined) return options.default
    if (options.required === true) throw new InvalidParamsError(name, `param ${quote(name)} is required (${expectation(type, options)})`)
    return undefined
  }
  const fail = (): never => {
    throw new InvalidParamsError(name, `param ${quote(name)} must be ${expectation(type, options)}, not ${describe(value)}`)
  }
  switch (type) {
    case 'string':
      if (typeof value !== 'string') fail()
      break
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) fail()
      break
    case 'integer':
      if (!Number.isSafeInteger(value)) fail()
      break
    case 'boolean':
      if (typeof value !== 'boolean') fail()
      break
    case 'object':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail()
      break
    case 'array':
      if (!Array.isArray(value)) fail()
      break
  }
  if (options.pattern !== undefined && typeof value === 'string') {
    options.pattern.lastIndex = 0
    if (!options.pattern.test(value)) fail()
  }
  if (options.min !== undefined || options.max !== undefined) {
    const size = typeof value === 'number' ? value : typeof value === 'string' || Array.isArray(value) ? value.length : undefined
    if (size !== undefined && ((options.min !== undefined && size < options.min) || (options.max !== undefined && size > options.max))) fail()
  }
  if (options.oneOf !== undefined && !options.oneOf.includes(value)) fail()
  return value
}

/** InvalidParamsError naming the first param not in `known` (typos such as 'txt' for 'text'). */
export function rejectUnknownParams(params: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(params)) {
    if (!known.includes(key)) {
      const list = known.length > 0 ? `expected: ${known.join(', ')}` : 'this method takes none'
      throw new InvalidParamsError(key, `unknown param ${quote(key)} (${list})`)
    }
  }
}

function expectation(type: ParamType, options: ParamOptions<unknown>): string {
  if (options.expected !== undefined) return options.expected
  if (options.oneOf !== undefined) return `one of ${options.oneOf.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ')}`
  let text = ARTICLE[type]
  if (options.pattern !== undefined) text += ` matching ${String(options.pattern)}`
  const { min, max } = options
  if (min !== undefined || max !== undefined) {
    const range = min !== undefined && max !== undefined ? `${min}..${max}` : min !== undefined ? `>= ${min}` : `<= ${max}`
    text += type === 'number' || type === 'integer' ? ` in ${range}` : ` of length ${range}`
  }
  return text
}

/** A short description of a value for an error message: 'a number (5)', 'the string "abc"'. */
function describe(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'nothing'
  if (Array.isArray(value)) return 'an array'
  switch (typeof value) {
    case 'string':
      return `the string ${quote(value)}`
    case 'number':
      return `the number ${String(value)}`
    case 'boolean':
      return `the boolean ${String(value)}`
    case 'object':
      return 'an object'
    default:
      return typeof value
  }
}

/** JSON-quoted and cut to 40 characters. */
function quote(s: string): string {
  const cut = s.length > 40 ? s.slice(0, 40) + '...' : s
  return JSON.stringify(cut)
}

// ---------------------------------------------------------------------------------------------
// Framing

/**
 * Splits a byte stream into '\n'-terminated lines (a trailing '\r' is dropped), byte-exact so a
 * UTF-8 sequence split across chunks stays whole. A line, or the unterminated tail, longer than
 * maxLineBytes sets `overflowed`: the rest of the stream is then ignored (the caller answers and
 * closes). Memory held is at most maxLineBytes plus one chunk.
 */
export class LineSplitter {
  private pending: Buffer[] = []
  private pendingBytes = 0
  overflowed = false

  constructor(readonly maxLineBytes: number) {}

  /** The lines completed by `chunk`, in order (none once overflowed). */
  push(chunk: Buffer): Buffer[] {
    const lines: Buffer[] = []
    if (this.overflowed) return lines
    let start = 0
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start)
      if (nl === -1) {
        const rest = chunk.subarray(start)
        this.pendingBytes += rest.length
        if (this.pendingBytes > this.maxLineBytes) return this.overflow(lines)
        this.pending.push(rest)
        break
      }
      const piece = chunk.subarray(start, nl)
      let line = this.pending.length === 0 ? piece : Buffer.concat([...this.pending, piece], this.pendingBytes + piece.length)
      this.pending = []
      this.pendingBytes = 0
      if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1)
      if (line.length > this.maxLineBytes) return this.overflow(lines)
      lines.push(line)
      start = nl + 1
    }
    return lines
  }

  /** Bytes held of an unterminated line. */
  get bufferedBytes(): number {
    return this.pendingBytes
  }

  private overflow(lines: Buffer[]): Buffer[] {
    this.overflowed = true
    this.pending = []
    this.pendingBytes = 0
    return lines
  }
}
