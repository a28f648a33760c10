/**
 * The lab's LoRa air: one process running one companion-MCU emulator (one medium) per lora
 * segment, so that only the radios of a segment hear each other. A separate process rather than
 * part of the lab process so that `kairo-gw lab run --keep` can leave the lab up after it exits,
 * and so that `kairo-gw lab clean` can find it by its command line (it names the run directory).
 *
 *   node --import=tsx appliance/lab/emulator-host.ts --plan <run>/emulators.json --socket <run>/emulator.sock
 *
 * Plan: {"segments": [{"segment": "lora23", "nodes": ["g2", "g3"], "config": <EmulatorConfig>}]}.
 * Prints one JSON line {"event":"ready","pid":...,"segments":[...]} when every emulator runs,
 * then serves line JSON-RPC on the socket:
 *   cut {segment}   every radio of the segment out of range of every other (medium.setLink(a, b, null))
 *   heal {segment}  the links as they were before the cut
 *   stats {}        per segment: the emulator's radio and device counters
 * (the gateways' ControlServer, so the same ControlClient talks to both).
 * Exits 0 on SIGTERM/SIGINT after powering the emulated MCUs off.
 */
import { promises as fsp } from 'node:fs'
import { invokedDirectly, startEmulator, type Emulator, type EmulatorConfig } from '../../firmware-bridge/emulator/main.js'
import type { LinkSpec } from '../../firmware-bridge/emulator/medium.js'
import { ControlServer } from '../control/server.js'

export interface EmulatorHostPlan {
  segments: Array<{ segment: string; nodes: string[]; config: EmulatorConfig }>
}

interface Running {
  segment: string
  nodes: string[]
  emulator: Emulator
  /** Links as they were before a cut: from → to → spec (null: out of range). */
  saved: Map<string, LinkSpec | null> | undefined
}

function pairs(nodes: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const a of nodes) for (const b of nodes) if (a !== b) out.push([a, b])
  return out
}

export async function runEmulatorHost(argv: string[]): Promise<number> {
  let planPath: string | undefined
  let socketPath: string | undefined
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--plan') planPath = argv[++i]
    else if (argv[i] === '--socket') socketPath = argv[++i]
    else {
      process.stderr.write(`emulator-host: unknown argument ${String(argv[i])}\n`)
      return 2
    }
  }
  if (planPath === undefined || socketPath === undefined) {
    process.stderr.write('usage: emulator-host.ts --plan FILE --socket PATH\n')
    return 2
  }
  const plan = JSON.parse(await fsp.readFile(planPath, 'utf8')) as EmulatorHostPlan
  const running = new Map<string, Running>()
  const stopAll = async () => {
    await Promise.all([...running.values()].map((r) => r.emulator.stop()))
  }
  try {
    for (const s of plan.segments) {
      const emulator = await startEmulator(s.config, {
        onEvent: (e) => {
          if (e.event === 'unplug' || e.event === 'replug' || e.event === 'error') process.stderr.write(`${JSON.stringify({ segment: s.segment, ...e })}\n`)
        },
      })
      running.set(s.segment, { segment: s.segment, nodes: s.nodes, emulator, saved: undefined })
    }
  } catch (e) {
    process.stderr.write(`emulator-host: ${(e as Error).message}\n`)
    await stopAll()
    return 1
  }
  const seg = (params: Record<string, unknown>): Running => {
    const r = typeof params.segment === 'string' ? running.get(params.segment) : undefined
    if (r === undefined) throw new TypeError(`no lora segment ${JSON.stringify(params.segment)} (have ${[...running.keys()].join(', ')})`)
    return r
  }
  const server = new ControlServer({
    path: socketPath,
    handlers: {
      cut: (params) => {
        const r = seg(params)
        if (r.saved !== undefined) return { segment: r.segment, cut: true, already: true }
        const medium = r.emulator.medium
        r.saved = new Map()
        for (const [a, b] of pairs(r.nodes)) {
          r.saved.set(`${a}\u0000${b}`, medium.link(a, b))
          medium.setLink(a, b, null)
        }
        return { segment: r.segment, cut: true, method: 'radio-out-of-range' }
      },
      heal: (params) => {
        const r = seg(params)
        if (r.saved === undefined) return { segment: r.segment, cut: false, already: true }
        const medium = r.emulator.medium
        for (const [a, b] of pairs(r.nodes)) medium.setLink(a, b, r.saved.get(`${a}\u0000${b}`) ?? null)
        r.saved = undefined
        return { segment: r.segment, cut: false }
      },
      stats: () => Object.fromEntries([...running.values()].map((r) => [r.segment, { cut: r.saved !== undefined, ...r.emulator.stats() }])),
    },
  })
  await server.listen()
  process.stdout.write(`${JSON.stringify({ event: 'ready', pid: process.pid, segments: [...running.keys()], socket: socketPath })}\n`)
  return new Promise<number>((resolveExit) => {
    const stop = () => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      void server
        .close()
        .then(stopAll)
        .then(() => fsp.rm(socketPath!, { force: true }))
        .then(() => resolveExit(0))
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
}

if (invokedDirectly(import.meta.url)) {
  void runEmulatorHost(process.argv.slice(2)).then((code) => {
    process.stdout.write('', () => process.exit(code))
  })
}
