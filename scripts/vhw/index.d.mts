// Types of scripts/vhw/index.mjs for the TypeScript tests (test/lib/vhw.ts).
export class VhwError extends Error {}

export interface Kernel {
  abi: string
  vmlinuz: string
  /** What /lib/modules/<abi> is in the guest (depmod run). */
  modules: string
  meta: { abi: string; packages: Array<{ name: string; version: string }>; mirror: string; fetched: string }
}

export function cacheDir(): string
export function ensureKernel(opts?: { refresh?: boolean; progress?: (line: string) => void }): Promise<Kernel>
export function ensureInitramfs(kernel: Kernel, opts?: { progress?: (line: string) => void }): string
export function findBusybox(): string | undefined
export function loadOrder(modules: string, names: string[]): string[]
export function newc(entries: Array<{ name: string; mode: number; data?: Buffer; rdev?: [number, number] }>): Buffer
export const INIT_MODULES: string[]

export interface BootOptions {
  /** Repo-relative guest script (.ts through tsx, .mjs/.js with node, else sh). */
  script?: string
  /** A shell command instead of a script. */
  command?: string
  env?: Record<string, string>
  /** Default 300000. */
  timeoutMs?: number
  /** Results directory (shared read-write); default a new temp dir. */
  results?: string
  memoryMb?: number
  cpus?: number
  progress?: (line: string) => void
  onConsole?: (chunk: string) => void
  /** qemu's monitor on stdio (ctrl-a x quits): for a human at a terminal. */
  interactive?: boolean
}
export interface BootResult {
  /** Results directory: $KAIRO_VHW_RESULTS in the guest. */
  dir: string
  /** The serial console, CRLF → LF, escape sequences removed. */
  console: string
  /** The guest script's exit status. */
  code: number
  /** qemu start → power-off. */
  ms: number
}
export function bootVm(opts: BootOptions): Promise<BootResult>
export function vhwProblems(): string[]
export const REPO_ROOT: string
export const GUEST_RESULTS: string
export const QEMU: string
