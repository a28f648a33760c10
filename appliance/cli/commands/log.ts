/**
 * `kairo-gw log verify | tail | collect`: the VoV audit log from the command line, read straight
 * from the files (no running gateway needed: an auditor verifies a copy on another machine).
 *
 *  - verify [PATH]: the whole log (a directory, or one file); without PATH the gateway's own log,
 *    <state-dir>/vov, checked against the gateway's identity key. Exit 0 with a summary, or 4
 *    naming the first bad file:line (1 when there is nothing to verify).
 *  - tail: the last entries of the gateway's own log (or --dir), optionally following new ones.
 *    Shows entries; does not verify them.
 *  - collect PATH...: several gateways' logs (directories or files copied over SSH) merged into
 *    one verified timeline; exit 4 when any gateway's chain does not verify.
 */
import { createWriteStream } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { InvalidArgumentError, type Command } from 'commander'
import { collectLogs, type CollectReport, type TimelineEntry } from '../../vov/collect.js'
import { parseLine, type VovEntry } from '../../vov/format.js'
import { listLogFiles, verifyLog, type VerifyReport } from '../../vov/verify.js'
import { CliError, EXIT_OK } from '../errors.js'
import { loadIdentity, resolveStateDir } from '../state.js'
import { escapeControl, renderFields, renderTable } from '../table.js'
import { outputOf, type Out } from '../output.js'

/** Exit code of `log verify` and `log collect` when a log does not verify. */
export const EXIT_LOG_INVALID = 4

const EXIT_HELP = `Exit codes:
  0  the log verifies
  1  nothing to verify (no such path, no log files, unreadable)
  2  usage error
  4  the log does not verify: the first bad file:line and why are printed`


function parseHexKey(value: string, previous: Uint8Array[] | undefined): Uint8Array[] {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new InvalidArgumentError('must be an Ed25519 public key: 64 hex digits (`kairo-gw keys show` on the gateway: identity key)')
  return [...(previous ?? []), Buffer.from(value, 'hex')]
}

function parseAnchor(value: string): { seq: number; hash: string } {
  const m = /^(\d{1,16}):([0-9a-fA-F]{64})$/.exec(value)
  if (m === null || !Number.isSafeInteger(Number(m[1]))) throw new InvalidArgumentError('must be SEQ:HASH, as printed by an earlier `kairo-gw log verify` (e.g. 1233:1fd2…, 64 hex digits)')
  return { seq: Number(m[1]), hash: m[2]!.toLowerCase() }
}

function parseCount(value: string): number {
  if (!/^\d{1,7}$/.test(value)) throw new InvalidArgumentError('must be a whole number of entries, 0-9999999')
  return Number(value)
}

function parseTypes(value: string, previous: string[] | undefined): string[] {
  const types = value.split(',').map((s) => s.trim()).filter(Boolean)
  for (const ty of types) if (!/^[a-z][a-z0-9_]{0,63}$/.test(ty)) throw new InvalidArgumentError(`${JSON.stringify(ty)} is not an event type (a-z, 0-9, _; e.g. link_up,admin_command)`)
  return [...(previous ?? []), ...types]
}

async function mustExist(path: string): Promise<void> {
  try {
    await stat(path)
  } catch (err) {
    throw new CliError(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`)
  }
}

/** One data object as `k=v k2=v2` (strings bare when plain), control characters escaped, cut at `max`. */
export function summariseData(data: Record<string, unknown>, max = 160): string {
  const parts = Object.entries(data).map(([k, v]) => {
    const text = typeof v === 'string' && /^[\w.:/@+-]+$/.test(v) ? v : JSON.stringify(v) ?? String(v)
    return `${k}=${text}`
  })
  const s = escapeControl(parts.join(' '))
  return s.length > max ? s.slice(0, max - 1) + '…' : s
}

function range(r: { first_seq: number | null; last_seq: number | null }): string {
  return r.first_seq === null ? 'no entries' : `seq ${r.first_seq}..${r.last_seq}`
}

/** The human summary of a verify report (ok or not). */
export function renderVerify(path: string, r: VerifyReport, pinnedBy: string | null): string {
  const n = r.files.length
  const head = r.ok
    ? `${path}: ok — ${r.entries} entries (${range(r)}) in ${n} file${n === 1 ? '' : 's'}, ${r.starts_at_genesis ? 'from its genesis' : 'NOT from its genesis (earlier files absent)'}\n`
    : `${path}: DOES NOT VERIFY — ${r.entries} entries (${range(r)}) verified before the error\n`
  const fields: [string, unknown][] = []
  if (r.node_id !== null) fields.push(['node', r.node_id])
  if (r.identity_key !== null) fields.push(['identity key', `${r.identity_key}  (${r.identity_pinned ? `expected: ${pinnedBy ?? '--identity-key'}` : 'as named in the log; pin it with --identity-key'})`])
  if (r.first_ts !== null) fields.push(['time', `${r.first_ts} .. ${r.last_ts}`])
  if (r.keys.length > 0) fields.push(['log keys', `${r.keys.length} (${r.key_rotations} rotation${r.key_rotations === 1 ? '' : 's'}), last ${r.keys[r.keys.length - 1]}`])
  for (const rec of r.recoveries) {
    const d = rec.data
    fields.push(['recovered', `seq ${rec.seq} at ${rec.ts}: ${d.bytes} bytes cut from ${d.file} at offset ${d.offset} (${d.reason})${d.saved_as ? `, kept as ${d.saved_as}` : ''}`])
  }
  if (r.ok && r.last_seq !== null) {
    fields.push(['last entry', `seq ${r.last_seq}, hash ${r.last_hash}`])
    fields.push(['anchor', `--anchor ${r.last_seq}:${r.last_hash}`])
  }
  if (r.anchor) fields.push(['anchor check', r.anchor.ok ? `seq ${r.anchor.seq} has the recorded hash: nothing before it was cut or rewritten` : 'failed'])
  let s = head + renderFields(fields)
  if (r.torn_tail) s += `  note: ${r.torn_tail.file}:${r.torn_tail.line} is an incomplete last line (${r.torn_tail.bytes} bytes): a writer is mid-write, or was killed; the gateway cuts and records it when it next opens the log\n`
  if (r.ok && r.anchor === null) s += '  note: a cut at the very end of the log cannot be seen without an anchor: keep the anchor above and pass it to a later verify\n'
  for (const w of r.warnings.slice(0, 10)) s += `  warning: ${w.file}:${w.line}: seq ${w.seq}: ${w.reason}\n`
  if (r.warning_count > 10) s += `  (${r.warning_count - 10} more warnings; --json lists ${Math.min(r.warning_count, r.warnings.length)})\n`
  return s
}

/** The table row of an entry. */
function row(e: Pick<VovEntry, 'ts' | 'seq' | 'type' | 'data'>, node?: string): unknown[] {
  const base = [e.ts, e.seq, e.type, summariseData(e.data)]
  return node === undefined ? base : [e.ts, node.slice(0, 8), e.seq, e.type, summariseData(e.data)]
}

const TAIL_COLUMNS = [{ header: 'TIME' }, { header: 'SEQ', align: 'right' as const }, { header: 'TYPE' }, { header: 'DATA' }]
const COLLECT_COLUMNS = [{ header: 'TIME' }, { header: 'NODE' }, { header: 'SEQ', align: 'right' as const }, { header: 'TYPE' }, { header: 'DATA' }]

/** One followed line, fixed widths (the table cannot be measured ahead). */
function followLine(e: VovEntry): string {
  return `${e.ts}  ${String(e.seq).padStart(8)}  ${e.type.padEnd(18)}  ${summariseData(e.data)}`.trimEnd() + '\n'
}

interface TailLine {
  raw: Buffer
  entry: VovEntry | null
  reason: string | null
  where: string
}

/** The last `n` lines (of the given types) of the files, oldest first. */
async function lastLines(files: string[], n: number, types: Set<string> | null): Promise<TailLine[]> {
  const out: TailLine[] = []
  for (let i = files.length - 1; i >= 0 && out.length < n; i--) {
    const fh = await open(files[i]!, 'r')
    let buf: Buffer
    try {
      buf = await fh.readFile()
    } finally {
      await fh.close()
    }
    const end = buf.lastIndexOf(0x0a) // an incomplete last line is not shown
    const lines = end < 0 ? [] : buf.subarray(0, end).toString('latin1').split('\n')
    let offset = end
    for (let k = lines.length - 1; k >= 0 && out.length < n; k--) {
      const len = lines[k]!.length
      const raw = buf.subarray(offset - len, offset)
      offset -= len + 1
      const p = parseLine(raw)
      if (p.ok && types !== null && !types.has(p.entry.type)) continue
      if (!p.ok && types !== null) continue
      out.push({ raw, entry: p.ok ? p.entry : null, reason: p.ok ? null : p.reason, where: `${basename(files[i]!)}:${k + 1}` })
    }
  }
  return out.reverse()
}

function printTail(o: Out, lines: TailLine[], json: boolean, follow: boolean): void {
  if (json) {
    for (const l of lines) {
      if (l.entry) o.out(l.raw.toString('utf8') + '\n')
      else o.err(`kairo-gw: ${l.where}: not a VoV entry (${l.reason})\n`)
    }
    return
  }
  if (follow) {
    for (const l of lines) o.out(l.entry ? followLine(l.entry) : `(${l.where}: not a VoV entry: ${l.reason})\n`)
    return
  }
  o.out(
    renderTable(
      TAIL_COLUMNS,
      lines.map((l) => (l.entry ? row(l.entry) : ['?', '?', '(bad line)', `${l.where}: ${l.reason}`])),
      '(no entries)',
    ),
  )
}

/**
 * Follows the log until the process is stopped: each poll reads the complete lines added to the
 * two newest files and to any file that appeared since (a crash recovery appends to the file
 * before a removed one; rotation starts new ones), from where it stopped in each.
 */
async function follow(o: Out, dir: string, json: boolean, types: Set<string> | null, pollMs: number): Promise<never> {
  const offsets = new Map<string, number>()
  const lineNos = new Map<string, number>()
  const readFrom = async (file: string, from: number): Promise<Buffer> => {
    const fh = await open(file, 'r')
    try {
      const size = (await fh.stat()).size
      if (size <= from) return Buffer.alloc(0)
      const buf = Buffer.alloc(size - from)
      const { bytesRead } = await fh.read(buf, 0, buf.length, from)
      return buf.subarray(0, bytesRead)
    } finally {
      await fh.close()
    }
  }
  const countLines = (buf: Buffer) => buf.reduce((n, b) => (b === 0x0a ? n + 1 : n), 0)
  // What was shown already: everything up to the last complete line of the files present now.
  const start = await listLogFiles(dir)
  for (const f of start.slice(-2)) {
    const buf = await readFrom(f, 0)
    offsets.set(f, buf.lastIndexOf(0x0a) + 1)
    lineNos.set(f, countLines(buf))
  }
  let newestSeen = start[start.length - 1] ?? ''
  for (;;) {
    const files = await listLogFiles(dir).catch(() => [] as string[])
    const watch = new Set([...files.slice(-2), ...files.filter((f) => f > newestSeen)])
    for (const file of files.filter((f) => watch.has(f))) {
      let from = offsets.get(file) ?? (file > newestSeen || !start.includes(file) ? 0 : -1)
      if (from < 0) continue // an old file that was complete before we started
      let buf: Buffer
      try {
        buf = await readFrom(file, from)
      } catch {
        continue // removed meanwhile
      }
      const end = buf.lastIndexOf(0x0a)
      if (end < 0) {
        offsets.set(file, from)
        continue
      }
      const lines: TailLine[] = []
      let lineNo = lineNos.get(file) ?? 0
      let at = 0
      while (at <= end) {
        const nl = buf.indexOf(0x0a, at)
        const raw = buf.subarray(at, nl)
        at = nl + 1
        lineNo++
        const p = parseLine(raw)
        if (types !== null && (!p.ok || !types.has(p.entry.type))) continue
        lines.push({ raw: Buffer.from(raw), entry: p.ok ? p.entry : null, reason: p.ok ? null : p.reason, where: `${basename(file)}:${lineNo}` })
      }
      from += end + 1
      offsets.set(file, from)
      lineNos.set(file, lineNo)
      printTail(o, lines, json, true)
      if (file > newestSeen) newestSeen = file
    }
    // A file cut shorter than what was read (recovery of a torn tail): go on from its new end.
    for (const [file, off] of offsets) {
      const size = await stat(file).then((st) => st.size, () => -1)
      if (size < 0) offsets.delete(file)
      else if (size < off) offsets.set(file, size)
    }
    await new Promise((r) => setTimeout(r, pollMs))
  }
}

function collectSummary(r: CollectReport): string {
  let s = ''
  for (const g of r.gateways) {
    const who = g.node_id ?? '(unknown node)'
    if (g.ok) s += `${who}: ok — ${g.entries} entries (${range(g)}) in ${g.files.length} file${g.files.length === 1 ? '' : 's'}, ${g.first_ts} .. ${g.last_ts}${g.starts_at_genesis ? '' : ', not from its genesis'}\n`
    else s += `${who}: DOES NOT VERIFY at ${g.error!.file}:${g.error!.line}: ${g.error!.reason} (${g.entries} entries verified before it)\n`
  }
  for (const [kept, dropped] of r.duplicates) s += `  (${dropped} is a copy of ${kept}: counted once)\n`
  return s
}

function timelineJson(e: TimelineEntry): string {
  return JSON.stringify({ node_id: e.node_id, seq: e.seq, id: e.id, ts: e.ts, type: e.type, key: e.key, data: e.data, file: e.file, line: e.line, hash: e.hash })
}

export function registerLog(program: Command): void {
  const log = program
    .command('log')
    .description('the VoV audit log: verify it, show its last entries, merge several gateways\' logs (docs/vov-log.md)')
    .addHelpText(
      'after',
      `
The VoV log is JSON Lines in <state-dir>/vov/: each entry chained to the one before by its
SHA-256 and signed by a log key that rotates every 24 h, each key certified by the node identity.
These commands read the files directly: no running gateway is needed, and a copy verifies on
any machine.`,
    )

  log
    .command('verify')
    .description('verify a whole VoV log (default: this gateway\'s own): chain, signatures, key certificates, files')
    .argument('[path]', 'a log directory or one log file (default: <state-dir>/vov)')
    .option('--state-dir <dir>', 'the gateway\'s state directory, when PATH is not given (default: $KAIRO_STATE_DIR or ./var/state)')
    .option('--identity-key <hex>', 'the Ed25519 identity key the log must be signed by (default without PATH: the gateway\'s own)', parseHexKey)
    .option('--anchor <seq:hash>', 'an anchor printed by an earlier verify: the log must still hold that entry with that hash (detects a cut or rewrite of the end)', parseAnchor)
    .option('--require-genesis', 'fail when the log does not start at its genesis entry (earlier files archived or deleted)', false)
    .option('--json', 'print the report as one JSON object', false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw log verify                                   # this gateway's log, against its identity
  /var/lib/kairo-gw/vov: ok — 1234 entries (seq 0..1233) in 3 files, from its genesis
    ...
    anchor        --anchor 1233:1fd2984b…
  $ kairo-gw log verify ./gw1-vov --identity-key ea4a6c63… --anchor 1233:1fd2984b…
  $ kairo-gw log verify ./gw1-vov/vov-0000000000004096.jsonl   # one file on its own
  $ kairo-gw log verify --json | jq .error

On failure it names the first bad line and why, e.g.
  kairo-gw: log does not verify: ./gw1-vov/vov-0000000000000000.jsonl:57: signature by log key
  2a1d16fd6c810032 does not verify: the entry was changed after it was signed, or forged

What is checked: every line's layout; seq counting up by one across files; each entry's prev
being the SHA-256 of the line before it; each signature (by the log key in force, or by the
identity for genesis, file_opened and key_rotated entries); each key certificate; file names.
A cut at the very end cannot be seen without an anchor: keep the anchor a verify prints and
pass it with --anchor next time. An incomplete last line (a writer mid-write or killed) is
reported, not an error.

${EXIT_HELP}`,
    )
    .action(async (path: string | undefined, opts: { stateDir?: string; identityKey?: Uint8Array[]; anchor?: { seq: number; hash: string }; requireGenesis: boolean; json: boolean }, cmd: Command) => {
      const o = outputOf(cmd)
      let target = path
      let identityKey = opts.identityKey?.[opts.identityKey.length - 1]
      let pinnedBy: string | null = identityKey ? '--identity-key' : null
      if (target === undefined) {
        const stateDir = resolveStateDir(opts.stateDir)
        target = join(stateDir, 'vov')
        if (identityKey === undefined) {
          try {
            identityKey = loadIdentity(stateDir).identity.identityKey
            pinnedBy = `this gateway's ${join(stateDir, 'identity.key')}`
          } catch {
            // Not readable (another user) or absent: verified against the key the log names.
          }
        }
      }
      await mustExist(target)
      const st = await stat(target)
      if (st.isDirectory() && (await listLogFiles(target)).length === 0) throw new CliError(`${target}: no VoV log files (vov-*.jsonl) in this directory`)
      const report = await verifyLog(target, { ...(identityKey ? { identityKey } : {}), ...(opts.anchor ? { anchor: opts.anchor } : {}), requireGenesis: opts.requireGenesis })
      if (opts.json) o.out(JSON.stringify(report) + '\n')
      else o.out(renderVerify(target, report, pinnedBy))
      if (!report.ok) {
        const e = report.error!
        o.err(`kairo-gw: log does not verify: ${e.file}${e.line > 0 ? `:${e.line}` : ''}: ${e.reason}\n`)
      }
      process.exitCode = report.ok ? EXIT_OK : EXIT_LOG_INVALID
    })

  log
    .command('tail')
    .description('show the last entries of the gateway\'s VoV log, read from its files (not verified: use log verify)')
    .option('-n, --lines <n>', 'how many entries', parseCount, 20)
    .option('-f, --follow', 'keep printing entries as they are written (Ctrl-C to stop)', false)
    .option('--type <types>', 'only these event types (comma-separated, or repeat the option)', parseTypes)
    .option('--state-dir <dir>', 'the gateway\'s state directory (default: $KAIRO_STATE_DIR or ./var/state)')
    .option('--dir <dir>', 'a log directory other than <state-dir>/vov (e.g. a copy)')
    .option('--json', 'print the entries as stored: one JSON object per line', false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw log tail
  TIME                      SEQ  TYPE           DATA
  2025-03-01T09:12:44.120Z  118  link_up        link=lora0 kind=lora
  2025-03-01T09:13:02.877Z  119  admin_command  method=disconnect params={"link":"lora0"} by={"uid":0,...}
  $ kairo-gw log tail -n 100 --type admin_command,link_disconnected
  $ kairo-gw log tail --follow --json | jq -c '{ts, type, data}'

tail shows what the files say; it does not check signatures or the chain (\`kairo-gw log
verify\` does). Exit 0, or 1 when the log directory cannot be read.`,
    )
    .action(async (opts: { lines: number; follow: boolean; type?: string[]; stateDir?: string; dir?: string; json: boolean }, cmd: Command) => {
      const o = outputOf(cmd)
      const dir = opts.dir ?? join(resolveStateDir(opts.stateDir), 'vov')
      await mustExist(dir)
      const files = await listLogFiles(dir)
      const types = opts.type && opts.type.length > 0 ? new Set(opts.type) : null
      if (files.length === 0 && !opts.follow) throw new CliError(`${dir}: no VoV log files (vov-*.jsonl) in this directory`)
      const lines = opts.lines > 0 ? await lastLines(files, opts.lines, types) : []
      printTail(o, lines, opts.json, opts.follow)
      if (opts.follow) await follow(o, dir, opts.json, types, 200)
    })

  log
    .command('collect')
    .description('merge the VoV logs of several gateways into one verified timeline, ordered by time')
    .argument('<path...>', 'log directories or log files (copied from the gateways, e.g. with scp); files are grouped by the node named in their first line')
    .option('--out <file>', 'write the timeline to FILE as JSON Lines (one entry per line, with node_id, file and line) instead of printing it')
    .option('--identity-key <hex>', 'an expected identity key (repeat for each gateway): any other node fails', parseHexKey)
    .option('--json', 'print {ok, gateways, duplicates, entries} as one JSON object (entries left out with --out)', false)
    .addHelpText(
      'after',
      `
Examples:
  $ scp -r gw1:/var/lib/kairo-gw/vov gw1-vov; scp -r gw2:/var/lib/kairo-gw/vov gw2-vov
  $ kairo-gw log collect gw1-vov gw2-vov
  $ kairo-gw log collect gw1-vov gw2-vov/vov-0000000000000000.jsonl --out timeline.jsonl
  $ kairo-gw log collect gw*-vov --json | jq '.gateways[] | {node_id, ok, entries}'

Each gateway's chain is verified on its own (as log verify does); the timeline holds their
verified entries ordered by timestamp (then node, then seq). Timestamps are each gateway's own
clock: across gateways the order is only as good as their clocks agree. Files collected twice
count once. A gateway whose chain does not verify contributes the entries before its first bad
line, and the exit code is 4.

${EXIT_HELP.replace('the log verifies', "every gateway's log verifies").replace('the log does not verify', 'a log does not verify')}`,
    )
    .action(async (paths: string[], opts: { out?: string; identityKey?: Uint8Array[]; json: boolean }, cmd: Command) => {
      const o = outputOf(cmd)
      for (const p of paths) await mustExist(p)
      const report = await collectLogs(paths, opts.identityKey ? { identityKeys: opts.identityKey } : {})
      if (opts.out !== undefined) {
        const ws = createWriteStream(opts.out, { mode: 0o600 })
        await new Promise<void>((resolve, reject) => {
          ws.on('error', (err) => reject(new CliError(`cannot write ${opts.out}: ${err.message}`)))
          for (const e of report.entries) ws.write(timelineJson(e) + '\n')
          ws.end(() => resolve())
        })
      }
      if (opts.json) {
        o.out(JSON.stringify(opts.out !== undefined ? { ...report, entries: undefined, out: opts.out, written: report.entries.length } : report) + '\n')
      } else {
        o.out(collectSummary(report))
        if (opts.out !== undefined) o.out(`wrote ${report.entries.length} entries to ${opts.out}\n`)
        else o.out(renderTable(COLLECT_COLUMNS, report.entries.map((e) => row(e, e.node_id)), '(no entries)'))
      }
      if (!report.ok) {
        const bad = report.gateways.filter((g) => !g.ok)
        for (const g of bad) o.err(`kairo-gw: log does not verify: ${g.error!.file}${g.error!.line > 0 ? `:${g.error!.line}` : ''}: ${g.error!.reason}\n`)
        if (report.gateways.length === 0) o.err('kairo-gw: no VoV log files found in the paths given\n')
      }
      process.exitCode = report.ok ? EXIT_OK : EXIT_LOG_INVALID
    })
}
