/**
 * The typed errors of the local client SDK (index.ts), and how a failure of the control socket
 * becomes one of them.
 *
 * Every error is a KairoSdkError with a stable `code` and, where the gateway gave one, the
 * `transactionId` under which the gateway recorded the failure (its VoV log and its own log name
 * the same ID): an agent that logs `err.transactionId` lets an operator find the whole story.
 *
 *   KairoSdkError               base: code, transactionId (also as transaction_id)
 *   ├ GatewayUnavailableError   no gateway at the socket, permission denied, the connection went
 *   │                           away, or the gateway did not answer in time (code EUNAVAILABLE)
 *   ├ InvalidRequestError       the request is wrong: `field` names the parameter (code EINVAL)
 *   ├ DeliveryFailedError       the gateway gave up on a message (code: the gateway's, or EDELIVERY)
 *   ├ MessageExpiredError       a message's TTL ran out before it was delivered (code EEXPIRED)
 *   ├ RefusedByPolicyError      the gateway's policy refused the request (kairo_code POLICY…)
 *   ├ OutboxFullError           the gateway's durable outbox is full: retry later (kairo_code ELIMIT)
 *   └ WaitTimeoutError          sendAndWait()'s own timeoutMs passed while the message was still
 *                               pending (the message stays queued in the gateway) (code ETIMEDOUT)
 *
 * Codes of the gateway (`data.kairo_code` of a -32000 error: EAUTH, ELIMIT, ETIMEDOUT, ...) are
 * kept as they are in `code`.
 */
import { ConnectionLostError, TimeoutError } from '../core/errors.js'
import { ControlConnectError, ControlError } from '../control/client.js'

export interface KairoSdkErrorOptions {
  transactionId?: string | undefined
  cause?: unknown
}

export class KairoSdkError extends Error {
  /** Stable machine-readable code: EUNAVAILABLE, EINVAL, EEXPIRED, ... or the gateway's kairo_code. */
  readonly code: string
  /** The gateway's transaction ID for this failure, when it gave one. */
  readonly transactionId: string | undefined

  constructor(message: string, code: string, options: KairoSdkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.transactionId = options.transactionId
  }

  /** The same as transactionId, spelled as on the wire. */
  get transaction_id(): string | undefined {
    return this.transactionId
  }

  toJSON(): { name: string; code: string; message: string; transaction_id?: string } {
    return { name: this.name, code: this.code, message: this.message, ...(this.transactionId !== undefined ? { transaction_id: this.transactionId } : {}) }
  }
}

/** No gateway to talk to: see `reason` (ENOENT, EACCES, ECONNREFUSED, ETIMEDOUT, ECONNLOST, ...). */
export class GatewayUnavailableError extends KairoSdkError {
  /** The control socket path. */
  readonly socket: string
  /** What went wrong: the errno code of connect(), ETIMEDOUT or ECONNLOST. */
  readonly reason: string
  constructor(message: string, socket: string, reason: string, options: KairoSdkErrorOptions = {}) {
    super(message, 'EUNAVAILABLE', options)
    this.socket = socket
    this.reason = reason
  }
}

/** The request was refused as malformed; `field` names the parameter (to, type, ttl_s, ...). */
export class InvalidRequestError extends KairoSdkError {
  readonly field: string | undefined
  constructor(message: string, field: string | undefined, options: KairoSdkErrorOptions = {}) {
    super(message, 'EINVAL', options)
    this.field = field
  }
}

/** The gateway gave up delivering a message. `messageId` is the message; `transactionId` the failure's. */
export class DeliveryFailedError extends KairoSdkError {
  readonly messageId: string
  constructor(message: string, messageId: string, code = 'EDELIVERY', options: KairoSdkErrorOptions = {}) {
    super(message, code, options)
    this.messageId = messageId
  }
}

/** The message's TTL ran out before the destination acknowledged it. */
export class MessageExpiredError extends KairoSdkError {
  readonly messageId: string
  readonly attempts: number
  constructor(message: string, messageId: string, attempts: number, options: KairoSdkErrorOptions = {}) {
    super(message, 'EEXPIRED', options)
    this.messageId = messageId
    this.attempts = attempts
  }
}

/** The gateway's policy refused the request (a kairo_code starting with POLICY or EPOLICY). */
export class RefusedByPolicyError extends KairoSdkError {}

/** The gateway's durable outbox is full (or the message is larger than it takes): retry later. */
export class OutboxFullError extends KairoSdkError {}

/** sendAndWait() gave up waiting; the message is still queued in the gateway. */
export class WaitTimeoutError extends KairoSdkError {
  readonly messageId: string
  constructor(message: string, messageId: string, options: KairoSdkErrorOptions = {}) {
    super(message, 'ETIMEDOUT', options)
    this.messageId = messageId
  }
}

/** True for a kairo_code the gateway's policy uses. */
export function isPolicyCode(code: string): boolean {
  return /^E?POLICY/i.test(code)
}

/**
 * The typed error for whatever a control call (or connect) threw. `socket` names the socket for
 * the unavailable case. Errors already typed pass through; anything unknown becomes a
 * KairoSdkError with code EINTERNAL, the original as its cause.
 */
export function toSdkError(err: unknown, socket: string): KairoSdkError {
  if (err instanceof KairoSdkError) return err
  if (err instanceof ControlConnectError) return new GatewayUnavailableError(err.message, socket, err.code, { cause: err })
  if (err instanceof TimeoutError) return new GatewayUnavailableError(err.message, socket, 'ETIMEDOUT', { cause: err, transactionId: err.transaction_id })
  if (err instanceof ConnectionLostError) return new GatewayUnavailableError(`${err.message} (did kairo-gw stop or restart?)`, socket, 'ECONNLOST', { cause: err })
  if (err instanceof ControlError) return fromControlError(err)
  if (err instanceof Error) return new KairoSdkError(err.message, 'EINTERNAL', { cause: err })
  return new KairoSdkError(String(err), 'EINTERNAL')
}

/** The typed error for an error the gateway answered with. */
export function fromControlError(err: ControlError): KairoSdkError {
  const transactionId = err.transaction_id
  const opts = { transactionId, cause: err }
  if (err.code === -32602) return new InvalidRequestError(err.message, err.field, opts)
  if (err.code === -32601) return new KairoSdkError(`${err.message} (is the gateway older than this SDK?)`, 'ENOMETHOD', opts)
  if (err.code === -32000) {
    const code = err.kairo_code ?? 'EKAIRO'
    if (isPolicyCode(code)) return new RefusedByPolicyError(err.message, code, opts)
    if (code === 'EOUTBOXFULL' || (code === 'ELIMIT' && /\boutbox\b/i.test(err.message))) return new OutboxFullError(err.message, code, opts)
    return new KairoSdkError(err.message, code, opts)
  }
  if (err.code === -32603) return new KairoSdkError(`the gateway failed internally (${err.message}); its log names the transaction`, 'EINTERNAL', opts)
  return new KairoSdkError(err.message, `EJSONRPC${err.code}`, opts)
}
