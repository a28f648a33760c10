/**
 * An example agent on the local SDK (docs/sdk.md walks through it; test/sdk/example.test.ts runs
 * two of them on two gateways).
 *
 * It serves one kind of task, "upper": a TASK_REQUEST whose payload is {"op":"upper","text":...}
 * gets a TASK_REQUEST back to its sender, {"reply_to": <id>, "result": <TEXT>}. With --ask NODE_ID
 * it first asks that node to do one, waits until the request is delivered, prints the answer
 * when it comes, and exits.
 *
 *   node --import=tsx appliance/sdk/example-agent.ts [--socket PATH] [--cursor-file FILE] [--ask NODE_ID TEXT]
 *
 * It prints one JSON object per line on stdout (what it did) and remembers the cursor of the
 * last message it handled in --cursor-file, so a restart neither loses nor repeats work.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { GatewayUnavailableError, KairoClient, KairoSdkError, MessageExpiredError, OutboxFullError, type ReceivedMessage } from './index.js'

const { values: args, positionals } = parseArgs({
  options: { socket: { type: 'string' }, 'cursor-file': { type: 'string' }, ask: { type: 'string' } },
  allowPositionals: true,
})
const log = (event: string, fields: Record<string, unknown> = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')

// The cursor of the last message handled: start after it.
async function loadCursor(): Promise<number> {
  if (!args['cursor-file']) return 0
  try {
    return Number(await readFile(args['cursor-file'], 'utf8')) || 0
  } catch {
    return 0
  }
}
async function saveCursor(cursor: number): Promise<void> {
  if (!args['cursor-file']) return
  await writeFile(args['cursor-file'] + '.tmp', String(cursor))
  await rename(args['cursor-file'] + '.tmp', args['cursor-file']) // atomic: never a half-written cursor
}

const kairo = await KairoClient.connect(args.socket ? { socket: args.socket } : {})
const stop = new AbortController()
process.once('SIGINT', () => stop.abort())
process.once('SIGTERM', () => stop.abort())
log('ready', { socket: kairo.socket })

// Sends with the retries an agent wants: a full outbox drains, a gateway restarts.
async function sendReliably(to: string, body: unknown): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await kairo.send(to, 'TASK_REQUEST', JSON.stringify(body), { ttlS: 300 })).id
    } catch (err) {
      const transient = err instanceof OutboxFullError || err instanceof GatewayUnavailableError
      if (!transient || attempt >= 5) throw err
      log('retrying', { code: (err as KairoSdkError).code, transaction_id: (err as KairoSdkError).transactionId })
      await sleep(1000 * attempt)
    }
  }
}

let asked: string | null = null
if (args.ask) {
  const text = positionals.join(' ') || 'hello'
  try {
    const st = await kairo.sendAndWait(args.ask, 'TASK_REQUEST', JSON.stringify({ op: 'upper', text }), { ttlS: 60, timeoutMs: 60_000 })
    asked = st.id
    log('delivered', { id: st.id, to: st.to, attempts: st.attempts })
  } catch (err) {
    if (err instanceof MessageExpiredError) log('expired', { id: err.messageId, transaction_id: err.transactionId })
    else if (err instanceof KairoSdkError) log('failed', { code: err.code, message: err.message, transaction_id: err.transactionId })
    else throw err
    await kairo.close()
    process.exit(1)
  }
}

async function handle(m: ReceivedMessage): Promise<void> {
  if (m.type !== 'TASK_REQUEST') {
    log('ignored', { id: m.id, from: m.from, type: m.type })
    return
  }
  let body: { op?: unknown; text?: unknown; reply_to?: unknown; result?: unknown }
  try {
    body = JSON.parse(m.text()) as typeof body
  } catch {
    log('not-json', { id: m.id, from: m.from })
    return
  }
  if (typeof body.reply_to === 'string') {
    log('answer', { from: m.from, reply_to: body.reply_to, result: body.result })
    if (body.reply_to === asked) stop.abort() // --ask: got what we came for
    return
  }
  if (body.op === 'upper' && typeof body.text === 'string') {
    const id = await sendReliably(m.from, { reply_to: m.id, result: body.text.toUpperCase() })
    log('replied', { to: m.from, request: m.id, reply: id })
  }
}

// The main loop: every message after the saved cursor, then new ones as they come.
let since = await loadCursor()
while (!stop.signal.aborted) {
  try {
    for await (const m of kairo.messages({ since, signal: stop.signal })) {
      await handle(m)
      since = m.cursor
      await saveCursor(since)
    }
  } catch (err) {
    if (!(err instanceof GatewayUnavailableError)) throw err
    log('gateway-unavailable', { reason: err.reason }) // stopped or restarting: try again shortly
    await sleep(2000, undefined, { signal: stop.signal }).catch(() => {})
  }
}
await kairo.close()
log('stopped')
