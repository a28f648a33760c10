/**
 * `kairo-gw lab`: several real gateways on one machine, joined by veth pairs in network
 * namespaces and by an emulated LoRa air, with traffic, a partition or a crash, and a report.
 *   run       build a topology, send messages, report delivery and latency, tear it down
 *   clean     remove what lab runs left behind (namespaces, interfaces, processes, run dirs)
 *   plan      show what a run of a topology would create (names, addresses, configs): no root
 *   topologies  the shipped topologies
 */
import { InvalidArgumentError, type Command } from 'commander'
import { cleanLab, forceCleanSync, type CleanReport } from '../../lab/clean.js'
import { buildPlan } from '../../lab/plan.js'
import { AbortedError } from '../../lab/procs.js'
import { summaryTable } from '../../lab/report.js'
import { keptText, runLab, type PartitionMethod } from '../../lab/run.js'
import { loadTopology, MAX_SIZE, resolveTopology, shippedTopologies, TOPOLOGY_DIR, type Topology } from '../../lab/topology.js'
import { UsageError } from '../errors.js'
import { printJson } from '../output.js'
import { intIn } from '../options.js'

interface RunOpts {
  topology: string
  messages: number
  size?: number
  partition?: string
  partitionMethod: string
  partitionFor: number
  kill?: string
  downFor: number
  keep: boolean
  timeout: number
  interval: number
  prefix?: string
  logLevel: string
  json: boolean
  quiet: boolean
}

function seconds(what: string, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v)
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || n > max) throw new InvalidArgumentError(`must be ${what} in seconds, more than 0 and at most ${max}`)
    return n
  }
}

async function topologyArg(value: string): Promise<Topology> {
  const file = resolveTopology(value)
  if (file === undefined) throw new UsageError(`--topology ${JSON.stringify(value)}: no such file, and not a shipped topology (${shippedTopologies().join(', ')})`)
  return loadTopology(file)
}

function exitAfterFlush(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)))
}

function printClean(r: CleanReport): void {
  const lines = [
    r.prefixes.length === 0 ? 'nothing of a lab run was found' : `cleaned ${r.prefixes.join(', ')}`,
    ...(r.processes.length > 0 ? [`processes   ${r.processes.map((p) => p.pid).join(', ')}`] : []),
    ...(r.namespaces.length > 0 ? [`namespaces  ${r.namespaces.join(', ')}`] : []),
    ...(r.links.length > 0 ? [`interfaces  ${r.links.join(', ')}`] : []),
    ...(r.run_dirs.length > 0 ? [`run dirs    ${r.run_dirs.join(', ')}`] : []),
    ...r.skipped.map((s) => `skipped     ${s.prefix}: ${s.reason}`),
    ...r.errors.map((e) => `error       ${e}`),
  ]
  process.stdout.write(lines.join('\n') + '\n')
}

export function registerLab(program: Command): void {
  const lab = program.command('lab').description('run several gateways on this machine (namespaces, veth, emulated LoRa) and measure the mesh')

  lab
    .command('run')
    .description('build a topology, start one gateway daemon per node, send messages through it and report what arrived; then remove it all')
    .requiredOption('--topology <name|file>', `a shipped topology (${shippedTopologies().join(', ')}) or a topology file`)
    .option('--messages <n>', 'messages to send, alternating over the topology\'s traffic pairs', intIn(0, 1_000_000, 'a number of messages'), 20)
    .option('--size <bytes>', 'payload bytes per message (default: the topology\'s traffic.size)', intIn(1, MAX_SIZE, 'a payload size in bytes'))
    .option('--partition <segment>', 'half way through, cut this segment, keep sending, heal it after --partition-for seconds')
    .option('--partition-method <how>', 'veth segments: link-down (ip link set down on both ends) or netem (100 % loss); lora segments are always cut in the emulated air', 'link-down')
    .option('--partition-for <s>', 'how long the partition lasts at least', seconds('a duration', 3600), 4)
    .option('--kill <node>', 'half way through, SIGKILL this gateway, and restart it after --down-for seconds with the same config and state')
    .option('--down-for <s>', 'how long the killed gateway stays down', seconds('a duration', 3600), 2)
    .option('--keep', 'leave the lab up at the end (and after a failure) and print how to reach it', false)
    .option('--timeout <s>', 'limit of each wait: daemons ready, routes converged, messages delivered', seconds('a time limit', 86_400), 60)
    .option('--interval <ms>', 'pause between two sends', intIn(0, 60_000, 'a pause in ms'), 50)
    .option('--prefix <kl1234>', 'name prefix of the run\'s namespaces and interfaces (default kl<pid % 10000>)')
    .option('--log-level <level>', 'the gateways\' logging.level: debug, info or warn', 'info')
    .option('--json', 'print the report as one JSON object on stdout (progress stays on stderr)', false)
    .option('-q, --quiet', 'no progress lines on stderr', false)
    .addHelpText(
      'after',
      `
Examples:
  $ sudo kairo-gw lab run --topology pair-udp --messages 10
  $ sudo kairo-gw lab run --topology line4-wired --messages 40 --partition udp23
  $ sudo kairo-gw lab run --topology line4-wired --messages 40 --kill g2 --json
  $ sudo kairo-gw lab run --topology line5-mixed --messages 20 --timeout 300   # LoRa hops: slow
  $ sudo kairo-gw lab run --topology ./my-lab.yaml --keep     # leave it up to poke at
  $ sudo kairo-gw lab clean                                  # after a crash or --keep
  $ kairo-gw lab plan --topology line5-mixed                 # what a run would create

Topologies: ${TOPOLOGY_DIR}/*.yaml; the format is in appliance/lab/README.md.
Needs root, iproute2, and socat when the topology has lora segments. Ctrl-C stops the run and
removes what it made (a second Ctrl-C forces: SIGKILL and delete).

Exit codes: 0 every message delivered exactly once · 1 something lost, duplicated or broken
(the report says what) · 2 usage · 3 a wait timed out (daemon ready, routes) · 130 interrupted.`,
    )
    .action(async (opts: RunOpts) => {
      const topology = await topologyArg(opts.topology)
      if (opts.partition !== undefined && !topology.segments.some((s) => s.name === opts.partition)) throw new UsageError(`--partition ${opts.partition}: ${topology.name} has no such segment (${topology.segments.map((s) => s.name).join(', ')})`)
      if (opts.kill !== undefined && !topology.nodes.some((n) => n.name === opts.kill)) throw new UsageError(`--kill ${opts.kill}: ${topology.name} has no such gateway (${topology.nodes.map((n) => n.name).join(', ')})`)
      if (opts.partitionMethod !== 'link-down' && opts.partitionMethod !== 'netem') throw new UsageError(`--partition-method ${JSON.stringify(opts.partitionMethod)}: use link-down or netem`)
      if (opts.logLevel !== 'debug' && opts.logLevel !== 'info' && opts.logLevel !== 'warn') throw new UsageError(`--log-level ${JSON.stringify(opts.logLevel)}: use debug, info or warn`)
      if (opts.prefix !== undefined && !/^kl\d{1,4}$/.test(opts.prefix)) throw new UsageError(`--prefix ${JSON.stringify(opts.prefix)}: kl followed by 1-4 digits`)

      const ac = new AbortController()
      let info: { prefix: string; runDir: string; pids: () => number[] } | undefined
      const onSignal = (sig: NodeJS.Signals) => {
        if (!ac.signal.aborted) {
          process.stderr.write(`lab: ${sig}: stopping and removing the lab (${sig === 'SIGINT' ? 'Ctrl-C' : sig} again forces)\n`)
          ac.abort(sig)
          return
        }
        process.stderr.write(`lab: ${sig} again: killing everything of ${info?.prefix ?? 'the run'} now\n`)
        if (info !== undefined) forceCleanSync(info.prefix, info.pids(), info.runDir)
        process.exit(sig === 'SIGINT' ? 130 : 143)
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
      try {
        const result = await runLab({
          topology: topology.file,
          messages: opts.messages,
          ...(opts.size !== undefined && { size: opts.size }),
          ...(opts.partition !== undefined && { partition: opts.partition }),
          partitionMethod: opts.partitionMethod as PartitionMethod,
          partitionS: opts.partitionFor,
          ...(opts.kill !== undefined && { kill: opts.kill }),
          downS: opts.downFor,
          keep: opts.keep,
          timeoutS: opts.timeout,
          intervalMs: opts.interval,
          ...(opts.prefix !== undefined && { prefix: opts.prefix }),
          logLevel: opts.logLevel,
          signal: ac.signal,
          ...(!opts.quiet && { progress: (line: string) => process.stderr.write(line + '\n') }),
          onStart: (i) => {
            info = i
          },
        })
        if (opts.json) printJson(result.kept === undefined ? result.report : { ...result.report, kept: result.kept })
        else {
          process.stdout.write(summaryTable(result.report))
          if (result.kept !== undefined) process.stdout.write(keptText(result.kept) + '\n')
        }
        if (opts.json && result.kept !== undefined && !opts.quiet) process.stderr.write(keptText(result.kept) + '\n')
        exitAfterFlush(result.report.ok ? 0 : 1)
      } catch (e) {
        if (e instanceof AbortedError) {
          const sig = String(ac.signal.reason ?? 'SIGINT')
          process.stderr.write(`lab: interrupted by ${sig}; the lab was removed\n`)
          if (opts.json) printJson({ ok: false, error: { name: 'Interrupted', message: `interrupted by ${sig}` }, exit_code: 130 })
          exitAfterFlush(sig === 'SIGTERM' ? 143 : 130)
          return
        }
        throw e
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
    })

  lab
    .command('clean')
    .description('remove what lab runs left: their gateway, emulator and socat processes, namespaces, veth interfaces and run directories')
    .option('--prefix <kl1234>', 'only this run (default: every lab run whose lab process is gone)')
    .option('--force', 'also runs whose lab process is still running', false)
    .option('--json', 'print one JSON object', false)
    .addHelpText(
      'after',
      `
Examples:
  $ sudo kairo-gw lab clean
  $ sudo kairo-gw lab clean --prefix kl4242 --json

Finds lab resources by name: namespaces and interfaces kl<digits>-*, run directories
<tmp>/kairo-lab-kl<digits>-*, and node/socat processes whose command line names such a directory.`,
    )
    .action(async (opts: { prefix?: string; force: boolean; json: boolean }) => {
      if (opts.prefix !== undefined && !/^kl\d{1,4}$/.test(opts.prefix)) throw new UsageError(`--prefix ${JSON.stringify(opts.prefix)}: kl followed by 1-4 digits`)
      const r = await cleanLab({ ...(opts.prefix !== undefined && { prefix: opts.prefix }), force: opts.force })
      if (opts.json) printJson({ ok: r.errors.length === 0, ...r })
      else printClean(r)
      if (r.errors.length > 0) exitAfterFlush(1)
    })

  lab
    .command('plan')
    .description('show what `lab run` would create for a topology: namespaces, interfaces, addresses, PTYs and each gateway\'s config (changes nothing)')
    .requiredOption('--topology <name|file>', 'a shipped topology or a topology file')
    .option('--prefix <kl1234>', 'name prefix to show', 'kl0')
    .option('--json', 'print one JSON object', false)
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw lab plan --topology line5-mixed
  $ kairo-gw lab plan --topology ./my-lab.yaml --json`,
    )
    .action(async (opts: { topology: string; prefix: string; json: boolean }) => {
      if (!/^kl\d{1,4}$/.test(opts.prefix)) throw new UsageError(`--prefix ${JSON.stringify(opts.prefix)}: kl followed by 1-4 digits`)
      const topology = await topologyArg(opts.topology)
      const plan = buildPlan(topology, { prefix: opts.prefix, runDir: `/tmp/kairo-lab-${opts.prefix}-XXXXXX` })
      if (opts.json) return printJson({ topology, namespaces: plan.namespaces, veths: plan.veths, ptys: plan.ptys, emulators: plan.emulators, gateways: plan.gateways.map((g) => ({ node: g.node, ns: g.ns, config_path: g.configPath, control_socket: g.controlSocket, config: g.config })) })
      const out = [`topology ${topology.name}: ${topology.description}`, `namespaces  ${plan.namespaces.map((n) => n.ns).join(', ')}`]
      for (const v of plan.veths) out.push(`${v.kind.padEnd(10)}  ${v.segment}: ${v.a.node} ${v.a.ifname} ${v.a.address}/24 <-> ${v.b.node} ${v.b.ifname} ${v.b.address}/24`)
      for (const e of plan.emulators) out.push(`lora        ${e.segment}: ${e.nodes.join(', ')} on one emulated medium (SF${String(e.config.radios[0]?.config?.spreadingFactor)}, ${String((e.config.radios[0]?.config?.bandwidthHz ?? 0) / 1000)} kHz, ${e.config.region ?? ''})`)
      out.push(`traffic     ${topology.traffic.pairs.map((p) => `${p.from}->${p.to}`).join(', ')}, ${topology.traffic.size} bytes, ${topology.traffic.type}`)
      for (const g of plan.gateways) out.push('', `# ${g.node}: ${g.configPath}`, g.yaml.trimEnd())
      process.stdout.write(out.join('\n') + '\n')
    })

  lab
    .command('topologies')
    .description('list the shipped topologies')
    .option('--json', 'print one JSON object', false)
    .action(async (opts: { json: boolean }) => {
      const list = await Promise.all(
        shippedTopologies().map(async (name) => {
          const t = await loadTopology(resolveTopology(name)!)
          return { name, description: t.description, gateways: t.nodes.length, segments: t.segments.map((s) => `${s.name}:${s.kind}`) }
        }),
      )
      if (opts.json) return printJson({ dir: TOPOLOGY_DIR, topologies: list })
      const w = Math.max(...list.map((t) => t.name.length))
      process.stdout.write(list.map((t) => `${t.name.padEnd(w)}  ${t.description} [${t.segments.join(', ')}]`).join('\n') + '\n')
    })
}
