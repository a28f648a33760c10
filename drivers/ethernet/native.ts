/**
 * Lazy loading of the raw Ethernet links' native modules: `cap` (libpcap) and `raw-socket`.
 * They are imported inside `open()`, so code that never opens an Ethernet link needs neither;
 * when one is missing or not built, opening the link fails with a NativeModuleError that says
 * what to install.
 */
import type CapModule from 'cap'
import type RawSocketModule from 'raw-socket'

/** A native module a driver needs could not be loaded. `code` is 'ENATIVE'. */
export class NativeModuleError extends Error {
  readonly code = 'ENATIVE'
  constructor(
    readonly pkg: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'NativeModuleError'
  }
}

const cache = new Map<string, Promise<unknown>>()

/**
 * Imports `pkg` (a CommonJS native addon) once and returns its exports; on failure rejects with a
 * NativeModuleError naming `pkg`, what needs it and how to get it. A failed import is retried on
 * the next call (the package may have been installed meanwhile).
 */
export function loadNative<T>(pkg: string, neededBy: string, howToInstall: string): Promise<T> {
  let p = cache.get(pkg) as Promise<T> | undefined
  if (p === undefined) {
    p = import(pkg).then(
      (m: { default?: T }) => (m.default ?? m) as T,
      (err: unknown) => {
        cache.delete(pkg)
        const why = err instanceof Error ? err.message.split('\n')[0] : String(err)
        throw new NativeModuleError(pkg, `${neededBy} needs the npm package '${pkg}', which could not be loaded (${why}). ${howToInstall}`, { cause: err })
      },
    )
    cache.set(pkg, p)
  }
  return p
}

export type CapApi = typeof CapModule
export type RawSocketApi = typeof RawSocketModule

export function loadCap(): Promise<CapApi> {
  return loadNative<CapApi>(
    'cap',
    'the raw Ethernet link (EthernetLink)',
    "It is a native addon (vendored at drivers/ethernet/vendor/cap) built by 'npm ci' with node-gyp against libpcap: run 'node scripts/setup.mjs', which installs Debian's libpcap-dev first.",
  )
}

export function loadRawSocket(): Promise<RawSocketApi> {
  return loadNative<RawSocketApi>('raw-socket', 'the raw IP link (RawIpLink)', "It is a native addon built by 'npm ci' with node-gyp: run 'node scripts/setup.mjs'.")
}
