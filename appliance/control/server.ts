/**
 * The gateway's local administration socket: JSON-RPC 2.0 (protocol.ts), one JSON object per
 * line, over a Unix stream socket at <runtime_dir>/control.sock.
 *
 * Access control is the file system: the socket is mode 0660, group `kairo` when that group
 * exists (else root's group), in a runtime dir created 0750 (same group) when it is missing. So
 * root and members of group kairo may administer the gateway, nobody else.
 *
 * listen() refuses to take the socket from a running gateway: an existing socket file that
 * accepts a connection means "another kairo-gw is running"; one that refuses is stale and is
 * removed. A file at the path that is not a socket is never removed.
 *
 * Each connection is read line by line (LineSplitter). Requests are handled concurrently, up to
 * MAX_IN_FLIGHT per connection, and answered as they finish (clients match by id). A connection
 * stops being read while it has MAX_IN_FLIGHT requests running or while its client is not reading
 * what it was sent, so a client that floods or never reads holds a bounded amount of memory and
 * nobody else waits for it. A line longer than maxRequestBytes is answered with a -32600 (id null)
 * and that connection is closed. Handlers may throw or reject: the client gets the error
 * response (see protocol.ts errorObject), the server keeps going.
 */
import net from 'node:net'
import { promises as fsp } from 'node:fs'
import { dirname } from 'node:path'
import { ResourceLimitError } from '../core/errors.js'
import {
  INTERNAL_ERROR,
  INVALID_REQUEST,
  LineSplitter,
  encodeResponse,
  errorResponse,
  failureResponse,
  methodNotFoundResponse,
  parseRequest,
  successResponse,
  type JsonRpcId,
  type JsonRpcResponse,
} from './protocol.js'
import { peerCredentials } from '../system/peer-cred.js'

export interface ControlPeer {
  pid?: number
  uid?: number
  gid?: number
  /** The uid's name in /etc/passwd, when it has one. */
  user?: string
}

export interface ControlContext {
  /**
   * Credentials of the connected process, read once at accept with SO_PEERCRED (kairo-native:
   * appliance/system/peer-cred.ts). Empty when they cannot be had (the addon is not built): the
   * socket's 0660 mode and group are the access control; handlers record the peer, they do not
   * decide on it.
   */
  peer: ControlPeer
}

export type ControlHandler = (params: Record<string, unknown>, ctx: ControlContext) => unknown | Promise<unknown>

export interface ControlLogger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
}

export interface ControlServerOptions {
  /** Socket path, e.g. /run/kairo-gw/control.sock. */
  path: string
  handlers: Record<string, ControlHandler>
  /** Longest request line, bytes (without the '\n'). Default 1 MiB. */
  maxRequestBytes?: number
  /** Connections at once; one more is answered with a -32000 (ELIMIT) and closed. Default 64. */
  maxConnections?: number
  log?: ControlLogger
  /** Group given the socket (and a runtime dir listen() creates) when it exists. Default 'kairo'. */
  group?: string
  /** Where groups are looked up. Default /etc/group. */
  groupFile?: string
}

export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
export const DEFAULT_MAX_CONNECTIONS = 64
/** Requests one connection may have running at once before it stops being read. */
export const MAX_IN_FLIGHT = 32
/** Longest path a Unix socket address holds (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH_BYTES = 107
/** How long listen() waits for an existing socket to answer before calling it stale. */
const PROBE_TIMEOUT_MS = 1000

const silent: ControlLogger = { debug() {}, info() {}, warn() {} }

export class ControlServer {
  readonly path: string
  readonly maxRequestBytes: number
  readonly maxConnections: number
  private readonly handlers: Record<string, ControlHandler>
  private readonly methods: string[]
  private readonly log: ControlLogger
  private readonly group: string
  private readonly groupFile: string
  private server: net.Server | undefined
  private readonly connections = new Set<Connection>()
  private listening = false

  constructor(options: ControlServerOptions) {
    if (typeof options.path !== 'string' || options.path === '') throw new TypeError('ControlServer: path must be a non-empty string')
    this.path = options.path
    this.handlers = { ...options.handlers }
    this.methods = Object.keys(this.handlers).sort()
    this.maxRequestBytes = positiveInt(options.maxRequestBytes, DEFAULT_MAX_REQUEST_BYTES, 'maxRequestBytes')
    this.maxConnections = positiveInt(options.maxConnections, DEFAULT_MAX_CONNECTIONS, 'maxConnections')
    this.log = options.log ?? silent
    this.group = options.group ?? 'kairo'
    this.groupFile = options.groupFile ?? '/etc/group'
  }

  /** Number of open client connections. */
  get connectionCount(): number {
    return this.connections.size
  }

  async listen(): Promise<void> {
    if (this.server !== undefined) throw new Error(`control socket ${this.path}: listen() was already called`)
    const bytes = Buffer.byteLength(this.path)
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      throw new Error(`control socket path is ${bytes} bytes, longer than the ${MAX_SOCKET_PATH_BYTES} a Unix socket address holds: ${this.path}`)
    }
    const gid = await lookupGroup(this.groupFile, this.group)
    await this.prepareDir(gid)
    await this.clearStaleSocket()

    const server = net.createServer({ allowHalfOpen: false, pauseOnConnect: false }, (socket) => this.accept(socket))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE' ? new Error(`another kairo-gw is running (control socket ${this.path} appeared while starting)`, { cause: err }) : err)
      }
      server.once('error', onError)
      server.listen(this.path, () => {
        server.off('error', onError)
        resolve()
      })
    }).catch((err: unknown) => {
      this.server = undefined
      throw err
    })
    this.listening = true
    server.on('error', (err) => this.log.warn('control socket error', { path: this.path, error: err.message }))

    await fsp.chmod(this.path, 0o660)
    if (gid === undefined) {
      this.log.debug('control socket keeps its owner group', { path: this.path, reason: `no group ${this.group} in ${this.groupFile}` })
    } else if ((await fsp.stat(this.path)).gid !== gid) {
      // Under systemd the socket is born with the service's group (and chown is filtered out).
      try {
        await fsp.chown(this.path, -1, gid)
      } catch (err) {
        this.log.warn('could not give the control socket its group', { path: this.path, group: this.group, gid, error: (err as Error).message })
      }
    }
    this.log.info('control socket listening', { path: this.path })
  }

  /** Stops listening, drops every connection (requests still running are not answered) and removes the socket file. */
  async close(): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    for (const c of this.connections) c.destroy()
    this.connections.clear()
    if (this.listening) {
      this.listening = false
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
    await fsp.rm(this.path, { force: true })
  }

  // -------------------------------------------------------------------------------------------

  /** Creates the runtime dir 0750 (group `kairo` when it exists) when it is missing; an existing one is left as it is. */
  private async prepareDir(gid: number | undefined): Promise<void> {
    const dir = dirname(this.path)
    const created = await fsp.mkdir(dir, { recursive: true, mode: 0o750 })
    if (created === undefined) return
    await fsp.chmod(dir, 0o750)
    if (gid !== undefined) {
      try {
        await fsp.chown(dir, -1, gid)
      } catch (err) {
        this.log.warn('could not give the runtime dir its group', { dir, group: this.group, gid, error: (err as Error).message })
      }
    }
    this.log.debug('created runtime dir', { dir })
  }

  private async clearStaleSocket(): Promise<void> {
    let st
    try {
      st = await fsp.lstat(this.path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    if (!st.isSocket()) throw new Error(`${this.path} exists and is not a socket: not removing it (remove it or choose another runtime_dir)`)
    const probe = await probeSocket(this.path)
    if (probe === 'answers') throw new Error(`another kairo-gw is running (control socket ${this.path} answers)`)
    if (probe !== 'stale') throw new Error(`control socket ${this.path} exists and could not be probed (${probe}): not removing it`)
    this.log.info('removing stale control socket', { path: this.path })
    await fsp.rm(this.path, { force: true })
  }

  private accept(socket: net.Socket): void {
    socket.on('error', (err) => this.log.debug('control connection error', { error: err.message }))
    if (this.server === undefined) {
      socket.destroy()
      return
    }
    if (this.connections.size >= this.maxConnections) {
      const err = new ResourceLimitError(`too many control connections (${this.maxConnections}); try again later`)
      this.log.warn('control connection refused', { reason: err.message, transaction_id: err.transaction_id })
      socket.end(encodeResponse(errorResponse(null, err)), () => socket.destroy())
      return
    }
    const conn = new Connection(socket, this)
    this.connections.add(conn)
    socket.on('close', () => this.connections.delete(conn))
  }

  /** Runs one request line; resolves with the response to send, or undefined for none. */
  async handle(line: Buffer, ctx: ControlContext): Promise<JsonRpcResponse | undefined> {
    const parsed = parseRequest(line)
    if (!parsed.ok) {
      this.log.debug('control request refused', { code: parsed.response.error.code, reason: parsed.response.error.message })
      return parsed.response
    }
    const { id, method, params } = parsed.request
    const handler = Object.hasOwn(this.handlers, method) ? this.handlers[method] : undefined
    if (handler === undefined) {
      if (id === undefined) {
        this.log.debug('control notification for an unknown method ignored', { method })
        return undefined
      }
      return methodNotFoundResponse(id, method, this.methods)
    }
    try {
      const result = await handler(params, ctx)
      return id === undefined ? undefined : successResponse(id, result)
    } catch (err) {
      return this.failure(id, method, err)
    }
  }

  private failure(id: JsonRpcId | undefined, method: string, err: unknown): JsonRpcResponse | undefined {
    const response = errorResponse(id ?? null, err)
    const e = response.error
    if (e.code === INTERNAL_ERROR) {
      this.log.warn('control handler failed', {
        method,
        transaction_id: e.data?.transaction_id,
        error: err instanceof Error ? err.message : String(err),
        stack: err instanceof Error ? err.stack : undefined,
      })
    } else {
      this.log.debug('control request failed', { method, code: e.code, reason: e.message, ...e.data })
    }
    return id === undefined ? undefined : response
  }

  oversized(): string {
    return encodeResponse(failureResponse(null, INVALID_REQUEST, `request larger than ${this.maxRequestBytes} bytes`))
  }
}

/** One client connection: framing, in-flight limit, back-pressure. */
class Connection {
  private readonly splitter: LineSplitter
  private readonly queue: Buffer[] = []
  private inFlight = 0
  private closed = false
  private readonly ctx: ControlContext

  constructor(
    private readonly socket: net.Socket,
    private readonly server: ControlServer,
  ) {
    this.ctx = { peer: peerCredentials(socket) ?? {} }
    this.splitter = new LineSplitter(server.maxRequestBytes)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('drain', () => this.pump())
    socket.on('close', () => {
      this.closed = true
      this.queue.length = 0
    })
  }

  destroy(): void {
    this.closed = true
    this.queue.length = 0
    this.socket.destroy()
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return
    const lines = this.splitter.push(chunk)
    if (this.splitter.overflowed) {
      this.closed = true
      this.queue.length = 0
      this.socket.pause()
      this.socket.end(this.server.oversized(), () => this.socket.destroy())
      return
    }
    for (const line of lines) if (!isBlank(line)) this.queue.push(line)
    this.pump()
  }

  private pump(): void {
    while (!this.closed && this.queue.length > 0 && this.inFlight < MAX_IN_FLIGHT && !this.socket.writableNeedDrain) {
      const line = this.queue.shift()!
      this.inFlight++
      this.server
        .handle(line, this.ctx)
        .then((response) => {
          if (response !== undefined && !this.closed && this.socket.writable) this.socket.write(encodeResponse(response))
        })
        .catch(() => {
          // handle() does not reject; nothing a request does may take the server down
        })
        .finally(() => {
          this.inFlight--
          this.pump()
        })
    }
    if (this.closed) return
    const busy = this.queue.length > 0 || this.inFlight >= MAX_IN_FLIGHT || this.socket.writableNeedDrain
    if (busy && !this.socket.isPaused()) this.socket.pause()
    else if (!busy && this.socket.isPaused()) this.socket.resume()
  }
}

function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false
  return true
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`ControlServer: ${name} must be a positive integer, not ${String(value)}`)
  return value
}

/** The gid of `group` in a group(5) file, or undefined when the file or the group is not there. */
export async function lookupGroup(file: string, group: string): Promise<number | undefined> {
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch {
    return undefined
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':')
    if (fields[0] === group && fields.length >= 3) {
      const gid = Number(fields[2])
      if (Number.isSafeInteger(gid) && gid >= 0) return gid
    }
  }
  return undefined
}

/** 'answers' when something accepts a connection at `path`, 'stale' when nothing listens, else the error code. */
export function probeSocket(path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<'answers' | 'stale' | string> {
  return new Promise((resolve) => {
    const socket = net.createConnection(path)
    const done = (outcome: string) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(outcome)
    }
    // A listener that does not accept within the timeout is still a listener (its backlog is full).
    const timer = setTimeout(() => done('answers'), timeoutMs)
    socket.once('connect', () => done('answers'))
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') done('stale')
      else if (err.code === 'EAGAIN') done('answers')
      else done(err.code ?? err.message)
    })
  })
}
