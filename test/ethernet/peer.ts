/**
 * One end of a raw Ethernet link in another network namespace, driven over stdio with JSON
 * lines (a Node process cannot change namespace, so the test runs this under `ip netns exec`):
 *
 *   ip netns exec NS node --import=tsx test/ethernet/peer.ts
 *
 * stdin:  {"id":1,"op":"create","driver":"ethernet"|"raw-ip","options":{...}}
 *         {"id":2,"op":"open"} {"id":3,"op":"send","data":"<base64>","to":"..."}
 *         {"id":4,"op":"echo","prefix":"echo:"}   (answer every frame to its sender, unicast)
 *         {"id":5,"op":"close"} {"id":6,"op":"abort"} {"id":7,"op":"stats"}
 * stdout: {"id":1,"ok":true,"result":...} | {"id":1,"ok":false,"error":{name,message,code,field}}
 *         {"ev":"ready"} {"ev":"state","state":"up"} {"ev":"frame","data":"<base64>","from":"..."}
 *         {"ev":"drain"} {"ev":"dropped",...} {"ev":"error","message":...}; every event carries
 *         "stats" (the link's stats() then).
 * The link closes and the process exits when stdin ends.
 */
import { createInterface } from 'node:readline'
import type { BaseLink } from '../../drivers/base-link.js'
import { EthernetLink, type EthernetLinkOptions } from '../../drivers/ethernet/pcap-link.js'
import { RawIpLink, type RawIpLinkOptions } from '../../drivers/ethernet/raw-ip-link.js'

type Request =
  | { id: number; op: 'create'; driver: 'ethernet'; options: EthernetLinkOptions }
  | { id: number; op: 'create'; driver: 'raw-ip'; options: RawIpLinkOptions }
  | { id: number; op: 'open' | 'close' | 'abort' | 'stats' }
  | { id: number; op: 'send'; data: string; to?: string }
  | { id: number; op: 'echo'; prefix: string | null }

let link: BaseLink | undefined
let echo: Buffer | null = null

function out(msg: object): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`)
}

function event(ev: string, fields: object = {}): void {
  out({ ev, ...fields, stats: link?.stats() })
}

function info(l: BaseLink): object {
  return { name: l.name, kind: l.kind, mtu: l.mtu, bitrate: l.bitrate, mac: (l as EthernetLink).mac, address: (l as RawIpLink).address, transport: (l as EthernetLink | RawIpLink).transport }
}

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'create': {
      if (link !== undefined) throw new Error('a link was already created')
      const l: BaseLink = req.driver === 'ethernet' ? new EthernetLink(req.options) : new RawIpLink(req.options)
      link = l
      l.on('state', (state) => event('state', { state }))
      l.on('drain', () => event('drain'))
      l.on('dropped', (d) => event('dropped', d))
      l.on('error', (e) => event('error', { message: e.message }))
      l.on('frame', (f) => {
        event('frame', { data: f.data.toString('base64'), from: f.from })
        if (echo === null || f.from === undefined) return
        try {
          l.send(Buffer.concat([echo, f.data]).subarray(0, l.mtu), { to: f.from })
        } catch (err) {
          event('error', { message: `echo: ${(err as Error).message}` })
        }
      })
      return info(l)
    }
    case 'open':
      await need().open()
      return info(need())
    case 'send':
      return need().send(Buffer.from(req.data, 'base64'), req.to === undefined ? {} : { to: req.to })
    case 'echo':
      echo = req.prefix === null ? null : Buffer.from(req.prefix)
      return true
    case 'close':
      await need().close()
      return true
    case 'abort':
      need().abort(new Error('aborted by the test'))
      return true
    case 'stats':
      return need().stats()
  }
}

function need(): BaseLink {
  if (link === undefined) throw new Error('no link: send "create" first')
  return link
}

const rl = createInterface({ input: process.stdin })
rl.on('line', (line) => {
  let req: Request
  try {
    req = JSON.parse(line) as Request
  } catch {
    return event('error', { message: `not JSON: ${line.slice(0, 80)}` })
  }
  handle(req).then(
    (result) => out({ id: req.id, ok: true, result }),
    (err: Error & { code?: string; field?: string }) => out({ id: req.id, ok: false, error: { name: err.name, message: err.message, code: err.code, field: err.field } }),
  )
})
rl.on('close', () => {
  const l = link
  const done = () => process.exit(0)
  if (l === undefined) return done()
  l.close().then(done, done)
  setTimeout(done, 3000).unref()
})
event('ready')
