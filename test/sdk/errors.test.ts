/**
 * The SDK's typed errors against a real gateway: no gateway, bad requests refused locally and by
 * the gateway (field named), a message that expires, a full outbox, a gateway that stops and
 * comes back, close() and abort.
 */
import t from 'tap'
import { join } from 'node:path'
import {
  GatewayUnavailableError,
  InvalidRequestError,
  KairoClient,
  KairoSdkError,
  MessageExpiredError,
  OutboxFullError,
  type AgentType,
} from '../../appliance/sdk/index.js'
import { freeUdpPorts } from '../lib/ports.js'
import { shortDir, startGateway } from '../lib/gateway.js'

const NOBODY = 'a0'.repeat(16)

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection')
    },
    (err: unknown) => err,
  )
}

t.test('no gateway: GatewayUnavailableError naming the socket and what to do', async (t) => {
  const dir = shortDir(t)
  const socket = join(dir, 'control.sock')
  const err = await rejection(KairoClient.connect({ socket, timeoutMs: 2000 }))
  t.type(err, GatewayUnavailableError)
  t.type(err, KairoSdkError)
  const e = err as GatewayUnavailableError
  t.equal(e.code, 'EUNAVAILABLE')
  t.equal(e.reason, 'ENOENT')
  t.equal(e.socket, socket)
  t.match(e.message, socket)
  t.match(e.message, /is kairo-gw running/)
})

t.test('bad requests: refused before any I/O, or by the gateway, naming the field', async (t) => {
  const gw = await startGateway(t, { name: 'x' })
  const k = await KairoClient.connect({ socket: gw.socket })
  t.teardown(() => k.close())

  const local = (await rejection(k.send('not-a-node', 'TASK_REQUEST', 'x'))) as InvalidRequestError
  t.type(local, InvalidRequestError)
  t.equal(local.field, 'to')
  t.equal(local.code, 'EINVAL')
  t.equal(local.transactionId, undefined, 'refused locally: no transaction')
  const badType = (await rejection(k.send(NOBODY, 'PING' as AgentType, 'x'))) as InvalidRequestError
  t.equal(badType.field, 'type')
  t.match(badType.message, /TASK_REQUEST, AGENT_MIGRATION, REPUTATION_DELTA, BROADCAST_ANNOUNCE, VECTOR_SYNC/)
  t.equal(((await rejection(k.send(NOBODY, 'TASK_REQUEST', 'x', { ttlS: 0 }))) as InvalidRequestError).field, 'ttl_s')
  t.equal(((await rejection(k.sendAndWait('*', 'BROADCAST_ANNOUNCE', 'x'))) as InvalidRequestError).field, 'to', 'a broadcast has nothing to wait for')
  t.equal(((await rejection(k.sendAndWait(NOBODY, 'TASK_REQUEST', 'x', { reliable: false }))) as InvalidRequestError).field, 'reliable')
  t.equal(((await rejection(k.status('xyz'))) as InvalidRequestError).field, 'id')

  // Refused by the gateway itself: the destination is the gateway.
  const self = (await rejection(k.send(gw.nodeId, 'TASK_REQUEST', 'x'))) as InvalidRequestError
  t.type(self, InvalidRequestError, "the gateway's -32602 is an InvalidRequestError")
  t.equal(self.field, 'to')
  t.match(self.message, /itself/)

  const unknown = (await rejection(k.call('frobnicate'))) as KairoSdkError
  t.type(unknown, KairoSdkError)
  t.equal(unknown.code, 'ENOMETHOD')

  t.equal((await k.call<{ node_id: string }>('status')).node_id, gw.nodeId, 'the connection is still good after all that')
})

t.test('a message nobody acknowledges expires: MessageExpiredError with the transaction ID', async (t) => {
  const gw = await startGateway(t, { name: 'x' })
  const k = await KairoClient.connect({ socket: gw.socket })
  t.teardown(() => k.close())
  const started = Date.now()
  const err = (await rejection(k.sendAndWait(NOBODY, 'TASK_REQUEST', 'into the void', { ttlS: 1, pollMs: 50, timeoutMs: 30_000 }))) as MessageExpiredError
  t.type(err, MessageExpiredError)
  t.equal(err.code, 'EEXPIRED')
  t.match(err.messageId, /^[0-9a-f]{32}$/)
  t.match(err.transactionId, /^[0-9a-f]+$/, 'carries a transaction ID')
  t.equal(err.transaction_id, err.transactionId)
  t.ok(Date.now() - started < 20_000, 'within its TTL and the expiry sweep')
})

t.test('a full outbox: OutboxFullError with the transaction ID; the gateway carries on', async (t) => {
  const [port] = (await freeUdpPorts(1)) as [number]
  const gw = await startGateway(t, { name: 'full', udp: { port, peers: [] }, yaml: 'store: { max_messages: 2 }' })
  const k = await KairoClient.connect({ socket: gw.socket })
  t.teardown(() => k.close())
  await k.send(NOBODY, 'TASK_REQUEST', 'one')
  await k.send(NOBODY, 'TASK_REQUEST', 'two')
  const err = (await rejection(k.send(NOBODY, 'TASK_REQUEST', 'three'))) as OutboxFullError
  t.type(err, OutboxFullError)
  t.equal(err.code, 'ELIMIT', "the gateway's code")
  t.match(err.message, /outbox full/)
  t.match(err.transactionId, /^[0-9a-f]{16}$/, 'carries the transaction ID')
  t.equal((err.toJSON() as { transaction_id?: string }).transaction_id, err.transactionId, 'toJSON has transaction_id')
  t.equal((await k.call<{ node_id: string }>('status')).node_id, gw.nodeId, 'still answering')
})

t.test('the gateway stops: calls and the iterator fail with GatewayUnavailableError; after a restart the same client carries on', async (t) => {
  const [port] = (await freeUdpPorts(1)) as [number]
  const gw = await startGateway(t, { name: 'r', udp: { port, peers: [] } })
  const k = await KairoClient.connect({ socket: gw.socket, timeoutMs: 3000 })
  t.teardown(() => k.close())
  const before = await k.send(NOBODY, 'TASK_REQUEST', 'queued before the restart')

  const iter = k.messages({ pollMs: 50 })[Symbol.asyncIterator]()
  // Caught at once: the poll may fail while the gateway is still stopping.
  const failed = rejection(iter.next())
  t.equal(await gw.stop(), 0, 'SIGTERM: clean exit')
  const iterErr = await failed
  t.type(iterErr, GatewayUnavailableError, 'the iterator fails with GatewayUnavailableError')
  const callErr = (await rejection(k.call('status'))) as GatewayUnavailableError
  t.type(callErr, GatewayUnavailableError, 'a call while it is down: GatewayUnavailableError')
  t.match(callErr.reason, /^(ENOENT|ECONNREFUSED)$/)

  const again = await startGateway(t, { name: 'r', udp: { port, peers: [] }, dir: gw.dir })
  t.equal(again.socket, gw.socket, 'same socket path')
  t.equal(again.nodeId, gw.nodeId, 'same node')
  const st = await k.status(before.id)
  t.equal(st.state, 'pending', 'the same client reconnected; the message survived the restart in the outbox')
})

t.test('close() ends iterators and refuses further calls; an abort ends an iterator without error', async (t) => {
  const gw = await startGateway(t, { name: 'c' })
  const k = await KairoClient.connect({ socket: gw.socket })
  const ac = new AbortController()
  const seen: unknown[] = []
  const loop = (async () => {
    for await (const m of k.messages({ pollMs: 20, signal: ac.signal })) seen.push(m)
    return 'ended'
  })()
  await new Promise((r) => setTimeout(r, 100))
  ac.abort()
  t.equal(await loop, 'ended', 'abort: the loop ends normally')

  const loop2 = (async () => {
    for await (const m of k.messages({ pollMs: 20 })) seen.push(m)
    return 'ended'
  })()
  await new Promise((r) => setTimeout(r, 100))
  await k.close()
  t.equal(await loop2, 'ended', 'close(): the loop ends normally')
  t.ok(k.closed)
  const err = (await rejection(k.send(NOBODY, 'TASK_REQUEST', 'x'))) as GatewayUnavailableError
  t.type(err, GatewayUnavailableError)
  t.equal(err.reason, 'ECLOSED')
  t.same(seen, [], 'nothing was received')
})
