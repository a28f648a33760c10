/** Output helpers shared by the commands: JSON lines, payload rendering, the gateway logger. */
import type { Command } from 'commander'
import type { GatewayLogger } from '../gateway/udp-gateway.js'

/** Where a command writes: commander's configured output (tests capture it), else stdout/stderr. */
export interface Out {
  out(s: string): void
  err(s: string): void
}

export function outputOf(cmd: Command): Out {
  const cfg = cmd.configureOutput()
  return {
    out: (s) => (cfg.writeOut ? cfg.writeOut(s) : process.stdout.write(s)),
    err: (s) => (cfg.writeErr ? cfg.writeErr(s) : process.stderr.write(s)),
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n')
}

const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The payload as text when it is valid UTF-8 without control characters (other than tab/newline). */
export function printableText(payload: Uint8Array): string | null {
  try {
    const text = utf8.decode(payload)
    return CONTROL.test(text) ? null : text
  } catch {
    return null
  }
}

/** One-line rendering: the text quoted, or `binary, N B, hex 0a1b…` (first 32 bytes). */
export function describePayload(payload: Buffer): string {
  const text = printableText(payload)
  if (text !== null) return JSON.stringify(text)
  const head = payload.subarray(0, 32).toString('hex')
  return `binary, hex ${head}${payload.length > 32 ? '…' : ''}`
}

/** Debug lines on stderr (text or JSON), only when verbose; info/warn always. */
export function cliLogger(opts: { json: boolean; verbose: boolean }): GatewayLogger {
  const line = (level: string, msg: string, fields: Record<string, unknown> = {}) => {
    if (opts.json) {
      process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields }) + '\n')
      return
    }
    const kv = Object.entries(fields)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ')
    process.stderr.write(`${level}: ${msg}${kv ? ' ' + kv : ''}\n`)
  }
  return {
    debug: (msg, fields) => {
      if (opts.verbose) line('debug', msg, fields)
    },
    info: (msg, fields) => line('info', msg, fields),
    warn: (msg, fields) => line('warn', msg, fields),
  }
}
