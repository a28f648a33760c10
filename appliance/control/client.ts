/**
 * Client of the gateway's control socket (server.ts): JSON-RPC 2.0, one JSON object per line.
 *
 *   const client = await ControlClient.connect('/run/kairo-gw/control.sock', { timeoutMs: 5000 })
 *   try {
 *     const status = await client.call<Status>('status')
 *   } finally {
 *     await client.close()
 *   }
 *
 * Calls may be made concurrently on one connection: they are pipelined and matched by id.
 * How a call fails:
 * - the gateway answered with an error → ControlError (JSON-RPC code, message, data with
 *   kairo_code / transaction_id / field when the gateway sent them);
 * - no answer in time → TimeoutError (core errors) naming the method and the socket path; a late
 *   answer is dropped;
 * - the connection went away first → ConnectionLostError (core errors);
 * - connect() failed → ControlConnectError, saying what to do for a missing socket (ENOENT), a
 *   stale one (ECONNREFUSED) and a permission problem (EACCES/EPERM).
 * An error the gateway sends with id null (it could not read a request, e.g. one too large, or it
 * has too many connections) fails every call outstanding on the connection.
 */
import net from 'node:net'
import { ConnectionLostError, TimeoutError } from '../core/errors.js'
import { LineSplitter, type ControlErrorData, type JsonRpcId } from './protocol.js'

export const DEFAULT_TIMEOUT_MS = 10_000
/** Longest response line the client reads (a `messages` page can be large). */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

/** The gateway answered a call with a JSON-RPC error. */
export class ControlError extends Error {
  /** JSON-RPC error code: -32700, -32600, -32601, -32602, -32603, or -32000 for a KairoError. */
  readonly code: number
  readonly data: ControlErrorData | undefined
  /** The method called (undefined for an error the gateway sent with id null). */
  readonly method: string | undefined

  constructor(message: string, code: number, data: ControlErrorData | undefined, method: string | undefined) {
    super(message)
    this.name = 'ControlError'
    this.code = code
    this.data = data
    this.method = method
  }

  get kairo_code(): string | undefined {
    return this.data?.kairo_code
  }

  get transaction_id(): string | undefined {
    return this.data?.transaction_id
  }

  get field(): string | undefined {
    return this.data?.field
  }
}

/** connect() failed; `code` is the errno code (ENOENT, EACCES, ECONNREFUSED, ...). */
export class ControlConnectError extends Error {
  readonly code: string
  readonly path: string
  constructor(message: string, code: string, path: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'ControlConnectError'
    this.code = code
    this.path = path
  }
}

export interface ControlClientOptions {
  /** Connect timeout, and the default timeout of each call. Default 10 s. */
  timeoutMs?: number
  maxResponseBytes?: number
}

export interface CallOptions {
  timeoutMs?: number
}

interface Pending {
  method: string
  resolve(value: unknown): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

export class ControlClient {
  readonly path: string
  private readonly socket: net.Socket
  private readonly timeoutMs: number
  private readonly splitter: LineSplitter
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private closedError: Error | undefined

  private constructor(path: string, socket: net.Socket, options: ControlClientOptions) {
    this.path = path
    this.socket = socket
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.splitter = new LineSplitter(options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', () => {
      // 'close' follows and fails what is outstanding
    })
    socket.on('close', () => this.shutdown(new ConnectionLostError(`control socket ${path} closed`)))
  }

  static connect(path: string, options: ControlClientOptions = {}): Promise<ControlClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const bad = checkTimeout(timeoutMs)
    if (bad !== undefined) return Promise.reject(bad)
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(path)
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new TimeoutError(`connecting to gateway control socket ${path} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        socket.destroy()
        reject(connectError(path, err))
      })
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        resolve(new ControlClient(path, socket, options))
      })
    })
  }

  /** True once the connection is closed (by close() or by the gateway). */
  get closed(): boolean {
    return this.closedError !== undefined
  }

  /** Calls `method`; resolves with its result. See the module comment for how it fails. */
  call<T = unknown>(method: string, params: Record<string, unknown> = {}, options: CallOptions = {}): Promise<T> {
    if (typeof method !== 'string' || method === '') return Promise.reject(new TypeError('ControlClient.call: method must be a non-empty string'))
    if (typeof params !== 'object' || params === null || Array.isArray(params)) return Promise.reject(new TypeError('ControlClient.call: params must be an object'))
    const timeoutMs = options.timeoutMs ?? this.timeoutMs
    const bad = checkTimeout(timeoutMs)
    if (bad !== undefined) return Promise.reject(bad)
    if (this.closedError !== undefined) return Promise.reject(new ConnectionLostError(`control client for ${this.path} is closed; cannot call ${JSON.stringify(method)}`))
    let line: string
    const id = this.nextId++
    try {
      line = JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n'
    } catch (err) {
      return Promise.reject(new TypeError(`ControlClient.call: params of ${JSON.stringify(method)} cannot be encoded as JSON: ${(err as Error).message}`))
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new TimeoutError(`control call ${JSON.stringify(method)} on ${this.path} got no answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, timer })
      this.socket.write(line)
    })
  }

  /** Sends a notification: the gateway runs it and answers nothing, not even an error. */
  notify(method: string, params: Record<string, unknown> = {}): void {
    if (this.closedError !== undefined) throw new ConnectionLostError(`control client for ${this.path} is closed; cannot notify ${JSON.stringify(method)}`)
    this.socket.write(JSON.stringify({ jsonrpc: '2.0', method, params }) + '\n')
  }

  /** Closes the connection; calls still outstanding fail with ConnectionLostError. */
  async close(): Promise<void> {
    if (this.socket.destroyed) {
      this.shutdown(new ConnectionLostError(`control client for ${this.path} was closed`))
      return
    }
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()))
    this.shutdown(new ConnectionLostError(`control client for ${this.path} was closed`))
    this.socket.destroy()
    await closed
  }

  // -------------------------------------------------------------------------------------------

  private shutdown(err: Error): void {
    if (this.closedError === undefined) this.closedError = err
    for (const [id, p] of this.pending) {
      this.pending.delete(id)
      clearTimeout(p.timer)
      p.reject(err instanceof ConnectionLostError ? new ConnectionLostError(`control socket ${this.path} closed before answering ${JSON.stringify(p.method)}`) : err)
    }
  }

  private onData(chunk: Buffer): void {
    const lines = this.splitter.push(chunk)
    for (const line of lines) {
      if (line.length === 0) continue
      this.onLine(line)
    }
    if (this.splitter.overflowed) this.protocolViolation(`a response longer than ${this.splitter.maxLineBytes} bytes`)
  }

  private onLine(line: Buffer): void {
    let msg: unknown
    try {
      msg = JSON.parse(line.toString('utf8'))
    } catch {
      this.protocolViolation('a line that is not JSON')
      return
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      this.protocolViolation('a line that is not a JSON-RPC response')
      return
    }
    const r = msg as { id?: JsonRpcId; result?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } }
    const error = r.error
    if (r.id === null || r.id === undefined) {
      // The gateway could not tie the error to a request: every outstanding call shares it.
      const e = toControlError(error, undefined)
      for (const [id, p] of this.pending) {
        this.pending.delete(id)
        clearTimeout(p.timer)
        p.reject(toControlError(error, p.method) ?? e ?? new Error(`gateway control socket ${this.path} sent a response without id`))
      }
      return
    }
    if (typeof r.id !== 'number') return
    const p = this.pending.get(r.id)
    if (p === undefined) return // answered after its timeout
    this.pending.delete(r.id)
    clearTimeout(p.timer)
    if (error !== undefined) p.reject(toControlError(error, p.method) ?? new Error(`gateway control socket ${this.path} sent a malformed error for ${JSON.stringify(p.method)}`))
    else p.resolve(r.result)
  }

  private protocolViolation(what: string): void {
    const err = new Error(`gateway control socket ${this.path} sent ${what}; connection closed`)
    this.shutdown(err)
    this.socket.destroy()
  }
}

function toControlError(error: unknown, method: string | undefined): ControlError | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  const e = error as { code?: unknown; message?: unknown; data?: unknown }
  if (typeof e.code !== 'number' || typeof e.message !== 'string') return undefined
  let data: ControlErrorData | undefined
  if (typeof e.data === 'object' && e.data !== null && !Array.isArray(e.data)) {
    const d = e.data as Record<string, unknown>
    data = {}
    if (typeof d.kairo_code === 'string') data.kairo_code = d.kairo_code
    if (typeof d.transaction_id === 'string') data.transaction_id = d.transaction_id
    if (typeof d.field === 'string') data.field = d.field
  }
  return new ControlError(e.message, e.code, data, method)
}

/** The error connect() rejects with, saying what to do about it. */
export function connectError(path: string, err: NodeJS.ErrnoException): ControlConnectError {
  const code = err.code ?? 'EUNKNOWN'
  switch (code) {
    case 'ENOENT':
      return new ControlConnectError(`no gateway control socket at ${path}: is kairo-gw running? (start it with \`npx kairo-gw run\`)`, code, path, err)
    case 'EACCES':
    case 'EPERM':
      return new ControlConnectError(`permission denied on gateway control socket ${path}: you must be root or in group kairo`, code, path, err)
    case 'ECONNREFUSED':
      return new ControlConnectError(
        `gateway control socket ${path} refuses connections: kairo-gw is not running (the socket is stale) (start it with \`npx kairo-gw run\`)`,
        code,
        path,
        err,
      )
    case 'EAGAIN':
      return new ControlConnectError(`gateway control socket ${path} is not accepting connections (its backlog is full): kairo-gw is busy or hung`, code, path, err)
    case 'ENOTSOCK':
      return new ControlConnectError(`${path} is not a socket: is the control socket path right?`, code, path, err)
    default:
      return new ControlConnectError(`cannot connect to gateway control socket ${path}: ${err.message}`, code, path, err)
  }
}

function checkTimeout(ms: number): TypeError | undefined {
  if (typeof ms === 'number' && Number.isFinite(ms) && ms > 0) return undefined
  return new TypeError(`ControlClient: timeoutMs must be a positive number, not ${String(ms)}`)
}
