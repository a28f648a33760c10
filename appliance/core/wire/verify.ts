/**
 * A FlatBuffers verifier for the tables of schemas/. flatc 2.0.8 generates no verifier for
 * TypeScript, and its readers trust every offset, so a frame from the wire is walked here first:
 * every offset, vtable, vector and string must lie inside the buffer, and required fields must
 * be present. Only then do the generated readers touch it. Work is bounded by the buffer size
 * (each table is visited once, nesting depth is limited), so garbage cannot make it loop.
 */
import { MalformedPacketError } from '../errors.js'

/** How a field of a table is laid out. */
export type FieldSpec =
  | { name: string; kind: 'scalar'; size: 1 | 2 | 4 | 8; required?: boolean }
  | { name: string; kind: 'struct'; size: number; required?: boolean }
  | { name: string; kind: 'bytes'; required?: boolean; maxLength?: number; exactLength?: number }
  | { name: string; kind: 'string'; required?: boolean; maxLength?: number }
  | { name: string; kind: 'tables'; table: TableSpec; required?: boolean; maxCount?: number }

export interface TableSpec {
  name: string
  fields: readonly FieldSpec[]
}

const MAX_DEPTH = 8

function fail(message: string, field: string): never {
  throw new MalformedPacketError(message, { field })
}

/** Verifies that `buf` is a FlatBuffers buffer whose root table matches `spec`. */
export function verifyRoot(buf: Uint8Array, spec: TableSpec): void {
  if (buf.length < 8) fail(`${spec.name}: buffer of ${buf.length} bytes is shorter than the 8-byte minimum`, spec.name)
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const root = dv.getUint32(0, true)
  verifyTable(dv, root, spec, spec.name, 0)
}

function verifyTable(dv: DataView, pos: number, spec: TableSpec, path: string, depth: number): void {
  const len = dv.byteLength
  if (depth > MAX_DEPTH) fail(`${path}: nesting deeper than ${MAX_DEPTH}`, path)
  if (pos + 4 > len) fail(`${path}: table offset ${pos} outside the ${len}-byte buffer`, path)
  const vt = pos - dv.getInt32(pos, true)
  if (vt < 0 || vt + 4 > len) fail(`${path}: vtable offset ${vt} outside the buffer`, path)
  const vtSize = dv.getUint16(vt, true)
  const inlineSize = dv.getUint16(vt + 2, true)
  if (vtSize < 4 || vtSize % 2 !== 0 || vt + vtSize > len) fail(`${path}: bad vtable size ${vtSize}`, path)
  if (inlineSize < 4 || pos + inlineSize > len) fail(`${path}: table size ${inlineSize} overruns the buffer`, path)
  spec.fields.forEach((field, i) => {
    const fpath = `${path}.${field.name}`
    const slot = 4 + 2 * i
    const fo = slot < vtSize ? dv.getUint16(vt + slot, true) : 0
    if (fo === 0) {
      if (field.required) fail(`${fpath}: required field is missing`, fpath)
      return
    }
    const inlineBytes = field.kind === 'scalar' || field.kind === 'struct' ? field.size : 4
    if (fo < 4 || fo + inlineBytes > inlineSize) fail(`${fpath}: field offset ${fo} outside the ${inlineSize}-byte table`, fpath)
    const at = pos + fo
    if (field.kind === 'scalar' || field.kind === 'struct') return
    const target = at + dv.getUint32(at, true)
    if (target + 4 > len) fail(`${fpath}: offset points outside the buffer`, fpath)
    const count = dv.getUint32(target, true)
    const body = target + 4
    switch (field.kind) {
      case 'bytes':
        if (body + count > len) fail(`${fpath}: vector of ${count} bytes overruns the buffer`, fpath)
        if (field.exactLength !== undefined && count !== field.exactLength) fail(`${fpath}: must be ${field.exactLength} bytes, got ${count}`, fpath)
        if (field.maxLength !== undefined && count > field.maxLength) fail(`${fpath}: ${count} bytes exceeds the limit of ${field.maxLength}`, fpath)
        return
      case 'string':
        if (body + count + 1 > len) fail(`${fpath}: string of ${count} bytes overruns the buffer`, fpath)
        if (field.maxLength !== undefined && count > field.maxLength) fail(`${fpath}: ${count} bytes exceeds the limit of ${field.maxLength}`, fpath)
        return
      case 'tables':
        if (field.maxCount !== undefined && count > field.maxCount) fail(`${fpath}: ${count} entries exceeds the limit of ${field.maxCount}`, fpath)
        if (body + 4 * count > len) fail(`${fpath}: vector of ${count} tables overruns the buffer`, fpath)
        for (let k = 0; k < count; k++) {
          const el = body + 4 * k
          verifyTable(dv, el + dv.getUint32(el, true), field.table, `${fpath}[${k}]`, depth + 1)
        }
        return
    }
  })
}
