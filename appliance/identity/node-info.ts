/**
 * The node's UUID: the operator's handle for a gateway, kept in `<state-dir>/node.json`.
 *
 * The node ID (32 hex digits) is derived from the Ed25519 identity key and cannot be chosen; the
 * UUID can. `KAIRO_NODE_ID`, when set to a non-empty value, is the UUID (so a fleet inventory can
 * name its gateways before they first start); otherwise a random version 4 UUID is generated on
 * first start and kept. Either way it is stored, so the UUID survives restarts, kill -9 and an
 * environment that later loses the variable.
 *
 * File: one JSON object, mode 0600, replaced atomically (files.ts):
 *
 *     {"version":1,"uuid":"<lower-case UUID>","source":"KAIRO_NODE_ID"|"generated",
 *      "created_at":"<ISO>","changed_from":"<UUID>","changed_at":"<ISO>"}
 *
 * (`changed_*` only after a change.) Rules:
 *  - KAIRO_NODE_ID is validated as RFC 4122 / RFC 9562 UUID text (parseUuid) and lower-cased; a
 *    bad value is an error naming KAIRO_NODE_ID and the value. Nothing is written then.
 *  - When KAIRO_NODE_ID differs from the stored UUID, the environment wins: the file is rewritten
 *    and `changedFrom` carries the old UUID, for the caller to record (VoV log).
 *  - A file that cannot be read or parsed is an error naming the file and what is wrong. It is
 *    never regenerated silently: a new UUID would make the gateway a stranger to its inventory.
 *    The operator repairs or deletes it.
 *  - First creation is exclusive (createFileExclusiveSync): two processes starting at once agree
 *    on one UUID.
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { IdentityFileError, createFileExclusiveSync, describe, isIsoUtc, isoUtc, parseJsonObject, readSmallFileSync, writeFileAtomicSync } from './files.js'

export const NODE_INFO_FILE = 'node.json'
/** The environment variable whose value, when set, is the node's UUID. */
export const NODE_ID_ENV = 'KAIRO_NODE_ID'
/** node.json is tiny; anything larger is not one. */
const MAX_NODE_INFO_BYTES = 64 * 1024

const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * Why `text` is not a UUID, or undefined when it is one: 8-4-4-4-12 hex digits (either case),
 * version digit 1..8 (RFC 4122 versions 1-5, RFC 9562 versions 6-8), variant bits 10 (RFC 4122;
 * the third group's first digit 8, 9, a or b). The nil and max UUIDs are refused: they name no node.
 */
export function uuidProblem(text: string): string | undefined {
  if (!UUID_TEXT.test(text)) return 'is not a UUID (expected 8-4-4-4-12 hex digits, e.g. 0f8fad5b-d9cb-469f-a165-70867728950e)'
  const lower = text.toLowerCase()
  if (lower === '00000000-0000-0000-0000-000000000000') return 'is the nil UUID, which names no node'
  if (lower === 'ffffffff-ffff-ffff-ffff-ffffffffffff') return 'is the max UUID, which names no node'
  const version = lower[14]!
  if (version < '1' || version > '8') return `has version ${version}; an RFC 4122/9562 UUID has version 1..8 (the first digit of the third group)`
  const variant = lower[19]!
  if (!'89ab'.includes(variant)) return `has variant digit ${variant}; an RFC 4122 UUID has 8, 9, a or b as the first digit of the fourth group`
  return undefined
}

/** True for UUID text that uuidProblem accepts. */
export function isUuid(text: string): boolean {
  return uuidProblem(text) === undefined
}

/** The lower-case form of a UUID; TypeError naming `what` and the value otherwise. */
export function parseUuid(text: string, what = 'UUID'): string {
  const problem = uuidProblem(text)
  if (problem !== undefined) throw new TypeError(`${what}=${JSON.stringify(text)} ${problem}`)
  return text.toLowerCase()
}

export interface NodeInfo {
  /** The node's UUID, lower case. */
  uuid: string
  /** True when this call created node.json. */
  created: boolean
  /** The file: <stateDir>/node.json. */
  file: string
  /** The UUID stored before this call, when KAIRO_NODE_ID replaced it. */
  changedFrom?: string
  /** Where the UUID came from: KAIRO_NODE_ID (now or when it was stored) or generated here. */
  source: 'KAIRO_NODE_ID' | 'generated'
}

interface Stored {
  uuid: string
  source: 'KAIRO_NODE_ID' | 'generated'
  created_at: string
}

function parseNodeInfo(file: string, text: string): Stored {
  const o = parseJsonObject(file, text)
  if (o.version !== 1) throw new IdentityFileError(file, 'version', o.version === undefined ? 'is missing; expected 1' : `is ${describe(o.version)}; expected 1`)
  if (typeof o.uuid !== 'string') throw new IdentityFileError(file, 'uuid', o.uuid === undefined ? 'is missing' : `is ${describe(o.uuid)}; expected a UUID string`)
  const problem = uuidProblem(o.uuid)
  if (problem !== undefined) throw new IdentityFileError(file, 'uuid', `${JSON.stringify(o.uuid)} ${problem}`)
  const source = o.source ?? 'generated'
  if (source !== 'KAIRO_NODE_ID' && source !== 'generated') throw new IdentityFileError(file, 'source', `is ${describe(source)}; expected "KAIRO_NODE_ID" or "generated"`)
  const createdAt = o.created_at ?? ''
  if (createdAt !== '' && (typeof createdAt !== 'string' || !isIsoUtc(createdAt))) throw new IdentityFileError(file, 'created_at', `is ${describe(createdAt)}; expected an ISO 8601 UTC timestamp`)
  return { uuid: o.uuid.toLowerCase(), source, created_at: createdAt as string }
}

/** Reads `<stateDir>/node.json` without creating anything: undefined when there is none. */
export function readNodeInfo(stateDir: string): { uuid: string; source: 'KAIRO_NODE_ID' | 'generated'; file: string } | undefined {
  const file = join(stateDir, NODE_INFO_FILE)
  const got = readSmallFileSync(file, MAX_NODE_INFO_BYTES)
  if (got === undefined) return undefined
  const s = parseNodeInfo(file, got.text)
  return { uuid: s.uuid, source: s.source, file }
}

function render(fields: Record<string, unknown>): string {
  return `${JSON.stringify({ version: 1, ...fields })}\n`
}

/**
 * The node's UUID from `<stateDir>/node.json`, creating the file (and the directory, 0700) on
 * first start. `opts.envUuid` is the value of KAIRO_NODE_ID (undefined or '' when unset).
 */
export function loadOrCreateNodeInfo(stateDir: string, opts: { envUuid?: string; now?: () => number } = {}): NodeInfo {
  const file = join(stateDir, NODE_INFO_FILE)
  const now = opts.now ?? Date.now
  const env = opts.envUuid === undefined || opts.envUuid === '' ? undefined : parseUuid(opts.envUuid, NODE_ID_ENV)

  for (let tries = 0; ; tries++) {
    const got = readSmallFileSync(file, MAX_NODE_INFO_BYTES)
    if (got !== undefined) {
      const stored = parseNodeInfo(file, got.text)
      if (env === undefined || env === stored.uuid) return { uuid: stored.uuid, created: false, file, source: env === undefined ? stored.source : 'KAIRO_NODE_ID' }
      const at = isoUtc(now())
      writeFileAtomicSync(file, render({ uuid: env, source: 'KAIRO_NODE_ID', created_at: stored.created_at || at, changed_from: stored.uuid, changed_at: at }))
      return { uuid: env, created: false, file, changedFrom: stored.uuid, source: 'KAIRO_NODE_ID' }
    }
    const uuid = env ?? randomUUID()
    const source = env === undefined ? 'generated' : 'KAIRO_NODE_ID'
    if (createFileExclusiveSync(file, render({ uuid, source, created_at: isoUtc(now()) }))) return { uuid, created: true, file, source }
    // Another process created it between our read and our create: read theirs (once more at most).
    if (tries >= 1) throw new IdentityFileError(file, '', 'appeared and vanished while being created; is another process deleting it?')
  }
}
