/**
 * The SDK's pure parts: the readers of the gateway's answers (fast-check: any JSON is either read
 * or refused with EPROTO, never a crash; well-formed answers read back exactly), the mapping of
 * control-socket errors to typed errors, the socket lookup rules, the send params check.
 */
import t from 'tap'
import fc from 'fast-check'
import { ConnectionLostError, TimeoutError } from '../../appliance/core/errors.js'
import { AGENT_TYPE_NAMES } from '../../appliance/core/wire/constants.js'
import { ControlConnectError, ControlError } from '../../appliance/control/client.js'
import {
  AGENT_TYPES,
  DeliveryFailedError,
  GatewayUnavailableError,
  InvalidRequestError,
  KairoSdkError,
  MessageExpiredError,
  OutboxFullError,
  RefusedByPolicyError,
  WaitTimeoutError,
  devRuntimeDir,
  findControlSocket,
  isAgentType,
  sendParams,
} from '../../appliance/sdk/index.js'
import { fromControlError, toSdkError } from '../../appliance/sdk/errors.js'
import { parseMessagesPage, parseMessageStatus, parseSendResult } from '../../appliance/sdk/parse.js'

const HEX32 = fc.stringMatching(/^[0-9a-f]{32}$/)

t.test('AgentType: the five wire names', async (t) => {
  t.same([...AGENT_TYPES], [...AGENT_TYPE_NAMES])
  t.ok(AGENT_TYPES.every(isAgentType))
  t.notOk(isAgentType('task_request'), 'exact names only')
  t.notOk(isAgentType(7))
})

/** Calls `f`; true when it returned, false when it threw a KairoSdkError EPROTO; rethrows anything else. */
function readsOrRefuses(f: () => unknown): boolean {
  try {
    f()
    return true
  } catch (err) {
    if (err instanceof KairoSdkError && err.code === 'EPROTO') return false
    throw err
  }
}

t.test('readers: any JSON is read or refused with EPROTO naming the field', async (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      readsOrRefuses(() => parseSendResult(v))
      readsOrRefuses(() => parseMessageStatus(v))
      readsOrRefuses(() => parseMessagesPage(v))
    }),
    { numRuns: 2000 },
  )
  // Near misses: well-formed objects with one field replaced by any JSON.
  const page = (m: Record<string, unknown>) => ({ messages: [m], next: 1 })
  const good = { cursor: 1, id: 'a'.repeat(32), from: 'b'.repeat(32), type: 'TASK_REQUEST', bytes: 2, payload_b64: 'aGk=', received_at: 1_700_000_000_000 }
  fc.assert(
    fc.property(fc.constantFrom(...Object.keys(good)), fc.jsonValue(), (key, v) => {
      readsOrRefuses(() => parseMessagesPage(page({ ...good, [key]: v })))
    }),
    { numRuns: 2000 },
  )
  const e = (() => {
    try {
      parseMessagesPage(page({ ...good, type: 'PING' }))
    } catch (err) {
      return err as KairoSdkError
    }
    return null
  })()
  t.equal(e?.code, 'EPROTO')
  t.match(e?.message, /messages\[0\]\.type/, 'names the field')
})

t.test('readers: well-formed answers read back exactly', async (t) => {
  const msg = fc.record({
    cursor: fc.nat({ max: 2 ** 40 }),
    id: HEX32,
    from: HEX32,
    type: fc.constantFrom(...AGENT_TYPES),
    payload: fc.uint8Array({ maxLength: 300 }),
    received_at: fc.integer({ min: 0, max: 4_102_444_800_000 }),
  })
  fc.assert(
    fc.property(fc.array(msg, { maxLength: 8 }), fc.nat(), fc.boolean(), (list, next, iso) => {
      const wire = {
        messages: list.map((m) => ({ cursor: m.cursor, id: m.id, from: m.from, type: m.type, bytes: m.payload.length, payload_b64: Buffer.from(m.payload).toString('base64'), received_at: iso ? new Date(m.received_at).toISOString() : m.received_at })),
        next,
      }
      const page = parseMessagesPage(JSON.parse(JSON.stringify(wire)))
      if (page.next !== next || page.messages.length !== list.length) return false
      return page.messages.every((r, i) => {
        const m = list[i]!
        return r.cursor === m.cursor && r.id === m.id && r.from === m.from && r.type === m.type && r.payload.equals(Buffer.from(m.payload)) && r.receivedAt.getTime() === m.received_at && r.text() === Buffer.from(m.payload).toString('utf8')
      })
    }),
    { numRuns: 500 },
  )
  const s = parseSendResult({ id: 'c'.repeat(32), accepted_at: 1_700_000_000_000, durable: true, broadcast: false })
  t.same(s, { id: 'c'.repeat(32), acceptedAt: new Date(1_700_000_000_000), durable: true, broadcast: false })
  const st = parseMessageStatus({ id: 'c'.repeat(32), state: 'failed', to: 'd'.repeat(32), attempts: 4, delivered_at: null, last_error: { code: 'EHANDSHAKE', message: 'no answer', transaction_id: '0123456789abcdef' } })
  t.same(st.lastError, { code: 'EHANDSHAKE', message: 'no answer', transactionId: '0123456789abcdef' })
  t.equal(st.deliveredAt, null)
})

t.test('control errors become typed errors, keeping the transaction ID', async (t) => {
  const ce = (code: number, message: string, data?: Record<string, string>) => new ControlError(message, code, data, 'send')
  const inv = fromControlError(ce(-32602, "'to' must be ...", { field: 'to' }))
  t.type(inv, InvalidRequestError)
  t.equal((inv as InvalidRequestError).field, 'to')
  const full = fromControlError(ce(-32000, 'outbox full: 2 messages / 6 bytes queued', { kairo_code: 'ELIMIT', transaction_id: 'aa11bb22cc33dd44' }))
  t.type(full, OutboxFullError)
  t.equal(full.transactionId, 'aa11bb22cc33dd44')
  t.equal(full.code, 'ELIMIT')
  const pol = fromControlError(ce(-32000, 'refused by policy rule 3', { kairo_code: 'POLICY_DENIED', transaction_id: 'ff' }))
  t.type(pol, RefusedByPolicyError)
  t.equal(pol.code, 'POLICY_DENIED')
  t.equal(pol.transactionId, 'ff')
  t.type(fromControlError(ce(-32000, 'x', { kairo_code: 'EPOLICY' })), RefusedByPolicyError)
  const other = fromControlError(ce(-32000, 'handshake failed', { kairo_code: 'EHANDSHAKE', transaction_id: '01' }))
  t.equal(other.constructor, KairoSdkError)
  t.equal(other.code, 'EHANDSHAKE')
  t.equal(fromControlError(ce(-32601, 'unknown method')).code, 'ENOMETHOD')
  const internal = fromControlError(ce(-32603, 'internal error', { transaction_id: '77' }))
  t.equal(internal.code, 'EINTERNAL')
  t.equal(internal.transactionId, '77')

  const sock = '/run/x.sock'
  const gone = toSdkError(new ControlConnectError('no gateway', 'ENOENT', sock), sock)
  t.type(gone, GatewayUnavailableError)
  t.equal((gone as GatewayUnavailableError).reason, 'ENOENT')
  t.equal((toSdkError(new TimeoutError('slow', { transaction_id: '9' }), sock) as GatewayUnavailableError).reason, 'ETIMEDOUT')
  t.equal((toSdkError(new ConnectionLostError('closed'), sock) as GatewayUnavailableError).reason, 'ECONNLOST')
  const typed = new DeliveryFailedError('x', 'c'.repeat(32), 'EHANDSHAKE', { transactionId: '12' })
  t.equal(toSdkError(typed, sock), typed, 'typed errors pass through')
  t.equal(toSdkError(new Error('boom'), sock).code, 'EINTERNAL')
  for (const E of [GatewayUnavailableError, InvalidRequestError, DeliveryFailedError, MessageExpiredError, RefusedByPolicyError, OutboxFullError, WaitTimeoutError]) t.ok(E.prototype instanceof KairoSdkError, `${E.name} is a KairoSdkError`)
  t.equal(new WaitTimeoutError('x', 'id').name, 'WaitTimeoutError', 'name is the class')
})

t.test('socket lookup: explicit socket, runtime dir, $KAIRO_RUNTIME_DIR, state dir, /run/kairo-gw, ./var/state', async (t) => {
  const none = () => false
  const all = () => true
  t.equal(findControlSocket({ socket: '/a/s.sock', runtimeDir: '/r', env: { KAIRO_RUNTIME_DIR: '/e' }, exists: all }), '/a/s.sock')
  t.equal(findControlSocket({ runtimeDir: '/r', env: { KAIRO_RUNTIME_DIR: '/e' }, exists: all }), '/r/control.sock')
  t.equal(findControlSocket({ env: { KAIRO_RUNTIME_DIR: '/e' }, stateDir: '/s', exists: all }), '/e/control.sock')
  t.equal(findControlSocket({ stateDir: '/s', env: {}, exists: all }), '/s/run/control.sock', 'an explicit state dir beats /run/kairo-gw')
  t.equal(findControlSocket({ env: { KAIRO_STATE_DIR: '/s' }, exists: all }), '/run/kairo-gw/control.sock', 'systemd when it is there')
  t.equal(findControlSocket({ env: { KAIRO_STATE_DIR: '/s' }, exists: none }), '/s/run/control.sock')
  t.equal(findControlSocket({ env: {}, exists: none }), `${process.cwd()}/var/state/run/control.sock`, 'npm start')
  t.equal(findControlSocket({ env: { KAIRO_RUNTIME_DIR: '' }, exists: none, stateDir: '' }), `${process.cwd()}/var/state/run/control.sock`, 'empty values count as unset')
  const deep = '/' + 'd'.repeat(120)
  t.match(devRuntimeDir(deep), /kairo-gw-[0-9a-f]{12}$/, 'a state dir too deep for a socket path: under the temp dir, as the daemon does')
  t.ok(Buffer.byteLength(findControlSocket({ stateDir: deep, env: {}, exists: none })) <= 107)
})

t.test('send params: checked before any I/O', async (t) => {
  t.same(sendParams('AB'.repeat(16), 'TASK_REQUEST', 'hi', { ttlS: 60 }), { to: 'ab'.repeat(16), type: 'TASK_REQUEST', text: 'hi', ttl_s: 60 })
  t.same(sendParams('*', 'VECTOR_SYNC', new Uint8Array([0, 1, 255]), { reliable: false }), { to: '*', type: 'VECTOR_SYNC', payload_b64: 'AAH/', reliable: false })
  const sub = Buffer.from([9, 9, 1, 2, 9]).subarray(2, 4)
  t.equal(sendParams('*', 'VECTOR_SYNC', sub).payload_b64, Buffer.from([1, 2]).toString('base64'), 'a view sends only its own bytes')
  fc.assert(
    fc.property(fc.string(), fc.string(), (to, type) => {
      try {
        sendParams(to, type, 'x')
        return (to === '*' || /^[0-9a-fA-F]{32}$/.test(to)) && isAgentType(type)
      } catch (err) {
        return err instanceof InvalidRequestError && (err.field === 'to' || err.field === 'type')
      }
    }),
  )
  for (const ttl of [0, -1, 1.5, 31_536_001, Number.NaN]) t.throws(() => sendParams('*', 'VECTOR_SYNC', 'x', { ttlS: ttl }), InvalidRequestError)
  t.throws(() => sendParams('*', 'VECTOR_SYNC', 42 as unknown as string), /payload/)
})
