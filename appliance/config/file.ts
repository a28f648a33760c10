/**
 * What the config file (load.ts) and policy files (../policy/policy.ts) share: reading a file
 * with a size cap, and the helpers of their YAML validators. One copy, so that both kinds of file
 * are read and reported on alike.
 */
import { closeSync, openSync, readSync } from 'node:fs'
import type { KairoErrorOptions } from '../core/errors.js'
import type { ConfigFileProblem } from './errors.js'

// ---------------------------------------------------------------------------------------------
// Reading

/** Why a file could not be read, in one line. */
export function readProblem(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return 'cannot read: no such file (ENOENT)'
    case 'EACCES':
    case 'EPERM':
      return `cannot read: permission denied (${err.code})`
    case 'EISDIR':
      return 'cannot read: it is a directory (EISDIR)'
    default:
      return `cannot read: ${err.message}`
  }
}

/** Reads at most `maxBytes` + 1 bytes (a device such as /dev/zero never ends). */
export function readBounded(file: string, maxBytes: number): Buffer {
  const fd = openSync(file, 'r')
  try {
    const buf = Buffer.alloc(maxBytes + 1)
    let n = 0
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null)
      if (got === 0) break
      n += got
      if (n === buf.length) break
    }
    return buf.subarray(0, n)
  } finally {
    closeSync(fd)
  }
}

/** ConfigFileError, or a subclass of it such as PolicyError. */
type FileErrorClass = new (file: string, problems: readonly ConfigFileProblem[], options?: KairoErrorOptions) => Error

/**
 * The bytes of a file of at most `maxBytes`. A file that cannot be read, or is larger, is thrown
 * as a `FileError` naming it: `is larger than 1048576 bytes; is it really <what>?`.
 */
export function readCapped(file: string, maxBytes: number, what: string, FileError: FileErrorClass): Buffer {
  let bytes: Buffer
  try {
    bytes = readBounded(file, maxBytes)
  } catch (err) {
    throw new FileError(file, [{ path: '', message: readProblem(err as NodeJS.ErrnoException), line: null, file }], { cause: err })
  }
  if (bytes.length > maxBytes) throw new FileError(file, [{ path: '', message: `is larger than ${maxBytes} bytes; is it really ${what}?`, line: null, file }])
  return bytes
}
