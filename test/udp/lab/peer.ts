/**
 * One UdpLink in its own process, for the far end of a lab segment (a network namespace the test
 * process cannot enter): `ip netns exec NS node --import=tsx test/udp/lab/peer.ts '<options json>'`.
 *
 * Commands arrive as JSON lines on stdin: {id, op: 'open'|'close'|'abort'|'send'|'neighbours'|
 * 'stats', data?: hex, to?, priority?}. Answers ({id, ok, result | error}) and events ({ev:
 * 'ready'|'state'|'frame'|'neighbour'|'dropped', ..., stats}) are JSON lines on stdout. The
 * process exits when stdin closes (its parent went away).
 */
import { createInterface } from 'node:readline'
import { UdpLink, type UdpLinkOptions } from '../../../drivers/udp/link.js'
import type { Priority } from '../../../drivers/link.js'

interface Command {
  id: number
  op: 'open' | 'close' | 'abort' | 'send' | 'neighbours' | 'stats'
  data?: string
  to?: string
  priority?: Priority
}

const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`)
const errorJson = (err: unknown) => {
  const e = err as { name?: string; message?: string; code?: string; field?: string }
  return { name: e.name, message: e.message, code: e.code, field: e.field }
}

let link: UdpLink
try {
  link = new UdpLink(JSON.parse(process.argv[2] ?? '{}') as UdpLinkOptions)
} catch (err) {
  out({ ev: 'fatal', error: errorJson(err) })
  process.exit(2)
}
const stats = () => link.stats()
link.on('state', (state) => out({ ev: 'state', state, stats: stats() }))
link.on('frame', (f) => out({ ev: 'frame', data: f.data.toString('hex'), from: f.from, at: f.at, stats: stats() }))
link.on('neighbour', (n) => out({ ev: 'neighbour', neighbour: n }))
link.on('dropped', (d) => out({ ev: 'dropped', ...d, stats: stats() }))
link.on('error', (err) => out({ ev: 'error', error: errorJson(err) }))

async function run(c: Command): Promise<unknown> {
  switch (c.op) {
    case 'open':
      await link.open()
      return { address: link.address() }
    case 'close':
      await link.close()
      return null
    case 'abort':
      link.abort(new Error('aborted by the test'))
      return null
    case 'send':
      return link.send(Buffer.from(c.data ?? '', 'hex'), { ...(c.to === undefined ? {} : { to: c.to }), ...(c.priority === undefined ? {} : { priority: c.priority }) })
    case 'neighbours':
      return link.neighbours()
    case 'stats':
      return stats()
  }
}

createInterface({ input: process.stdin })
  .on('line', (line) => {
    const c = JSON.parse(line) as Command
    run(c).then(
      (result) => out({ id: c.id, ok: true, result }),
      (err: unknown) => out({ id: c.id, ok: false, error: errorJson(err) }),
    )
  })
  .on('close', () => {
    link.abort()
    setTimeout(() => process.exit(0), 50)
  })

out({ ev: 'ready', name: link.name, mtu: link.mtu, bitrate: link.bitrate, stats: stats() })
