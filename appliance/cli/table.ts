/**
 * Plain-text tables and value formatting for the CLI's human output (`--json` prints the raw
 * result instead). Columns are padded to their widest cell, numbers right-aligned, nothing
 * truncated (node IDs must stay whole to be copied into `kairo-gw send --to`). Control characters
 * in cells (a link error, a peer name: text that came from elsewhere) are shown escaped, so a
 * value cannot move the cursor or forge lines on the operator's terminal.
 */

export interface Column {
  header: string
  /** Default 'left'. */
  align?: 'left' | 'right'
}

/** Any value as one cell: null/undefined as '-', objects as compact JSON, control characters escaped. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-'
  const text = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' ? String(value) : safeJson(value)
  return escapeControl(text)
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

// C0, DEL, C1, and the line/paragraph separators.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g

export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => {
    if (c === '\n') return '\\n'
    if (c === '\t') return '\\t'
    if (c === '\r') return '\\r'
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`
  })
}

/**
 * The table as lines: a header row, then one row per entry; `empty` instead when there are no
 * rows. Each line ends with '\n'; trailing spaces are trimmed.
 */
export function renderTable(columns: readonly Column[], rows: readonly (readonly unknown[])[], empty = '(none)'): string {
  if (rows.length === 0) return `${empty}\n`
  const cells = rows.map((r) => columns.map((_, i) => cell(r[i])))
  const widths = columns.map((c, i) => Math.max(width(c.header), ...cells.map((r) => width(r[i]!))))
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (columns[i]!.align === 'right' ? pad(v, widths[i]!, 'left') : pad(v, widths[i]!, 'right')))
      .join('  ')
      .trimEnd() + '\n'
  return line(columns.map((c) => c.header)) + cells.map(line).join('')
}

/** Key/value lines, keys padded: `  node ID     abc...`. */
export function renderFields(fields: readonly (readonly [string, unknown])[], indent = '  '): string {
  const w = Math.max(0, ...fields.map(([k]) => width(k)))
  return fields.map(([k, v]) => `${indent}${pad(k, w, 'right')}  ${cell(v)}`.trimEnd() + '\n').join('')
}

/** Display width: code points (wide CJK characters count 2). */
export function width(s: string): number {
  let n = 0
  for (const ch of s) n += isWide(ch.codePointAt(0)!) ? 2 : 1
  return n
}

function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  )
}

function pad(s: string, w: number, side: 'left' | 'right'): string {
  const fill = ' '.repeat(Math.max(0, w - width(s)))
  return side === 'left' ? fill + s : s + fill
}

/** 93784 → '1d 2h 3m 4s'; 59 → '59s'; leading zero units left out. */
export function formatDuration(seconds: unknown): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return '-'
  let s = Math.floor(seconds)
  const d = Math.floor(s / 86_400)
  s -= d * 86_400
  const h = Math.floor(s / 3600)
  s -= h * 3600
  const m = Math.floor(s / 60)
  s -= m * 60
  const parts: string[] = []
  if (d > 0) parts.push(`${d}d`)
  if (d > 0 || h > 0) parts.push(`${h}h`)
  if (d > 0 || h > 0 || m > 0) parts.push(`${m}m`)
  parts.push(`${s}s`)
  return parts.join(' ')
}

/** Milliseconds as '850 ms', '12.3 s', '4m 10s'. */
export function formatMs(ms: unknown): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return '-'
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  return formatDuration(ms / 1000)
}

/** 1536 → '1.5 KiB'. */
export function formatBytes(n: unknown): string {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '-'
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = -1
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`
}

/** A count; '-' for anything that is not a number. */
export function formatCount(n: unknown): string {
  return typeof n === 'number' && Number.isFinite(n) ? String(n) : '-'
}

/** An ISO time or ms since the epoch, as ISO-8601 UTC without milliseconds; '-' when absent. */
export function formatTime(t: unknown): string {
  const d = typeof t === 'number' && Number.isFinite(t) ? new Date(t) : typeof t === 'string' ? new Date(t) : null
  if (d === null || Number.isNaN(d.getTime())) return typeof t === 'string' && t !== '' ? t : '-'
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** Sum of the numbers in a {reason: count} record (dropped, errors); '-' when not a record. */
export function sumCounts(r: unknown): string {
  if (typeof r !== 'object' || r === null) return '-'
  let n = 0
  for (const v of Object.values(r)) if (typeof v === 'number' && Number.isFinite(v)) n += v
  return String(n)
}

/** The value at a dotted path of a JSON object, or undefined. */
export function at(obj: unknown, path: string): unknown {
  let v: unknown = obj
  for (const k of path.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined
    v = (v as Record<string, unknown>)[k]
  }
  return v
}

/** The array at `path`, or [] (a gateway answer is rendered as far as it goes, never crashes the CLI). */
export function listAt(obj: unknown, path: string): unknown[] {
  const v = at(obj, path)
  return Array.isArray(v) ? v : []
}
