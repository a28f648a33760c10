/**
 * Loads kairo-native (appliance/native: the project's own N-API addon) once, on first use.
 *
 * Why lazily and not with a static import: a checkout whose addon did not build (no compiler on
 * a dev machine, say) must still run everything that does not need it. sd-notify.ts needs it
 * only when systemd set NOTIFY_SOCKET, peer-cred.ts degrades to "peer unknown". Whoever wants
 * to report a broken build calls nativeLoadError() at start and logs it.
 */
import { createRequire } from 'node:module'

export type KairoNative = typeof import('kairo-native')

const require = createRequire(import.meta.url)
let loaded: KairoNative | undefined
let loadError: Error | undefined

/** The addon; throws (the same Error each time) when it cannot be loaded. */
export function loadNative(): KairoNative {
  if (loaded !== undefined) return loaded
  if (loadError !== undefined) throw loadError
  try {
    loaded = require('kairo-native') as KairoNative
    return loaded
  } catch (err) {
    const e = err as Error
    loadError = new Error(
      `kairo-native (appliance/native) is not built or not loadable: ${e.message.split('\n')[0]}; ` +
        'run `npm rebuild kairo-native` (needs python3, make and a C compiler)',
    )
    throw loadError
  }
}

/** Why the addon cannot be loaded, or undefined when it can (loads it if not yet loaded). */
export function nativeLoadError(): Error | undefined {
  try {
    loadNative()
    return undefined
  } catch (err) {
    return err as Error
  }
}
