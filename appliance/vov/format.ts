/**
 * The VoV ("Vantage of View") audit log line format: how one entry is laid out, what is hashed,
 * what is signed, and the strict parser every reader (the verifier, `log tail`, the writer's
 * recovery at open) goes through. docs/vov-log.md is the specification; this file implements it.
 *
 * One entry is one line of UTF-8 JSON ending in "\n", with the fields in this fixed order:
 *
 *   {"v":1,"seq":N,"id":"UUID","ts":"YYYY-MM-DDTHH:MM:SS.mmmZ","type":"T","prev":"64 hex",
 *    "key":"16 hex | identity","data":{...},"sig":"128 hex"}
 *
 * The header fields (v .. key) and sig have fixed spellings (digits and lower-case hex only), so
 * a reader in any language can take them apart with one regular expression; `data` is the JSON
 * object as written and is never re-serialised by a verifier, so nothing depends on how a JSON
 * library formats numbers or orders keys.
 *
 *  - signed bytes:  SIGN_CONTEXT || (the line without its `,"sig":"…"` suffix, closed by `}`)
 *  - entry hash:    SHA-256 of the whole line (sig included, the "\n" excluded), lower-case hex;
 *                   the next entry's `prev`. The genesis entry's prev is 64 zeros.
 *  - key id:        the first 8 bytes of SHA-256(Ed25519 public key), 16 lower-case hex digits;
 *                   `identity` for entries signed by the node identity key.
 *
 * Parsing never throws: `parseLine` returns the entry or a one-line reason naming the field.
 */
import { createHash } from 'node:crypto'
import sodium from 'sodium-native'

/** Format version, the first field of every line. */
export const FORMAT_VERSION = 1
/** Domain separation for every signature over an entry. */
export const SIGN_CONTEXT = Buffer.from('kairo/vov-entry/v1', 'ascii')
/** `prev` of the genesis entry. */
export const ZERO_HASH = '0'.repeat(64)
/** `key` of entries signed by the node identity key. */
export const IDENTITY_KEY_ID = 'identity'
/** The longest line a reader accepts, bytes (without the newline). */
export const MAX_LINE_BYTES = 256 * 1024
/** The largest `data` a writer stores as given, bytes of JSON; larger data is summarised. */
export const MAX_DATA_BYTES = 64 * 1024
/** Event types written by the log itself, signed by the node identity. */
export const IDENTITY_TYPES = new Set(['genesis', 'file_opened', 'key_rotated'])
/** Event types the log writes itself; `append()` refuses them. */
export const RESERVED_TYPES = new Set([...IDENTITY_TYPES, 'log_recovered'])
/** An event type: lower-case letters, digits and `_`, starting with a letter, 1-64 characters. */
export const TYPE_RE = /^[a-z][a-z0-9_]{0,63}$/
/** Names of log files: vov-<first seq, 16 digits>.jsonl. */
export const FILE_NAME_RE = /^vov-(\d{16})\.jsonl$/
/** The largest seq a line may carry (2^53 - 1, exact in every JSON reader that uses doubles). */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER

/** The file name for a log file whose first entry has `seq`. */
export function fileNameFor(seq: number): string {
  return `vov-${String(seq).padStart(16, '0')}.jsonl`
}

/** The key id of an Ed25519 public key: first 8 bytes of its SHA-256, hex. */
export function keyIdOf(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest().subarray(0, 8).toString('hex')
}

// libsodium's SHA-256 (not in the project's sodium-native typings): a third of node:crypto's
// per-call cost for a line-sized input, which matters at tens of thousands of entries a second.
const sha256Into = (sodium as unknown as { crypto_hash_sha256(out: Uint8Array, input: Uint8Array): void }).crypto_hash_sha256
const hashOut = Buffer.alloc(32)

/** SHA-256 of a line's bytes (without the newline), hex: the entry hash. */
export function entryHash(line: Uint8Array): string {
  sha256Into(hashOut, line)
  return hashOut.toString('hex')
}

/** `,"sig":"` + 128 hex + `"}`: the fixed suffix of every line. */
export const SIG_SUFFIX_BYTES = 8 + 128 + 2
const SIG_SUFFIX_RE = /,"sig":"([0-9a-f]{128})"\}$/

/** The bytes a signature covers, for a complete line (without newline). */
export function signedBytes(line: Uint8Array): Buffer {
  const body = line.subarray(0, line.length - SIG_SUFFIX_BYTES)
  const out = Buffer.allocUnsafe(SIGN_CONTEXT.length + body.length + 1)
  SIGN_CONTEXT.copy(out, 0)
  out.set(body, SIGN_CONTEXT.length)
  out[out.length - 1] = 0x7d // '}'
  return out
}

/** A certified log-signing key as it appears in genesis, file_opened and key_rotated data. */
export interface LogKeyCert {
  key_id: string
  public_key: string
  created_at: string
  expires_at: string
}

/** One parsed line. `raw` is the line's bytes (no newline); `hash` its entry hash. */
export interface VovEntry {
  v: number
  seq: number
  id: string
  ts: string
  /** `ts` in ms since the epoch. */
  tsMs: number
  type: string
  prev: string
  key: string
  data: Record<string, unknown>
  sig: Buffer
  raw: Buffer
  hash: string
}

export type ParseResult = { ok: true; entry: VovEntry } | { ok: false; reason: string }

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Header fields in order: name and the pattern of the value as written. */
const HEADER: readonly [string, RegExp, string][] = [
  ['v', /1(?=,)/y, 'the format version 1'],
  ['seq', /(?:0|[1-9][0-9]{0,15})(?=,)/y, 'a whole number without leading zeros'],
  ['id', /"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"/y, 'a lower-case UUID in quotes'],
  ['ts', /"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/y, 'an ISO-8601 UTC time YYYY-MM-DDTHH:MM:SS.mmmZ in quotes'],
  ['type', /"[a-z][a-z0-9_]{0,63}"/y, 'an event type (a-z, 0-9, _) in quotes'],
  ['prev', /"[0-9a-f]{64}"/y, 'a SHA-256 hash, 64 lower-case hex digits in quotes'],
  ['key', /"(?:[0-9a-f]{16}|identity)"/y, 'a key id (16 lower-case hex digits) or "identity" in quotes'],
]

function preview(s: string, at: number): string {
  const bit = s.slice(at, at + 24)
  return JSON.stringify(bit) + (s.length > at + 24 ? '…' : '')
}

/**
 * Parses one line (bytes without the newline). Checks the layout, the field values and that
 * `data` is a JSON object; does not check the signature or the chain (the verifier does).
 */
export function parseLine(raw: Buffer): ParseResult {
  const fail = (reason: string): ParseResult => ({ ok: false, reason })
  if (raw.length === 0) return fail('empty line')
  if (raw.length > MAX_LINE_BYTES) return fail(`line is ${raw.length} bytes, over the limit of ${MAX_LINE_BYTES}`)
  let text: string
  try {
    text = utf8.decode(raw)
  } catch {
    return fail('not valid UTF-8')
  }
  if (!text.startsWith('{')) return fail(`not a VoV entry: a line starts with {, found ${preview(text, 0)}`)
  let at = 1
  const values: string[] = []
  for (let i = 0; i < HEADER.length; i++) {
    const [name, re, what] = HEADER[i]!
    const label = `${i === 0 ? '' : ','}"${name}":`
    if (!text.startsWith(label, at)) return fail(`expected field ${name} (${JSON.stringify(label)}) at byte ${at}, found ${preview(text, at)}: fields are v, seq, id, ts, type, prev, key, data, sig in this order`)
    at += label.length
    re.lastIndex = at
    const m = re.exec(text)
    if (m === null) return fail(`field ${name}: expected ${what}, found ${preview(text, at)}`)
    values.push(m[0].startsWith('"') ? m[0].slice(1, -1) : m[0])
    at += m[0].length
  }
  if (!text.startsWith(',"data":', at)) return fail(`expected field data (",\\"data\\":") at byte ${at}, found ${preview(text, at)}`)
  at += 8
  const sm = SIG_SUFFIX_RE.exec(text)
  if (sm === null) return fail('the line does not end with ,"sig":"<128 lower-case hex digits>"}')
  const dataEnd = text.length - SIG_SUFFIX_BYTES // the suffix is ASCII: chars and bytes agree at the end
  if (dataEnd <= at) return fail('field data: missing')
  const dataText = text.slice(at, dataEnd)
  if (!dataText.startsWith('{')) return fail(`field data: expected a JSON object, found ${preview(dataText, 0)}`)
  let data: unknown
  try {
    data = JSON.parse(dataText)
  } catch (err) {
    return fail(`field data: not valid JSON (${(err as Error).message})`)
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return fail('field data: expected a JSON object')
  const seq = Number(values[1])
  if (seq > MAX_SEQ) return fail(`field seq: ${values[1]} is over 2^53-1`)
  const ts = values[3]!
  const tsMs = Date.parse(ts)
  if (!Number.isFinite(tsMs) || new Date(tsMs).toISOString() !== ts) return fail(`field ts: ${ts} is not a real time`)
  return {
    ok: true,
    entry: {
      v: 1,
      seq,
      id: values[2]!,
      ts,
      tsMs,
      type: values[4]!,
      prev: values[5]!,
      key: values[6]!,
      data: data as Record<string, unknown>,
      sig: Buffer.from(sm[1]!, 'hex'),
      raw,
      hash: entryHash(raw),
    },
  }
}

/** The header part of a line, up to and including `"data":`, as the writer produces it. */
export function headerText(seq: number, id: string, ts: string, type: string, prev: string, key: string): string {
  return `{"v":1,"seq":${seq},"id":"${id}","ts":"${ts}","type":"${type}","prev":"${prev}","key":"${key}","data":`
}

/** Checks a log key certificate object from genesis/file_opened/key_rotated data; reason or null. */
export function logKeyProblem(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'log_key is not an object'
  const c = v as Record<string, unknown>
  if (typeof c.public_key !== 'string' || !/^[0-9a-f]{64}$/.test(c.public_key)) return 'log_key.public_key is not 64 lower-case hex digits'
  if (typeof c.key_id !== 'string' || c.key_id !== keyIdOf(Buffer.from(c.public_key, 'hex'))) return 'log_key.key_id is not the key id of log_key.public_key'
  for (const f of ['created_at', 'expires_at'] as const) {
    const t = c[f]
    if (typeof t !== 'string' || !Number.isFinite(Date.parse(t)) || new Date(Date.parse(t)).toISOString() !== t) return `log_key.${f} is not an ISO-8601 UTC time`
  }
  return null
}
