/**
 * Loads kairo-hw (drivers/native: the project's N-API addon for GPIO, rfkill and rtnetlink) once,
 * on first use, for drivers/gpio, drivers/rfkill and drivers/netdev. Nothing else imports it.
 *
 * Why lazily and synchronously: a checkout whose addon did not build must still run everything
 * that does not touch the hardware (and say why when something does); the drivers' calls are
 * synchronous (a GPIO write is one ioctl), so the load is a require, not an import().
 */
import { createRequire } from 'node:module'

export type KairoHw = typeof import('kairo-hw')

const require = createRequire(import.meta.url)
let loaded: KairoHw | undefined

/** The addon could not be loaded. `code` is 'ENATIVE'. */
export class HwAddonError extends Error {
  readonly code = 'ENATIVE'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'HwAddonError'
  }
}

/**
 * The addon; throws HwAddonError when it cannot be loaded (tried again on the next call: it may
 * have been built meanwhile).
 */
export function hw(): KairoHw {
  if (loaded !== undefined) return loaded
  try {
    loaded = require('kairo-hw') as KairoHw
    return loaded
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err)
    throw new HwAddonError(
      `kairo-hw (drivers/native) is not built or not loadable: ${why}; run \`npm rebuild kairo-hw\` (needs python3, make and a C compiler)`,
      { cause: err },
    )
  }
}

/** The errno name of an error thrown by the addon ('ENOENT'), 'ENATIVE' for a missing addon, or undefined. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

/** The first line of an error's message (the addon's name the syscall, the device and the errno). */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0]! : String(err)
}
