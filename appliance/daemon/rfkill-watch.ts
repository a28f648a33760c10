/**
 * Watches the rfkill switches that links' cut lists name (drivers/rfkill, /dev/rfkill events):
 * a hardware kill switch turned on or off is reported, and so is a soft unblock (someone ran
 * `rfkill unblock`, or a network manager did), so that the daemon can block a latched link's
 * switch again. A gateway without /dev/rfkill (no rfkill in the kernel) carries on unwatched,
 * with a warning.
 */
import { Rfkill, type RfkillDevice, type RfkillSelector } from '../../drivers/rfkill/index.js'
import type { LinkConfig } from '../config/schema.js'

export interface RfkillWatch {
  close(): void
}

interface Logger {
  warn(msg: string, fields?: Record<string, unknown>): void
}

export async function watchRfkill(opts: {
  links: () => LinkConfig[]
  log: Logger
  onHard: (link: string, d: RfkillDevice) => void
  onSoftUnblocked: (link: string, d: RfkillDevice) => void
  path?: string
}): Promise<RfkillWatch | null> {
  let rf: Rfkill
  try {
    rf = await Rfkill.open(opts.path)
  } catch (err) {
    opts.log.warn('rfkill switches cannot be watched: a kill switch will not be noticed', { error: (err as Error).message })
    return null
  }
  rf.unref()
  const prev = new Map<number, RfkillDevice>(rf.list().map((d) => [d.index, { ...d }]))
  rf.on('change', (d: RfkillDevice) => {
    const was = prev.get(d.index)
    prev.set(d.index, { ...d })
    for (const lc of opts.links()) {
      const sels = lc.cut.actions.flatMap((a) => ('rfkill' in a ? [a.rfkill as RfkillSelector] : []))
      if (!sels.some((sel) => matches(sel, d))) continue
      // A switch first seen now (added after the watch began) is reported only if it is hard-blocked.
      if (was === undefined ? d.hard : was.hard !== d.hard) opts.onHard(lc.name, d)
      if (was?.soft === true && !d.soft) opts.onSoftUnblocked(lc.name, d)
    }
  })
  rf.on('add', (d: RfkillDevice) => prev.set(d.index, { ...d }))
  rf.on('remove', (d: RfkillDevice) => prev.delete(d.index))
  rf.on('error', (err: Error) => opts.log.warn('rfkill watch failed', { error: err.message }))
  return { close: () => rf.close() }
}

function matches(sel: RfkillSelector, d: RfkillDevice): boolean {
  if (sel.index !== undefined && sel.index !== d.index) return false
  if (sel.name !== undefined && sel.name !== d.name) return false
  if (sel.type !== undefined && sel.type !== 'all' && sel.type !== d.type) return false
  return true
}
