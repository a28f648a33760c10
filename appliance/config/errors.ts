/** ConfigFileError: every problem of a gateway config file, each with its key path and line. */
import { ConfigRejectedError, type KairoErrorOptions } from '../core/errors.js'

/** One problem of a config file. */
export interface ConfigFileProblem {
  /**
   * Key path, e.g. `links[2].lora.spreading_factor`; '' for a problem of the whole file (it
   * cannot be read, is not YAML, is empty or is not a mapping).
   */
  path: string
  /** What is wrong, e.g. `13 is out of range 5..12`. */
  message: string
  /** 1-based line in the file, null when there is none (unreadable file). */
  line: number | null
  /** The file, as the caller named it. */
  file: string
}

/**
 * `links[2].lora.spreading_factor: 13 is out of range 5..12 (config.yaml:31)`; a whole-file
 * problem reads `config.yaml:3: <message>` (or `config.yaml: <message>` without a line).
 */
export function formatProblem(p: ConfigFileProblem): string {
  const where = p.line === null ? p.file : `${p.file}:${p.line}`
  if (p.path === '') return `${where}: ${p.message}`
  return `${p.path}: ${p.message} (${where})`
}

/** A config file that cannot be used: `problems` lists all of them, `field` is the first one's path. */
export class ConfigFileError extends ConfigRejectedError {
  readonly problems: readonly ConfigFileProblem[]
  readonly file: string

  constructor(file: string, problems: readonly ConfigFileProblem[], options: KairoErrorOptions = {}) {
    if (problems.length === 0) throw new TypeError('ConfigFileError needs at least one problem')
    super(problems.map(formatProblem).join('\n'), { ...options, field: problems[0]!.path })
    this.file = file
    this.problems = problems
  }

  override toJSON(): ReturnType<ConfigRejectedError['toJSON']> & { field: string; file: string; problems: ConfigFileProblem[] } {
    return { ...super.toJSON(), field: this.field, file: this.file, problems: [...this.problems] }
  }
}
