/**
 * The coordination log: one line per coordination event (peer admitted, removed or refused,
 * mesh IP assigned, address conflict resolved) in `CoordinationNode_YYYYMMDD.log`, a file per
 * day in a configurable time zone (the KAIRO default is JST, Asia/Tokyo). It is the operator's
 * plain-text view; the VoV log holds the same events signed and chained.
 *
 * Line format (docs/identity.md):
 *
 *     2026-11-23T18:04:05.123+09:00 peer_admitted {"node_id":"9f...","uuid":"...","mesh_ip":"100.64.7.12"}
 *
 * the local time with milliseconds and the zone's UTC offset (ISO 8601), one space, the event
 * name ([a-z][a-z0-9_]*), one space, the fields as one JSON object (keys in the order given;
 * Uint8Array values as lower-case hex; undefined values left out), then "\n". JSON keeps a line a
 * line (newlines inside values are escaped) and stays greppable: `grep ' peer_refused ' *.log`,
 * or `cut -d' ' -f3- | jq` for the fields. The day of the file is the day of the line's own
 * timestamp in the configured zone.
 *
 * Writes are synchronous (the events are rare): open with O_APPEND, one write of the whole line,
 * fdatasync, close. O_APPEND makes concurrent writers' lines whole. If a crash tore the last line
 * of a file, the first write this process makes to that file starts with a newline, so the torn
 * piece stays on its own line. Files 0600, the directory 0700 when created here.
 */
import { closeSync, constants, fdatasyncSync, fstatSync, openSync, readSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { FILE_MODE, ensureDirSync } from './files.js'

/** The events the gateway writes. */
export const COORDINATION_EVENTS = ['peer_admitted', 'peer_removed', 'peer_refused', 'ip_assigned', 'conflict_resolved'] as const
export type CoordinationEvent = (typeof COORDINATION_EVENTS)[number]

/** The KAIRO default zone. */
export const DEFAULT_TIME_ZONE = 'Asia/Tokyo'

const EVENT_NAME = /^[a-z][a-z0-9_]{0,63}$/

const formatters = new Map<string, Intl.DateTimeFormat>()

/**
 * The formatter for an IANA zone name; RangeError naming the zone when the runtime does not know
 * it. Only names that Intl resolves to an IANA zone (or UTC) are taken: no offsets like "+09:00".
 */
function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone)
  if (f !== undefined) return f
  if (typeof timeZone !== 'string' || timeZone === '' || /^[+-]/.test(timeZone)) throw new RangeError(`unknown time zone ${JSON.stringify(timeZone)}: expected an IANA name such as Asia/Tokyo, Europe/Berlin or UTC`)
  try {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    })
  } catch {
    throw new RangeError(`unknown time zone ${JSON.stringify(timeZone)}: expected an IANA name such as Asia/Tokyo, Europe/Berlin or UTC`)
  }
  formatters.set(timeZone, f)
  return f
}

/** Throws RangeError naming `timeZone` unless it is a time zone this runtime knows. */
export function checkTimeZone(timeZone: string): void {
  formatterFor(timeZone)
}

interface ZoneParts {
  year: number
  month: number
  day: number
  hour: number
  minute: number
  second: number
  /** UTC offset in seconds (local - UTC). */
  offset: number
}

const MIN_MS = new Date(0).setUTCFullYear(1, 0, 2) // a day of margin: year 1 stays year 1 in every zone
const MAX_MS = Date.UTC(9999, 11, 30)

function zoneParts(ms: number, timeZone: string): ZoneParts {
  const f = formatterFor(timeZone)
  if (!Number.isFinite(ms) || ms < MIN_MS || ms > MAX_MS) throw new RangeError(`time ${ms} is outside the years 0001..9999`)
  const whole = Math.floor(ms / 1000) * 1000
  const p: Record<string, string> = {}
  for (const part of f.formatToParts(new Date(whole))) p[part.type] = part.value
  const n = (k: string): number => Number(p[k])
  const year = n('year')
  const month = n('month')
  const day = n('day')
  const hour = n('hour')
  const minute = n('minute')
  const second = n('second')
  // Not Date.UTC(year, ...): it maps years 0..99 to 1900..1999; setUTCFullYear does not.
  const d = new Date(0)
  d.setUTCFullYear(year, month - 1, day)
  d.setUTCHours(hour, minute, second, 0)
  const offset = Math.round((d.getTime() - whole) / 1000)
  return { year, month, day, hour, minute, second, offset }
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0')
}

function offsetText(offset: number): string {
  const sign = offset < 0 ? '-' : '+'
  const a = Math.abs(offset)
  const h = Math.floor(a / 3600)
  const m = Math.floor((a % 3600) / 60)
  const s = a % 60
  // Offsets with seconds exist only for local mean times before ~1900; ISO 8601 has no seconds there.
  return s === 0 ? `${sign}${pad(h)}:${pad(m)}` : `${sign}${pad(h)}:${pad(m)}:${pad(s)}`
}

/**
 * `ms` (Unix ms) as ISO 8601 local time in `timeZone` with milliseconds and the zone's offset,
 * e.g. 2026-11-23T18:04:05.123+09:00. RangeError for an unknown zone (named) or a time outside
 * the years 0001..9999.
 */
export function formatIsoInZone(ms: number, timeZone: string): string {
  const z = zoneParts(ms, timeZone)
  const millis = ((ms % 1000) + 1000) % 1000
  return `${pad(z.year, 4)}-${pad(z.month)}-${pad(z.day)}T${pad(z.hour)}:${pad(z.minute)}:${pad(z.second)}.${pad(Math.floor(millis), 3)}${offsetText(z.offset)}`
}

/** YYYYMMDD of `ms` in `timeZone`. */
export function dayInZone(ms: number, timeZone: string): string {
  const z = zoneParts(ms, timeZone)
  return `${pad(z.year, 4)}${pad(z.month)}${pad(z.day)}`
}

/** The file name for the day of `ms` in `timeZone`. */
export function coordinationFileName(ms: number, timeZone: string): string {
  return `CoordinationNode_${dayInZone(ms, timeZone)}.log`
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')
  if (typeof value === 'bigint') return value.toString()
  // Buffer.toJSON runs before the replacer sees a Buffer: turn its {type,data} into hex too.
  if (typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data) && Object.keys(value).length === 2) {
    return Buffer.from((value as { data: number[] }).data).toString('hex')
  }
  return value
}

/** One line without its newline: `<timestamp> <event> <json>`. TypeError for a bad event name or fields. */
export function formatCoordinationLine(ms: number, timeZone: string, event: string, fields: Record<string, unknown>): string {
  if (typeof event !== 'string' || !EVENT_NAME.test(event)) throw new TypeError(`coordination event must match [a-z][a-z0-9_]* (at most 64 characters), got ${JSON.stringify(event)}`)
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) throw new TypeError('coordination event fields must be an object')
  let json: string
  try {
    json = JSON.stringify(fields, jsonReplacer)
  } catch (err) {
    throw new TypeError(`coordination event ${event}: fields cannot be written as JSON: ${(err as Error).message}`)
  }
  return `${formatIsoInZone(ms, timeZone)} ${event} ${json}`
}

export interface CoordinationLine {
  /** The timestamp as written. */
  ts: string
  /** Unix ms of the timestamp. */
  ms: number
  event: string
  fields: Record<string, unknown>
}

const LINE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}(?::\d{2})?) ([a-z][a-z0-9_]{0,63}) (\{.*\})$/

/**
 * Parses one line (without its newline). Error messages say what is wrong; the caller adds the
 * file and line number (`parseCoordinationLog` does).
 */
export function parseCoordinationLine(line: string): CoordinationLine {
  const m = LINE.exec(line)
  if (m === null) throw new SyntaxError('not a coordination line (expected "<ISO timestamp> <event> <JSON object>")')
  const ts = m[1]!
  let ms: number
  if (ts.length > 29) {
    // An offset with seconds (local mean time, before ~1900): Date.parse does not take those.
    const sign = ts[23] === '-' ? -1 : 1
    const [h, mi, se] = ts.slice(24).split(':').map(Number) as [number, number, number]
    ms = Date.parse(`${ts.slice(0, 23)}Z`) - sign * (h * 3600 + mi * 60 + se) * 1000
  } else {
    ms = Date.parse(ts)
  }
  if (!Number.isFinite(ms)) throw new SyntaxError(`bad timestamp ${JSON.stringify(ts)}`)
  let fields: unknown
  try {
    fields = JSON.parse(m[3]!)
  } catch (err) {
    throw new SyntaxError(`fields are not valid JSON: ${(err as Error).message}`)
  }
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) throw new SyntaxError('fields are not a JSON object')
  return { ts, ms, event: m[2]!, fields: fields as Record<string, unknown> }
}

/** Parses a whole file's text: the lines, and each bad line's number (1-based) and reason. */
export function parseCoordinationLog(file: string, text: string): { lines: CoordinationLine[]; bad: Array<{ file: string; line: number; reason: string }> } {
  const lines: CoordinationLine[] = []
  const bad: Array<{ file: string; line: number; reason: string }> = []
  const rows = text.split('\n')
  if (rows.at(-1) === '') rows.pop()
  rows.forEach((row, i) => {
    try {
      lines.push(parseCoordinationLine(row))
    } catch (err) {
      bad.push({ file, line: i + 1, reason: (err as Error).message })
    }
  })
  return { lines, bad }
}

export interface CoordinationLogOptions {
  /** Directory of the CoordinationNode_YYYYMMDD.log files; created 0700 when missing. */
  dir: string
  /** IANA time zone of the timestamps and of the file's day (default Asia/Tokyo). */
  timeZone?: string
  /** Clock (ms); default Date.now. */
  now?: () => number
}

export class CoordinationLog {
  readonly dir: string
  readonly timeZone: string
  private readonly now: () => number
  /** Files this process has written to (their torn tail, if any, was dealt with). */
  private readonly touched = new Set<string>()

  constructor(opts: CoordinationLogOptions) {
    this.dir = opts.dir
    this.timeZone = opts.timeZone ?? DEFAULT_TIME_ZONE
    checkTimeZone(this.timeZone)
    this.now = opts.now ?? Date.now
  }

  /** The file a line written at `ms` (default now) goes to. */
  fileFor(ms: number = this.now()): string {
    return join(this.dir, coordinationFileName(ms, this.timeZone))
  }

  /** Appends one line; returns it (without the newline). Durable (fdatasync) when it returns. */
  write(event: string, fields: Record<string, unknown>): string {
    const ms = this.now()
    const line = formatCoordinationLine(ms, this.timeZone, event, fields)
    const file = this.fileFor(ms)
    ensureDirSync(this.dir)
    const fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, FILE_MODE)
    try {
      let prefix = ''
      if (!this.touched.has(file)) {
        const size = fstatSync(fd).size
        if (size > 0) {
          const last = Buffer.alloc(1)
          const rfd = openSync(file, 'r')
          try {
            readSync(rfd, last, 0, 1, size - 1)
          } finally {
            closeSync(rfd)
          }
          if (last[0] !== 0x0a) prefix = '\n'
        }
      }
      const data = Buffer.from(`${prefix}${line}\n`)
      let done = 0
      while (done < data.length) {
        const n = writeSync(fd, data, done, data.length - done)
        if (n <= 0) throw new Error(`${file}: short write`)
        done += n
      }
      fdatasyncSync(fd)
      this.touched.add(file)
    } finally {
      closeSync(fd)
    }
    return line
  }
}
