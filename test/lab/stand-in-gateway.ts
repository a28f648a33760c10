/**
 * A stand-in for `kairo-gw run --config FILE --json`, for testing the lab's own machinery
 * (namespaces, processes, signals, cleanup, the report) without the mesh: it prints the `ready`
 * line, serves the control socket, and "delivers" a message by appending it to the destination
 * gateway's inbox file in the same run directory. The lab runs it instead of the daemon when
 * KAIRO_LAB_GATEWAY_BIN names this file.
 *
 * Behaviour switches (environment, passed through `ip netns exec`):
 *   KAIRO_STANDIN_ROUTES=none   `routes` stays empty: the lab waits for convergence forever
 *   KAIRO_STANDIN_DUPLICATE=1   every message lands twice in the destination's inbox
 *   KAIRO_STANDIN_DROP=<n>      the message with this payload index (#n) is never delivered
 */
import { createHash, randomBytes } from 'node:crypto'
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parse } from 'yaml'
import { ControlServer } from '../../appliance/control/server.js'

interface Cfg {
  node: { name: string }
  state_dir: string
  runtime_dir: string
  links: Array<Record<string, unknown> & { name: string }>
}

const idOf = (name: string) => createHash('sha256').update(name).digest('hex').slice(0, 32)

const argv = process.argv.slice(2)
const configPath = resolve(argv[argv.indexOf('--config') + 1]!)
const cfg = parse(readFileSync(configPath, 'utf8')) as Cfg
const me = cfg.node.name
const runDir = dirname(dirname(configPath))
const inboxFile = join(cfg.state_dir, 'inbox.jsonl')

function peers(): Map<string, { name: string; inbox: string }> {
  const out = new Map<string, { name: string; inbox: string }>()
  for (const d of readdirSync(runDir)) {
    const f = join(runDir, d, 'config.yaml')
    if (!existsSync(f)) continue
    const c = parse(readFileSync(f, 'utf8')) as Cfg
    out.set(idOf(c.node.name), { name: c.node.name, inbox: join(c.state_dir, 'inbox.jsonl') })
  }
  return out
}

function inbox(): Array<Record<string, unknown>> {
  if (!existsSync(inboxFile)) return []
  return readFileSync(inboxFile, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

const server = new ControlServer({
  path: join(cfg.runtime_dir, 'control.sock'),
  handlers: {
    status: () => ({ node_id: idOf(me), name: me, pid: process.pid, links: cfg.links.map((l) => ({ name: l.name, kind: Object.keys(l).find((k) => k !== 'name'), state: 'up', stats: { framesIn: 1, framesOut: 2 } })) }),
    routes: () => ({
      routes:
        process.env.KAIRO_STANDIN_ROUTES === 'none'
          ? []
          : [...peers().keys()].filter((id) => id !== idOf(me)).map((dst) => ({ dst, link: cfg.links[0]!.name, next_hop: '-', via: dst, cost: 1, hops: 1, age_ms: 0 })),
    }),
    send: (p) => {
      const dst = peers().get(String(p.to))
      if (dst === undefined) throw new TypeError(`no route to ${String(p.to)}`)
      const id = randomBytes(16).toString('hex')
      const payload = Buffer.from(String(p.payload_b64 ?? ''), 'base64')
      const index = /#(\d+) /.exec(payload.toString('latin1'))?.[1]
      if (index === undefined || index !== process.env.KAIRO_STANDIN_DROP) {
        const line = JSON.stringify({ id, from: idOf(me), type: p.type, bytes: payload.length, payload_b64: p.payload_b64, received_at: Date.now() }) + '\n'
        appendFileSync(dst.inbox, line)
        if (process.env.KAIRO_STANDIN_DUPLICATE === '1') appendFileSync(dst.inbox, line)
      }
      return { id, accepted_at: Date.now(), durable: true }
    },
    messages: (p) => {
      const since = typeof p.since === 'number' ? p.since : 0
      const all = inbox().map((m, i) => ({ cursor: i + 1, ...m }))
      const page = all.slice(since, since + (typeof p.limit === 'number' ? p.limit : 1000))
      return { messages: page, next: since + page.length }
    },
  },
})
await server.listen()
process.stdout.write(JSON.stringify({ event: 'ready', node_id: idOf(me), name: me, control_socket: server.path, links: cfg.links.map((l) => l.name), pid: process.pid }) + '\n')
const stop = () => {
  void server.close().then(() => {
    process.stdout.write(JSON.stringify({ event: 'stopped' }) + '\n', () => process.exit(0))
  })
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
