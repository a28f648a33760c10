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
  | UnionFieldSpec

/**
 * A union field. In the vtable it takes two slots, as flatc lays it out: the type byte
 * (`<name>_type`, a ubyte) and then the offset of the member table. `members` maps each type
 * code to the spec of its table; type 0 (NONE) means absent. A code not in `members` is
 * malformed unless `allowUnknown` is set, in which case only the table's own header and vtable
 * are checked (a newer peer's message that the reader will answer as unsupported).
 */
export interface UnionFieldSpec {
  name: string
  kind: 'union'
  members: Readonly<Record<number, TableSpec>>
  required?: boolean
  allowUnknown?: boolean
}

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
  const slotOffset = (slot: number) => (4 + 2 * slot < vtSize ? dv.getUint16(vt + 4 + 2 * slot, true) : 0)
  let nextSlot = 0
  for (const field of spec.fields) {
    const fpath = `${path}.${field.name}`
    const slot = nextSlot
    nextSlot += field.kind === 'union' ? 2 : 1
    if (field.kind === 'union') {
      verifyUnion(dv, pos, inlineSize, slotOffset(slot), slotOffset(slot + 1), field, fpath, depth)
      continue
    }
    const fo = slotOffset(slot)
    if (fo === 0) {
      if (field.required) fail(`${fpath}: required field is missing`, fpath)
      continue
    }
    const inlineBytes = field.kind === 'scalar' || field.kind === 'struct' ? field.size : 4
    if (fo < 4 || fo + inlineBytes > inlineSize) fail(`${fpath}: field offset ${fo} outside the ${inlineSize}-byte table`, fpath)
    const at = pos + fo
    if (field.kind === 'scalar' || field.kind === 'struct') continue
    const target = at + dv.getUint32(at, true)
    if (target + 4 > len) fail(`${fpath}: offset points outside the buffer`, fpath)
    const count = dv.getUint32(target, true)
    const body = target + 4
    switch (field.kind) {
      case 'bytes':
        if (body + count > len) fail(`${fpath}: vector of ${count} bytes overruns the buffer`, fpath)
        if (field.exactLength !== undefined && count !== field.exactLength) fail(`${fpath}: must be ${field.exactLength} bytes, got ${count}`, fpath)
        if (field.maxLength !== undefined && count > field.maxLength) fail(`${fpath}: ${count} bytes exceeds the limit of ${field.maxLength}`, fpath)
        continue
      case 'string':
        if (body + count + 1 > len) fail(`${fpath}: string of ${count} bytes overruns the buffer`, fpath)
        if (field.maxLength !== undefined && count > field.maxLength) fail(`${fpath}: ${count} bytes exceeds the limit of ${field.maxLength}`, fpath)
        continue
      case 'tables':
        if (field.maxCount !== undefined && count > field.maxCount) fail(`${fpath}: ${count} entries exceeds the limit of ${field.maxCount}`, fpath)
        if (body + 4 * count > len) fail(`${fpath}: vector of ${count} tables overruns the buffer`, fpath)
        for (let k = 0; k < count; k++) {
          const el = body + 4 * k
          verifyTable(dv, el + dv.getUint32(el, true), field.table, `${fpath}[${k}]`, depth + 1)
        }
        continue
    }
  }
}

function verifyUnion(dv: DataView, pos: number, inlineSize: number, typeFo: number, valueFo: number, field: UnionFieldSpec, fpath: string, depth: number): void {
  const tpath = `${fpath}_type`
  if (typeFo !== 0 && (typeFo < 4 || typeFo + 1 > inlineSize)) fail(`${tpath}: field offset ${typeFo} outside the ${inlineSize}-byte table`, tpath)
  const type = typeFo === 0 ? 0 : dv.getUint8(pos + typeFo)
  if (type === 0) {
    if (field.required) fail(`${fpath}: required union is missing`, fpath)
    return
  }
  const member = field.members[type]
  if (member === undefined && !field.allowUnknown) fail(`${tpath}: ${type} is not a known member`, tpath)
  if (valueFo === 0) fail(`${fpath}: union of type ${type} has no value`, fpath)
  if (valueFo < 4 || valueFo + 4 > inlineSize) fail(`${fpath}: field offset ${valueFo} outside the ${inlineSize}-byte table`, fpath)
  const at = pos + valueFo
  verifyTable(dv, at + dv.getUint32(at, true), member ?? { name: `#${type}`, fields: [] }, fpath, depth + 1)
}
