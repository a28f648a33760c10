/**
 * The example agent of docs/sdk.md (appliance/sdk/example-agent.ts), run as docs/sdk.md says: a
 * worker on gateway b, an asker on gateway a; the answer comes back; a restarted worker picks up
 * after its saved cursor and does not answer twice. And the doc shows the file as it is.
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { freeUdpPorts } from '../lib/ports.js'
import { until } from '../lib/until.js'
import { cleanEnv, gatewayPair, ROOT, shortDir } from '../lib/gateway.js'

const AGENT = join(ROOT, 'appliance', 'sdk', 'example-agent.ts')

interface Agent {
  proc: ChildProcess
  events: () => Array<Record<string, unknown>>
  err: () => string
  exit: Promise<number | null>
}

function agent(t: Test, args: string[]): Agent {
  const proc = spawn(process.execPath, ['--import=tsx', AGENT, ...args], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()))
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()))
  const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  })
  return {
    proc,
    events: () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
    err: () => err,
    exit,
  }
}

t.test('docs/sdk.md shows the example agent as it is', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs', 'sdk.md'), 'utf8')
  const code = readFileSync(AGENT, 'utf8')
  t.ok(doc.includes('```ts\n' + code + '```'), 'the file, verbatim, in a ts block')
})

t.test('the example agent: ask, serve, answer; a restart resumes after the saved cursor', async (t) => {
  const [a, b] = await gatewayPair(t, (await freeUdpPorts(2)) as [number, number])
  const cursorFile = join(shortDir(t), 'b.cursor')
  const worker = agent(t, ['--socket', b.socket, '--cursor-file', cursorFile])
  await until('worker ready', 20_000, () => worker.events().some((e) => e.event === 'ready'))

  const asker = agent(t, ['--socket', a.socket, '--ask', b.nodeId, 'hello', 'mesh'])
  let timer: NodeJS.Timeout | undefined
  const code = await Promise.race([asker.exit, new Promise<string>((r) => (timer = setTimeout(() => r('timeout'), 60_000)))])
  clearTimeout(timer)
  t.equal(code, 0, `the asker exits 0 once answered (${asker.err().trim()}${JSON.stringify(asker.events().at(-1))})`)
  const ev = asker.events()
  const delivered = ev.find((e) => e.event === 'delivered')
  t.equal(delivered?.to, b.nodeId, 'its request was delivered to b')
  const answer = ev.find((e) => e.event === 'answer')
  t.same([answer?.from, answer?.reply_to, answer?.result], [b.nodeId, delivered?.id, 'HELLO MESH'], 'the answer, from b, to that request')
  t.equal(ev.at(-1)?.event, 'stopped')

  // The worker's own account (its output may trail the asker's exit by a moment).
  const replied = await until('the worker to say it replied', 10_000, () => {
    const r = worker.events().filter((e) => e.event === 'replied')
    return r.length > 0 ? r : undefined
  }).catch(() => [])
  t.equal(replied.length, 1, 'the worker replied once')
  t.equal(replied[0]?.request, delivered?.id)
  const cursor = await until('the saved cursor', 10_000, () => Number(existsSync(cursorFile) ? readFileSync(cursorFile, 'utf8') : 0) > 0).catch(() => false)
  t.ok(cursor, 'the worker saved its cursor')

  worker.proc.kill('SIGTERM')
  t.equal(await worker.exit, 0, 'SIGTERM: the worker stops cleanly')
  t.equal(worker.events().at(-1)?.event, 'stopped')

  const again = agent(t, ['--socket', b.socket, '--cursor-file', cursorFile])
  await until('restarted worker ready', 20_000, () => again.events().some((e) => e.event === 'ready'))
  await new Promise((r) => setTimeout(r, 1500))
  t.same(again.events().filter((e) => e.event === 'replied'), [], 'after a restart: the request is not served again')
  again.proc.kill('SIGTERM')
  t.equal(await again.exit, 0)
})
