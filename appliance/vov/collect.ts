/**
 * `collectLogs`: the VoV logs of several gateways (each a log directory, or files copied over
 * SSH, in any order and under any names) merged into one verified timeline.
 *
 * Every file names its node in line 1 (genesis or file_opened carry node_id and identity key,
 * signed by the identity), so files are grouped by node whatever directory they came in; each
 * node's files are verified as one chain (verify.ts). Byte-identical copies of a file (the same
 * file collected twice) count once. The timeline holds the verified entries of every node,
 * ordered by timestamp, then node ID, then seq, each annotated with its node, file and line; a
 * chain that fails contributes the entries before its first bad line, and the report is not ok.
 * Timestamps come from each gateway's own clock: the order across gateways is only as good as
 * their clock agreement (within one gateway, seq is the true order).
 */
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { parseLine } from './format.js'
import { logFilesOf, orderFiles, verifyFailure, verifyFiles, type VerifyOptions, type VerifyReport } from './verify.js'

/** One entry of the merged timeline. */
export interface TimelineEntry {
  node_id: string
  seq: number
  id: string
  ts: string
  type: string
  key: string
  data: Record<string, unknown>
  file: string
  line: number
  hash: string
}

export interface CollectReport {
  ok: boolean
  /** One per node found, ordered by node ID; files that could not be attributed come last. */
  gateways: (VerifyReport & { node_id: string | null })[]
  /** Identical copies dropped: [kept, dropped]. */
  duplicates: [string, string][]
  entries: TimelineEntry[]
}

export interface CollectOptions {
  /** Expected identity keys (32 bytes each): a node not among them makes the report fail. */
  identityKeys?: Uint8Array[]
  /** Keep at most this many timeline entries (the earliest); default all. */
  maxEntries?: number
}

async function fileDigest(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex')
}

/** Merges and verifies the logs at `paths` (directories or files). Never throws for bad content. */
export async function collectLogs(paths: string[], opts: CollectOptions = {}): Promise<CollectReport> {
  const gateways: CollectReport['gateways'] = []
  const duplicates: [string, string][] = []
  const files: string[] = []
  for (const p of paths) {
    try {
      files.push(...(await logFilesOf(p)))
    } catch (err) {
      gateways.push({ ...verifyFailure(p, `cannot read: ${(err as Error).message}`), node_id: null })
    }
  }

  // Group by the node named in line 1; drop byte-identical copies.
  const byNode = new Map<string, string[]>()
  const unknown: string[] = []
  const seen = new Map<string, string>()
  for (const row of await orderFiles(files)) {
    const p = row.first ? parseLine(row.first) : null
    const nodeId = p?.ok && typeof p.entry.data.node_id === 'string' ? p.entry.data.node_id : null
    if (nodeId === null) {
      unknown.push(row.path)
      continue
    }
    let digest: string
    try {
      const st = await stat(row.path)
      digest = `${nodeId}:${st.size}:${await fileDigest(row.path)}`
    } catch {
      digest = row.path
    }
    const kept = seen.get(digest)
    if (kept !== undefined) {
      duplicates.push([kept, row.path])
      continue
    }
    seen.set(digest, row.path)
    const list = byNode.get(nodeId) ?? []
    list.push(row.path)
    byNode.set(nodeId, list)
  }

  const entries: TimelineEntry[] = []
  const expected = opts.identityKeys?.map((k) => Buffer.from(k).toString('hex'))
  for (const nodeId of [...byNode.keys()].sort()) {
    const list = byNode.get(nodeId)!
    const mine: TimelineEntry[] = []
    const vopts: VerifyOptions = {}
    const report = await verifyFiles(list, {
      ...vopts,
      onEntry: (e, where) => mine.push({ node_id: nodeId, seq: e.seq, id: e.id, ts: e.ts, type: e.type, key: e.key, data: e.data, file: where.file, line: where.line, hash: e.hash }),
    })
    if (report.ok && expected !== undefined && !expected.includes(report.identity_key ?? '')) {
      report.ok = false
      report.error = { file: list[0]!, line: 1, reason: `node ${nodeId} (identity key ${report.identity_key}) is not one of the expected identities` }
    }
    gateways.push({ ...report, node_id: nodeId })
    entries.push(...mine)
  }
  for (const path of unknown) {
    // Verified alone, for the error that says what is wrong with its first line.
    const report = await verifyFiles([path])
    gateways.push({ ...report, ok: false, error: report.error ?? { file: path, line: 1, reason: 'line 1 names no node' }, node_id: null })
  }

  entries.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.node_id < b.node_id ? -1 : a.node_id > b.node_id ? 1 : a.seq - b.seq))
  if (opts.maxEntries !== undefined && entries.length > opts.maxEntries) entries.length = opts.maxEntries
  const ok = gateways.length > 0 && gateways.every((g) => g.ok)
  return { ok, gateways, duplicates, entries }
}
