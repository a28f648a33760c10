/**
 * The VoV audit log: the writer (log.ts), the line format (format.ts), verification (verify.ts)
 * and the merge of several gateways' logs (collect.ts). docs/vov-log.md is the specification.
 */
export { VovLog, KEY_FILE, DEFAULT_KEY_LIFETIME_MS, DEFAULT_MAX_FILE_AGE_MS, DEFAULT_MAX_FILE_BYTES, type LogKeyInfo, type VovLogOptions } from './log.js'
export {
  FILE_NAME_RE,
  IDENTITY_KEY_ID,
  MAX_LINE_BYTES,
  RESERVED_TYPES,
  SIGN_CONTEXT,
  ZERO_HASH,
  entryHash,
  fileNameFor,
  keyIdOf,
  parseLine,
  signedBytes,
  type ParseResult,
  type VovEntry,
} from './format.js'
export {
  ChainVerifier,
  fileLines,
  listLogFiles,
  logFilesOf,
  verifyFiles,
  verifyLog,
  type RecoveryNote,
  type VerifyError,
  type VerifyOptions,
  type VerifyReport,
  type VerifyWarning,
} from './verify.js'
export { collectLogs, type CollectOptions, type CollectReport, type TimelineEntry } from './collect.js'
