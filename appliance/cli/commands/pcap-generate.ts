/**
 * `kairo-gw pcap generate`: writes a sample pcapng capture of AI-TCP traffic made by the real
 * packet code (pcap/generate.ts), reproducibly from a seed, and optionally its manifest (the
 * fields the Wireshark dissector must show for each packet).
 *
 * Files are written atomically (a temporary file in the same directory, then a link or rename),
 * so a reader never sees half a capture, and an existing file is kept unless --force is given.
 * Progress goes to stderr only, and only for large counts; stdout has the result (or the JSON
 * summary with --json).
 */
import { link, open, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { InvalidArgumentError, type Command } from 'commander'
import { DEFAULT_COUNT, DEFAULT_SEED, MAX_COUNT, MAX_SEED_BYTES, generateCapture, normalizeSeed, type GenerateSummary } from '../../../pcap/generate.js'
import { CliError, UsageError } from '../errors.js'

/** Counts from which progress is reported (every 10%). */
export const PROGRESS_FROM_COUNT = 10_000

export function parseCount(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1 || n > MAX_COUNT) throw new InvalidArgumentError(`must be a whole number of packets, 1-${MAX_COUNT}`)
  return n
}

export function parseSeed(value: string): string {
  try {
    return normalizeSeed(value)
  } catch {
    throw new InvalidArgumentError(`must be non-empty text of at most ${MAX_SEED_BYTES} bytes without control characters (e.g. 42 or lab-a)`)
  }
}

interface Out {
  out(s: string): void
  err(s: string): void
  errIsTty: boolean
}

function outputOf(cmd: Command): Out {
  const cfg = cmd.configureOutput()
  return {
    out: (s) => (cfg.writeOut ? cfg.writeOut(s) : process.stdout.write(s)),
    err: (s) => (cfg.writeErr ? cfg.writeErr(s) : process.stderr.write(s)),
    errIsTty: cfg.writeErr === undefined && process.stderr.isTTY === true,
  }
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  switch (e.code) {
    case 'ENOENT':
      return 'its directory does not exist'
    case 'EACCES':
    case 'EPERM':
      return 'permission denied'
    case 'EROFS':
      return 'read-only file system'
    case 'ENOTDIR':
      return 'a part of the path is not a directory'
    case 'ENOSPC':
      return 'no space left on the device'
    case 'EISDIR':
      return 'is a directory'
    default:
      return e.message
  }
}

/** A file about to be written: its temporary sibling, opened exclusively, checked up front. */
class PendingFile {
  private fh: FileHandle | null = null
  readonly tmp: string

  private constructor(
    readonly option: string,
    readonly path: string,
    private readonly force: boolean,
  ) {
    this.tmp = join(dirname(resolve(path)), `.${basename(path)}.${process.pid}.tmp`)
  }

  /** Fails at once (before any work) when the file cannot be written or exists without --force. */
  static async prepare(option: string, path: string, force: boolean): Promise<PendingFile> {
    const f = new PendingFile(option, path, force)
    const st = await stat(path).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)))
    if (st !== null && st.isDirectory()) throw new CliError(`${option} ${path}: is a directory; name a file, e.g. ${join(path, 'sample.pcapng')}`)
    if (st !== null && !force) throw new CliError(`${option} ${path}: already exists; pass --force to overwrite it`)
    try {
      f.fh = await open(f.tmp, 'wx', 0o644)
    } catch (err) {
      throw new CliError(`${option} ${path}: cannot write: ${reason(err)}`)
    }
    return f
  }

  /** Writes the bytes to the temporary file, syncs it and puts it in place. */
  async commit(data: Buffer | string): Promise<void> {
    const fh = this.fh!
    try {
      await fh.writeFile(data)
      await fh.sync()
    } catch (err) {
      await this.abort()
      throw new CliError(`${this.option} ${this.path}: cannot write: ${reason(err)}`)
    }
    await fh.close()
    this.fh = null
    try {
      if (this.force) await rename(this.tmp, this.path)
      else {
        // link() refuses to replace an existing file: a file created meanwhile is kept.
        try {
          await link(this.tmp, this.path)
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          if (code === 'EEXIST') throw new CliError(`${this.option} ${this.path}: already exists; pass --force to overwrite it`)
          if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw err
          await rename(this.tmp, this.path) // a file system without hard links
        }
      }
    } catch (err) {
      await rm(this.tmp, { force: true })
      throw err instanceof CliError ? err : new CliError(`${this.option} ${this.path}: cannot write: ${reason(err)}`)
    }
    await rm(this.tmp, { force: true })
  }

  async abort(): Promise<void> {
    if (this.fh !== null) await this.fh.close().catch(() => undefined)
    this.fh = null
    await unlink(this.tmp).catch(() => undefined)
  }
}

function human(file: string, s: GenerateSummary, manifest: string | null): string {
  const per = Object.entries(s.interfaces)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
  let text = `wrote ${file}: ${s.packets} packet${s.packets === 1 ? '' : 's'}, ${s.bytes} bytes (${per}), seed ${JSON.stringify(s.seed)}\n`
  text += `  sha256 ${s.sha256}\n`
  text += `  nodes: ${s.nodes.map((n) => `${n.name} ${n.host} ${n.node_id}`).join(', ')}\n`
  if (manifest !== null) text += `  manifest: ${manifest}\n`
  return text
}

interface GenerateFlags {
  out: string
  count: number
  seed: string
  manifest?: string
  force: boolean
  json: boolean
}

export function registerPcapGenerate(pcap: Command): void {
  pcap
    .command('generate')
    .description('write a sample pcapng capture of AI-TCP traffic, made by the real packet code with generated identities (same seed, same bytes)')
    .requiredOption('--out <file>', 'the pcapng file to write')
    .option('--count <n>', `how many packets (1-${MAX_COUNT})`, parseCount, DEFAULT_COUNT)
    .option('--seed <s>', 'seed of every identity, key, payload and timestamp: any text', parseSeed, DEFAULT_SEED)
    .option('--manifest <file.json>', 'also write the manifest: per packet its interface, direction and the field values the Wireshark dissector must show')
    .option('--force', 'overwrite --out (and --manifest) when they exist', false)
    .option('--json', 'print the summary as one JSON object (file, packets, bytes, per-interface and per-type counts, seed, sha256)', false)
    .addHelpText(
      'after',
      `
What is in it:
  Four generated gateways (identities from the seed); the capture is taken on A, with one
  interface per link: eth0 (Ethernet, EtherType 0x88B5) to B, udp0 (IPv4/UDP, port 47800) to C,
  lora0 (LoRaTap: frequency, SF, RSSI, SNR) to D on air, and lora0/bridge (linktype 147) — the
  firmware-bridge serial line of A's LoRa radio (Hello, Configure, Transmit, TxDone, Receive,
  ACK_ONLY, Heartbeat). The traffic: signed announces, XX and IK handshakes, Data of every agent
  message type with their ACKs, KEEPALIVE, CLOSE, signed broadcasts flooded on, UDP beacons, and
  on LoRa hop headers and fragments. Every frame is made by the real packet code and accepted
  by the real receiver. Rounds repeat until exactly --count packets are written.

Reproducible: the same --seed and --count give a byte-identical file (no clock, no randomness:
everything comes from BLAKE2b over the seed; timestamps start at 2026-01-01T00:00:00Z). The
default seed is ${DEFAULT_SEED}, so two runs without --seed give the same file; another seed gives another.

Examples:
  $ kairo-gw pcap generate --out sample.pcapng                 # 100 packets, seed ${DEFAULT_SEED}
  $ kairo-gw pcap generate --out big.pcapng --count 100000 --seed 7 --force
  $ kairo-gw pcap generate --out s.pcapng --manifest s.json --json
  $ tshark -r sample.pcapng -X lua_script:pcap/kairo-gw.lua -Y aitcp

Exit codes:
  0  written
  1  the file cannot be written (no such directory, permission), or exists without --force
  2  usage error (bad --count or --seed, no --out)`,
    )
    .action(async (opts: GenerateFlags, cmd: Command) => {
      const io = outputOf(cmd)
      if (opts.manifest !== undefined && resolve(opts.manifest) === resolve(opts.out)) throw new UsageError('--manifest and --out name the same file')
      const out = await PendingFile.prepare('--out', opts.out, opts.force)
      let manifestFile: PendingFile | null = null
      try {
        if (opts.manifest !== undefined) manifestFile = await PendingFile.prepare('--manifest', opts.manifest, opts.force)
        const progress = opts.count >= PROGRESS_FROM_COUNT
        let lastTenth = 0
        const g = generateCapture({
          count: opts.count,
          seed: opts.seed,
          manifest: manifestFile !== null,
          ...(progress
            ? {
                onProgress: (done: number, total: number) => {
                  const tenth = Math.floor((done * 10) / total)
                  if (tenth === lastTenth || tenth === 0) return
                  lastTenth = tenth
                  const line = `generating ${opts.out}: ${tenth * 10}% (${done}/${total} packets)`
                  io.err(io.errIsTty ? `\r${line}${tenth === 10 ? '\n' : ''}` : `${line}\n`)
                },
              }
            : {}),
        })
        await out.commit(g.bytes)
        if (manifestFile !== null) await manifestFile.commit(JSON.stringify(g.manifest) + '\n')
        const summary = { file: opts.out, ...g.summary, manifest: opts.manifest ?? null }
        io.out(opts.json ? JSON.stringify(summary) + '\n' : human(opts.out, g.summary, opts.manifest ?? null))
      } catch (err) {
        await out.abort()
        await manifestFile?.abort()
        throw err
      }
    })
}
