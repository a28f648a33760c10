/**
 * docs/rnode.md must not drift from the code: every row of its frame-example table (between the
 * `kiss-examples` markers) is re-encoded with kissEncode() and decoded with KissDecoder, and the
 * command it names must be the constant of that value in commands.ts.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import * as C from '../../drivers/lora/rnode/commands.js'
import { KissDecoder, kissEncode } from '../../drivers/lora/rnode/kiss.js'

const DOC = new URL('../../docs/rnode.md', import.meta.url)

export interface Example {
  line: number
  direction: string
  meaning: string
  name: string
  command: number
  data: Buffer
  wire: Buffer
}

const hexBytes = (cell: string, where: string): Buffer => {
  const s = cell.replace(/`/g, '').trim()
  if (s === '' || s === '—') return Buffer.alloc(0)
  if (!/^([0-9a-f]{2})( [0-9a-f]{2})*$/.test(s)) throw new Error(`${where}: "${s}" is not lower-case hex bytes separated by single spaces`)
  return Buffer.from(s.replace(/ /g, ''), 'hex')
}

/** The example rows of the markdown, parsed; throws naming the line of anything malformed. */
export function parseExamples(md: string): Example[] {
  const lines = md.split('\n')
  const begin = lines.findIndex((l) => l.trim() === '<!-- kiss-examples:begin -->')
  const end = lines.findIndex((l) => l.trim() === '<!-- kiss-examples:end -->')
  if (begin < 0 || end < begin) throw new Error('docs/rnode.md: kiss-examples markers missing')
  const out: Example[] = []
  for (let i = begin + 1; i < end; i++) {
    const l = lines[i]!.trim()
    if (l === '') continue
    const cells = l.split('|').slice(1, -1).map((c) => c.trim())
    if (cells.length !== 5) throw new Error(`docs/rnode.md:${i + 1}: expected 5 columns, got ${cells.length}`)
    if (cells[0] === 'Direction' || /^-+$/.test(cells[0]!)) continue
    const where = `docs/rnode.md:${i + 1}`
    const m = /^`(CMD_[A-Z_]+) 0x([0-9A-F]{2})`$/.exec(cells[2]!)
    if (m === null) throw new Error(`${where}: command cell "${cells[2]}" is not \`CMD_NAME 0xNN\``)
    out.push({ line: i + 1, direction: cells[0]!, meaning: cells[1]!, name: m[1]!, command: parseInt(m[2]!, 16), data: hexBytes(cells[3]!, where), wire: hexBytes(cells[4]!, where) })
  }
  return out
}

const examples = parseExamples(readFileSync(DOC, 'utf8'))

t.test('every example is what kissEncode() sends and KissDecoder reads back', async (t) => {
  t.ok(examples.length >= 10, `${examples.length} examples found`)
  for (const ex of examples) {
    const where = `line ${ex.line} (${ex.meaning})`
    t.equal(kissEncode(ex.command, ex.data).toString('hex'), ex.wire.toString('hex'), `${where}: wire`)
    const d = new KissDecoder()
    const frames = d.push(ex.wire)
    t.same(frames.map((f) => [f.command, f.data.toString('hex')]), [[ex.command, ex.data.toString('hex')]], `${where}: decodes back`)
    t.equal(d.errorCount, 0, `${where}: no decoder errors`)
    t.match(ex.direction, /^(host → device|device → host)$/, `${where}: direction`)
  }
})

t.test('every example names the constant of its value', async (t) => {
  const constants = C as unknown as Record<string, unknown>
  for (const ex of examples) t.equal(constants[ex.name], ex.command, `line ${ex.line}: ${ex.name} is 0x${ex.command.toString(16).padStart(2, '0')}`)
})

t.test('the examples the doc promises are there and mean what they say', async (t) => {
  const find = (cmd: number, data: Buffer): Example | undefined => examples.find((e) => e.command === cmd && e.data.equals(data))
  t.ok(find(C.CMD_DETECT, Buffer.from([C.DETECT_REQ])), 'detect request')
  t.ok(find(C.CMD_DETECT, Buffer.from([C.DETECT_RESP])), 'detect response')
  t.ok(find(C.CMD_FREQUENCY, C.u32be(868_100_000)), 'set frequency 868.1 MHz')
  const [maj, min] = C.REQUIRED_FIRMWARE
  t.match(readFileSync(DOC, 'utf8'), new RegExp(`Minimum firmware: ${C.formatVersion(maj, min).replace('.', '\\.')}\\b`), 'the minimum firmware stated is REQUIRED_FIRMWARE')
  const escaped = examples.filter((e) => e.command === C.CMD_DATA && e.data.includes(C.FEND) && e.data.includes(C.FESC))
  t.ok(escaped.length > 0, 'a data frame whose payload needs both escapes')
  const rssi = examples.find((e) => e.command === C.CMD_STAT_RSSI)
  t.ok(rssi !== undefined && rssi.meaning.includes(`${rssi.data[0]! - C.RSSI_OFFSET}`.replace('-', '−')), 'the RSSI example states the dBm its byte carries')
})

t.test('the parser rejects malformed rows rather than skipping them', async (t) => {
  const wrap = (row: string): string => `<!-- kiss-examples:begin -->\n| Direction | Meaning | Command | Data | Wire |\n| --- | --- | --- | --- | --- |\n${row}\n<!-- kiss-examples:end -->\n`
  t.equal(parseExamples(wrap('| host → device | x | `CMD_DETECT 0x08` | `73` | `c0 08 73 c0` |')).length, 1)
  t.throws(() => parseExamples(wrap('| host → device | x | `CMD_DETECT 0x08` | `73` |')), /5 columns/)
  t.throws(() => parseExamples(wrap('| host → device | x | CMD_DETECT | `73` | `c0 08 73 c0` |')), /command cell/)
  t.throws(() => parseExamples(wrap('| host → device | x | `CMD_DETECT 0x08` | `7` | `c0 08 73 c0` |')), /not lower-case hex/)
  t.throws(() => parseExamples('no table'), /markers missing/)
})
