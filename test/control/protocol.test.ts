/**
 * The control socket's wire protocol (appliance/control/protocol.ts), without sockets: request
 * validation and its error codes, error mapping, encoding, the param helpers, line framing, and
 * fast-check properties (any input → a request or an error response, never a throw).
 */
import t from 'tap'
import fc from 'fast-check'
import { isUtf8 } from 'node:buffer'
import { ConfigRejectedError, MalformedPacketError, ResourceLimitError } from '../../appliance/core/errors.js'
import {
  INTERNAL_ERROR,
  INVALID_PARAMS,
  INVALID_REQUEST,
  InvalidParamsError,
  KAIRO_ERROR,
  LineSplitter,
  MAX_DEPTH,
  METHOD_NOT_FOUND,
  PARSE_ERROR,
  encodeResponse,
  errorResponse,
  firstInvalidUtf8,
  methodNotFoundResponse,
  param,
  parseRequest,
  rejectUnknownParams,
  successResponse,
  type JsonRpcFailure,
  type ParseResult,
} from '../../appliance/control/protocol.js'

function failure(r: ParseResult): JsonRpcFailure {
  if (r.ok) throw new Error(`expected an error response, got request ${JSON.stringify(r.request)}`)
  return r.response
}

t.test('valid requests', async (t) => {
  const r = parseRequest('{"jsonrpc":"2.0","id":1,"method":"status","params":{"a":1}}')
  t.same(r, { ok: true, request: { id: 1, method: 'status', params: { a: 1 } } })
  t.same(parseRequest(Buffer.from('{"jsonrpc":"2.0","id":"x","method":"status"}')), { ok: true, request: { id: 'x', method: 'status', params: {} } })
  t.same(parseRequest('{"jsonrpc":"2.0","id":null,"method":"m"}'), { ok: true, request: { id: null, method: 'm', params: {} } })
  const n = parseRequest('  {"jsonrpc":"2.0","method":"poke","params":{}}\r')
  t.ok(n.ok && n.request.id === undefined, 'no id member: a notification (id undefined)')
  t.same(parseRequest(Buffer.from('{"jsonrpc":"2.0","id":2,"method":"send","params":{"text":"héllo ✓ 🚀"}}')), {
    ok: true,
    request: { id: 2, method: 'send', params: { text: 'héllo ✓ 🚀' } },
  })
})

t.test('-32700 parse errors, naming the position when JSON.parse does', async (t) => {
  const e1 = failure(parseRequest('{"jsonrpc":'))
  t.equal(e1.error.code, PARSE_ERROR)
  t.equal(e1.id, null)
  const e2 = failure(parseRequest('{x}'))
  t.equal(e2.error.code, PARSE_ERROR)
  t.match(e2.error.message, /^parse error: .*position 1/)
  const e3 = failure(parseRequest('{"a":}'))
  t.match(e3.error.message, /^parse error: Unexpected token/)
  t.notMatch(e3.error.message, /is not valid JSON/, 'V8s copy of the input is not echoed')
  t.equal(failure(parseRequest('')).error.message, 'parse error: empty request')
  const bad = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]) // {"a":"\xc3("}
  const e4 = failure(parseRequest(bad))
  t.equal(e4.error.code, PARSE_ERROR)
  t.equal(e4.error.message, 'parse error: invalid UTF-8 at byte 6')
  t.equal(failure(parseRequest(Buffer.from([0xff, 0xfe]))).error.message, 'parse error: invalid UTF-8 at byte 0')
})

t.test('-32600 invalid requests name the member', async (t) => {
  const cases: Array<[string, RegExp, unknown]> = [
    ['5', /must be a JSON object, not the number 5/, null],
    ['null', /must be a JSON object, not null/, null],
    ['"x"', /must be a JSON object/, null],
    ['[{"jsonrpc":"2.0","id":1,"method":"a"}]', /batch requests are not supported/, null],
    ['{"id":1,"method":"a"}', /jsonrpc is missing/, 1],
    ['{"jsonrpc":"1.0","id":1,"method":"a"}', /jsonrpc must be "2.0", not the string "1.0"/, 1],
    ['{"jsonrpc":2,"id":"q","method":"a"}', /jsonrpc must be "2.0", not the number 2/, 'q'],
    ['{"jsonrpc":"2.0","id":1}', /method is missing/, 1],
    ['{"jsonrpc":"2.0","id":1,"method":7}', /method must be a string, not the number 7/, 1],
    ['{"jsonrpc":"2.0","id":1,"method":"a","params":"x"}', /params must be an object, not the string "x"/, 1],
    ['{"jsonrpc":"2.0","id":1,"method":"a","params":null}', /params must be an object, not null/, 1],
    ['{"jsonrpc":"2.0","id":1,"method":"a","param":{}}', /unexpected member "param"/, 1],
    ['{"jsonrpc":"2.0","id":{},"method":"a"}', /id must be a string, a safe integer or null, not an object/, null],
    ['{"jsonrpc":"2.0","id":1.5,"method":"a"}', /id must be .* not the number 1.5/, null],
    ['{"jsonrpc":"2.0","id":1e999,"method":"a"}', /id must be .* not the number Infinity/, null],
    ['{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"a"}', /id must be/, null],
    ['{"jsonrpc":"2.0","method":"a","params":7}', /params must be an object/, null],
  ]
  for (const [line, re, id] of cases) {
    const e = failure(parseRequest(line))
    t.equal(e.error.code, INVALID_REQUEST, line)
    t.match(e.error.message, re, line)
    t.equal(e.id, id, `${line}: id`)
    t.equal(e.jsonrpc, '2.0')
  }
})

t.test('-32602 for by-position params', async (t) => {
  const e = failure(parseRequest('{"jsonrpc":"2.0","id":3,"method":"a","params":[1,2]}'))
  t.equal(e.error.code, INVALID_PARAMS)
  t.match(e.error.message, /by-position/)
  t.equal(e.id, 3)
})

t.test('nesting deeper than MAX_DEPTH is refused, at the limit it is fine', async (t) => {
  // the request object is level 1, params level 2: levels - 1 nested objects from params down
  const nest = (levels: number) => '{"jsonrpc":"2.0","id":1,"method":"a","params":' + '{"x":'.repeat(levels - 1) + '1' + '}'.repeat(levels - 1) + '}'
  const atLimit = parseRequest(nest(MAX_DEPTH))
  t.ok(atLimit.ok, `${MAX_DEPTH} levels accepted`)
  const over = failure(parseRequest(nest(MAX_DEPTH + 1)))
  t.equal(over.error.code, INVALID_REQUEST)
  t.match(over.error.message, new RegExp(`nested deeper than ${MAX_DEPTH} levels`))
  const huge = 200_000
  const deep = failure(parseRequest('{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":' + '['.repeat(huge) + ']'.repeat(huge) + '}}'))
  t.equal(deep.error.code, INVALID_REQUEST, '200k levels: refused, no stack overflow')
})

t.test('responses and error mapping', async (t) => {
  t.same(successResponse(1, undefined), { jsonrpc: '2.0', id: 1, result: null })
  const nf = methodNotFoundResponse(4, 'stauts', ['status', 'send', 'routes'])
  t.equal(nf.error.code, METHOD_NOT_FOUND)
  t.equal(nf.error.message, 'unknown method "stauts" (available: routes, send, status)')

  const ke = new ConfigRejectedError('links[0].udp.port: 70000 is out of range', { field: 'links[0].udp.port', transaction_id: 'abcdef0123456789' })
  t.same(errorResponse(9, ke), {
    jsonrpc: '2.0',
    id: 9,
    error: { code: KAIRO_ERROR, message: ke.message, data: { kairo_code: 'ECONFIG', transaction_id: 'abcdef0123456789', field: 'links[0].udp.port' } },
  })
  const rl = new ResourceLimitError('outbox full')
  const r = errorResponse(1, rl)
  t.same(r.error.data, { kairo_code: 'ELIMIT', transaction_id: rl.transaction_id }, 'no field key when the error has none')
  const mp = errorResponse(1, new MalformedPacketError('bad', {}))
  t.notOk(mp.error.data && 'field' in mp.error.data, 'MalformedPacketError without field: no field key')

  const ip = errorResponse(2, new InvalidParamsError('to', "param 'to' is required"))
  t.same(ip.error, { code: INVALID_PARAMS, message: "param 'to' is required", data: { field: 'to' } })

  const secret = new Error('ENOENT: /etc/secret/key at Object.openSync (node:fs:573:3)')
  const internal = errorResponse(3, secret)
  t.equal(internal.error.code, INTERNAL_ERROR)
  t.equal(internal.error.message, 'internal error')
  t.match(internal.error.data?.transaction_id, /^[0-9a-f]{16}$/)
  t.notMatch(JSON.stringify(internal), /secret|openSync|node:fs/, 'nothing of the original error leaks')
  t.equal(errorResponse(3, 'a string').error.code, INTERNAL_ERROR)
  t.equal(errorResponse(3, undefined).error.code, INTERNAL_ERROR)
})

t.test('encodeResponse: one line, never throws', async (t) => {
  const line = encodeResponse(successResponse(1, { text: 'a\nb' }))
  t.equal(line, '{"jsonrpc":"2.0","id":1,"result":{"text":"a\\nb"}}\n')
  t.equal(line.indexOf('\n'), line.length - 1)
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  for (const bad of [cyclic, { n: 10n }]) {
    const out = JSON.parse(encodeResponse(successResponse(7, bad))) as JsonRpcFailure
    t.equal(out.error.code, INTERNAL_ERROR)
    t.equal(out.id, 7)
  }
  let deep: unknown = 1
  for (let i = 0; i < 100_000; i++) deep = [deep]
  const out = JSON.parse(encodeResponse(successResponse('d', deep))) as JsonRpcFailure
  t.equal(out.error.code, INTERNAL_ERROR, 'too deep for JSON.stringify → -32603')
})

t.test('param()', async (t) => {
  const p = { to: 'ab'.repeat(16), n: 5, f: 1.5, b: true, o: { x: 1 }, a: [1, 2], s: 'TASK_REQUEST', nul: null, inf: 1e999 }
  const to: string = param(p, 'to', 'string', { required: true, pattern: /^[0-9a-f]{32}$/ })
  t.equal(to, p.to)
  const missing: string | undefined = param(p, 'missing', 'string')
  t.equal(missing, undefined)
  const limit: number = param(p, 'limit', 'integer', { default: 1000 })
  t.equal(limit, 1000)
  t.equal(param(p, 'n', 'integer', { min: 1, max: 10 }), 5)
  t.equal(param(p, 'f', 'number'), 1.5)
  t.equal(param(p, 'b', 'boolean'), true)
  t.same(param(p, 'o', 'object'), { x: 1 })
  t.same(param(p, 'a', 'array', { max: 2 }), [1, 2])
  const type: 'TASK_REQUEST' | 'VECTOR_SYNC' = param(p, 's', 'string', { required: true, oneOf: ['TASK_REQUEST', 'VECTOR_SYNC'] as const })
  t.equal(type, 'TASK_REQUEST')

  const throws = (fn: () => unknown, name: string, re: RegExp) => {
    try {
      fn()
      t.fail(`expected InvalidParamsError for ${name}`)
    } catch (err) {
      t.ok(err instanceof InvalidParamsError, `${name}: InvalidParamsError`)
      t.equal((err as InvalidParamsError).param, name)
      t.match((err as Error).message, re)
    }
  }
  throws(() => param(p, 'text', 'string', { required: true }), 'text', /^param "text" is required \(a string\)$/)
  throws(() => param(p, 'n', 'string'), 'n', /^param "n" must be a string, not the number 5$/)
  throws(() => param(p, 'to', 'string', { pattern: /^x$/ }), 'to', /must be a string matching \/\^x\$\/, not the string "abab/)
  throws(() => param(p, 'to', 'string', { pattern: /^x$/, expected: '32 hex digits' }), 'to', /^param "to" must be 32 hex digits, not the string/)
  throws(() => param(p, 'n', 'integer', { min: 6, max: 9 }), 'n', /must be an integer in 6\.\.9, not the number 5/)
  throws(() => param(p, 'f', 'integer'), 'f', /must be an integer, not the number 1.5/)
  throws(() => param(p, 'inf', 'number'), 'inf', /must be a finite number, not the number Infinity/)
  throws(() => param(p, 'nul', 'object'), 'nul', /must be an object, not null/)
  throws(() => param(p, 'a', 'object'), 'a', /must be an object, not an array/)
  throws(() => param(p, 'a', 'array', { max: 1 }), 'a', /must be an array of length <= 1/)
  throws(() => param(p, 's', 'string', { oneOf: ['A', 'B'] }), 's', /must be one of A, B, not the string "TASK_REQUEST"/)
  throws(() => param({ __proto__: { inherited: 'x' } } as Record<string, unknown>, 'inherited', 'string', { required: true }), 'inherited', /is required/)
  throws(() => rejectUnknownParams({ to: 1, txt: 2 }, ['to', 'text']), 'txt', /^unknown param "txt" \(expected: to, text\)$/)
  throws(() => rejectUnknownParams({ x: 1 }, []), 'x', /this method takes none/)
  t.doesNotThrow(() => rejectUnknownParams({ to: 1 }, ['to', 'text']))
})

t.test('LineSplitter', async (t) => {
  const s = new LineSplitter(10)
  t.same(s.push(Buffer.from('ab')), [])
  t.same(s.push(Buffer.from('c\nde\r\n\nf')).map(String), ['abc', 'de', ''])
  t.equal(s.bufferedBytes, 1)
  t.same(s.push(Buffer.from('123456789\n')).map(String), ['f123456789'], 'exactly 10 bytes is allowed')
  t.notOk(s.overflowed)
  t.same(s.push(Buffer.from('12345678901')), [])
  t.ok(s.overflowed, '11 bytes without a newline: overflow')
  t.same(s.push(Buffer.from('x\ny\n')), [], 'nothing after an overflow')

  const s2 = new LineSplitter(3)
  s2.push(Buffer.from('abcd\n'))
  t.ok(s2.overflowed, 'a complete line over the limit overflows too')

  // UTF-8 split across chunks stays whole
  const s3 = new LineSplitter(100)
  const bytes = Buffer.from('"🚀"\n')
  const out = [...s3.push(bytes.subarray(0, 3)), ...s3.push(bytes.subarray(3))]
  t.same(out.map(String), ['"🚀"'])

  await t.test('property: any chunking gives the same lines', async (t) => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-z\r]{0,8}$/), { maxLength: 10 }), fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1 }), (lines, cuts) => {
        const text = Buffer.from(lines.map((l) => l + '\n').join(''))
        const sp = new LineSplitter(1000)
        const got: string[] = []
        let at = 0
        let i = 0
        while (at < text.length) {
          const n = cuts[i++ % cuts.length]!
          got.push(...sp.push(text.subarray(at, at + n)).map(String))
          at += n
        }
        const want = lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l))
        return JSON.stringify(got) === JSON.stringify(want)
      }),
      { numRuns: 300 },
    )
    t.pass('chunking property held')
  })
})

t.test('firstInvalidUtf8 agrees with buffer.isUtf8', async (t) => {
  t.equal(firstInvalidUtf8(Buffer.from('héllo 🚀')), -1)
  t.equal(firstInvalidUtf8(Buffer.from([0x61, 0xc0, 0x80])), 1, 'overlong')
  t.equal(firstInvalidUtf8(Buffer.from([0xed, 0xa0, 0x80])), 0, 'surrogate')
  t.equal(firstInvalidUtf8(Buffer.from([0xf4, 0x90, 0x80, 0x80])), 0, 'past U+10FFFF')
  t.equal(firstInvalidUtf8(Buffer.from([0x61, 0x62, 0xe2, 0x82])), 2, 'truncated')
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => (firstInvalidUtf8(bytes) === -1) === isUtf8(bytes)),
    { numRuns: 2000 },
  )
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 20 }), fc.uint8Array({ minLength: 1, maxLength: 3 }), (s, junk) => {
      const good = Buffer.from(s)
      const at = firstInvalidUtf8(Buffer.concat([good, junk]))
      return at === -1 ? isUtf8(Buffer.concat([good, junk])) : at >= good.length
    }),
    { numRuns: 2000 },
  )
  t.pass('agrees')
})

// ---------------------------------------------------------------------------------------------
// Properties: parseRequest never throws, and what it returns is well-formed

function checkResult(r: ParseResult): boolean {
  if (r.ok) {
    const q = r.request
    return (
      typeof q.method === 'string' &&
      typeof q.params === 'object' &&
      q.params !== null &&
      !Array.isArray(q.params) &&
      (q.id === undefined || q.id === null || typeof q.id === 'string' || Number.isSafeInteger(q.id))
    )
  }
  const e = r.response
  const codes = [PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS]
  const line = encodeResponse(e)
  const back = JSON.parse(line) as JsonRpcFailure
  return (
    e.jsonrpc === '2.0' &&
    codes.includes(e.error.code) &&
    typeof e.error.message === 'string' &&
    e.error.message.length > 0 &&
    e.error.message.length <= 600 &&
    !e.error.message.includes('\n') &&
    line.indexOf('\n') === line.length - 1 &&
    back.error.code === e.error.code &&
    (e.id === null || typeof e.id === 'string' || Number.isSafeInteger(e.id))
  )
}

const request = fc.record(
  {
    jsonrpc: fc.oneof(fc.constant('2.0'), fc.constant('2.0'), fc.jsonValue()),
    id: fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.jsonValue()),
    method: fc.oneof(fc.constantFrom('status', 'send', 'rpc.x', '__proto__', 'constructor'), fc.jsonValue()),
    params: fc.oneof(fc.dictionary(fc.string(), fc.jsonValue()), fc.jsonValue()),
    extra: fc.jsonValue(),
  },
  { requiredKeys: [] },
)

t.test('property: any string → a request or an error response, never a throw', async (t) => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => checkResult(parseRequest(s))), { numRuns: 3000 })
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => checkResult(parseRequest(Buffer.from(b)))), { numRuns: 3000 })
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => checkResult(parseRequest(JSON.stringify(v)))), { numRuns: 2000 })
  fc.assert(fc.property(request, (r) => checkResult(parseRequest(JSON.stringify(r)))), { numRuns: 3000 })
  // mutations of a valid request: byte flips, cuts, insertions
  const valid = Buffer.from('{"jsonrpc":"2.0","id":12,"method":"send","params":{"to":"00112233445566778899aabbccddeeff","text":"héllo"}}')
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'cut', 'ins')), { minLength: 1, maxLength: 4 }), (muts) => {
      let b = Buffer.from(valid)
      for (const [at, byte, op] of muts) {
        const i = Math.min(at, Math.max(0, b.length - 1))
        if (op === 'set') b[i] = byte
        else if (op === 'cut') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)])
        else b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)])
      }
      return checkResult(parseRequest(b)) && checkResult(parseRequest(b.toString('latin1')))
    }),
    { numRuns: 3000 },
  )
  t.pass('properties held')
})

t.test('property: a request that parses round-trips its id and method', async (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.integer(), fc.string(), fc.constant(null)), fc.string(), fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 })), (id, method, params) => {
      const r = parseRequest(JSON.stringify({ jsonrpc: '2.0', id, method, params }))
      return r.ok && r.request.id === id && r.request.method === method && JSON.stringify(r.request.params) === JSON.stringify(params)
    }),
    { numRuns: 2000 },
  )
  t.pass('round trip held')
})
