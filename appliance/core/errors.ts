/**
 * The errors of the AI-TCP core, one flat module of named classes.
 *
 * Every error carries a `transaction_id` that names the operation it belongs to (a packet, a
 * handshake, a client request) so that it can be found again in the VoV log. Callers pass one in
 * or one is generated. Bad arguments from local code throw `TypeError`, not these.
 *
 * Cryptographic failures are reported to local callers only: the protocol never tells a remote
 * peer why a packet was rejected (a rejected packet is dropped silently on the wire).
 */
import { randomBytes } from 'node:crypto'

/** A 16-hex-digit transaction ID. */
export function newTransactionId(): string {
  return randomBytes(8).toString('hex')
}

export interface KairoErrorOptions {
  transaction_id?: string
  cause?: unknown
}

export abstract class KairoError extends Error {
  /** Stable machine-readable code, e.g. `EAUTH`. */
  abstract readonly code: string
  readonly transaction_id: string

  constructor(message: string, options: KairoErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.transaction_id = options.transaction_id ?? newTransactionId()
  }

  toJSON(): { name: string; code: string; message: string; transaction_id: string } {
    return { name: this.name, code: this.code, message: this.message, transaction_id: this.transaction_id }
  }
}

/** Bytes that do not parse as what they claim to be: truncated, oversized, bad version, bad field. */
export class MalformedPacketError extends KairoError {
  readonly code = 'EMALFORMED'
  /** Byte offset or field name at fault, when known. */
  readonly field: string | undefined
  constructor(message: string, options: KairoErrorOptions & { field?: string } = {}) {
    super(message, options)
    this.field = options.field
  }
}

/** A tag, signature or identity binding did not verify. Never detailed to the remote side. */
export class AuthenticationError extends KairoError {
  readonly code = 'EAUTH'
}

/** A packet whose sequence number was already seen or is older than the replay window. */
export class ReplayError extends KairoError {
  readonly code = 'EREPLAY'
}

/** A session that is past its reject-after limits (time or message count) or was closed. */
export class SessionExpiredError extends KairoError {
  readonly code = 'ESESSIONEXPIRED'
}

/** A handshake message out of order, for the wrong pattern, or otherwise unusable. */
export class HandshakeError extends KairoError {
  readonly code = 'EHANDSHAKE'
}

/** Waiting for something (a handshake answer, an acknowledgement, a fragment) took too long. */
export class TimeoutError extends KairoError {
  readonly code = 'ETIMEDOUT'
}

/** The link or path under an operation went away before it finished. */
export class ConnectionLostError extends KairoError {
  readonly code = 'ECONNLOST'
}

/** A bounded resource (reassembly buffer, queue) refused more work rather than drop silently. */
export class ResourceLimitError extends KairoError {
  readonly code = 'ELIMIT'
}

/** A radio or device configuration was refused; `field` names the offending setting. */
export class ConfigRejectedError extends KairoError {
  readonly code = 'ECONFIG'
  readonly field: string
  constructor(message: string, options: KairoErrorOptions & { field: string }) {
    super(message, options)
    this.field = options.field
  }
}

/** The radio refused or failed an operation: `reason` is e.g. 'queue-full', 'busy', 'off', 'tx-failed'. */
export class RadioError extends KairoError {
  readonly code = 'ERADIO'
  readonly reason: string
  constructor(message: string, options: KairoErrorOptions & { reason: string }) {
    super(message, options)
    this.reason = options.reason
  }
}
