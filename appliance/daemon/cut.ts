/**
 * Force disconnect, the physical part: the actions a link's `cut:` list names (drivers/physical),
 * run in order, each observed (a GPIO line read back, an rfkill event, the interface's flags, the
 * firmware's confirmation), with the latency from the trigger to each observation.
 *
 * What it promises:
 * - The driver is never waited on beyond one action's timeout. Only `radio_off` goes through the
 *   driver (the firmware switches its own radio off); it has a short timeout of its own, and the
 *   actions after it (power and reset lines, rfkill) run whether or not it answered.
 * - GPIO lines driven to cut a link stay requested by this process while the link is cut: a
 *   released line goes back to whatever the board's pull or the next user makes it. When the
 *   daemon stops they are released; at the next start a latched link is cut again before any
 *   link opens (`reassert`). Wire a relay so that a released line means "off" where that gap
 *   matters (docs/force-disconnect.md).
 * - Nothing here throws for a failed action: the report says which action failed and why, and
 *   the caller decides (the latch is kept either way: an operator asked for the link to be cut).
 *
 * Actions are built once per link and kept (a cut GPIO request must outlive the call), and
 * rebuilt when the link's `cut:` config changes on reload.
 */
import { buildActions, type CutActionConfig as PhysicalCut, type PhysicalAction, type Observation, type RadioSwitch } from '../../drivers/physical/index.js'
import type { CutConfig } from '../config/schema.js'

export interface CutReport {
  /** Every action of the link, in the order run (restore: reverse order). */
  actions: Array<Observation & { kind: string; started_ms: number }>
  /** Trigger → the last action observed, ms; null when no action was observed. */
  latency_ms: number | null
  /** Every action that ran was observed in its new state. */
  ok: boolean
  /** The link has at least one physical action (false: the driver is only closed). */
  physical: boolean
}

interface Held {
  key: string
  actions: PhysicalAction[]
}

export class LinkCutter {
  private readonly held = new Map<string, Held>()

  constructor(private readonly opts: { consumer: string; radio: (link: string) => RadioSwitch }) {}

  private actionsFor(link: string, cut: CutConfig): Held {
    const key = JSON.stringify(cut.actions)
    const have = this.held.get(link)
    if (have !== undefined && have.key === key) return have
    have?.actions.forEach((a) => a.release())
    const actions = buildActions(
      cut.actions.map((a) => stripTimeout(a) as PhysicalCut),
      { consumer: `${this.opts.consumer}:${link}`, radio: this.opts.radio(link) },
    )
    const h = { key, actions }
    this.held.set(link, h)
    return h
  }

  /**
   * Cuts `link`. `t0` is the trigger (performance.now() when the request or violation arrived).
   * `skipRadio`: at start-up the link is not open, so its firmware cannot be asked.
   */
  async cut(link: string, cut: CutConfig, t0: number, opts: { skipRadio?: boolean } = {}): Promise<CutReport> {
    const h = this.actionsFor(link, cut)
    return this.run(h.actions, cut, t0, 'cut', opts.skipRadio === true)
  }

  /**
   * Undoes the cut in reverse order, then tries once more what failed (an interface cannot come
   * up before its rfkill switch is unblocked). The radio is not switched on here: opening the
   * link does that.
   */
  async restore(link: string, cut: CutConfig, t0: number): Promise<CutReport> {
    const h = this.actionsFor(link, cut)
    const order = h.actions.map((a, i) => ({ a, cfg: cut.actions[i]! })).reverse()
    const report = await this.run(
      order.map((o) => o.a),
      { actions: order.map((o) => o.cfg), configured: cut.configured },
      t0,
      'restore',
      true,
    )
    // Restored lines need not be held: the link's own hardware state is its default again.
    for (const a of h.actions) a.release()
    this.held.delete(link)
    return report
  }

  private async run(actions: PhysicalAction[], cut: CutConfig, t0: number, what: 'cut' | 'restore', skipRadio: boolean): Promise<CutReport> {
    const out: CutReport['actions'] = []
    let last: number | null = null
    let ok = true
    for (const [i, a] of actions.entries()) {
      const timeoutMs = cut.actions[i]!.timeoutMs
      const started = performance.now() - t0
      if (a.kind === 'radio_off' && skipRadio) {
        out.push({ kind: a.kind, action: what === 'cut' ? a.describe : a.describeRestore, ok: true, observed: what === 'cut' ? 'skipped: the link is not open, so its radio is not driven' : 'radio on again when the link opens', ms: 0, started_ms: round(started), skipped: true } as CutReport['actions'][number])
        continue
      }
      const o = what === 'cut' ? await a.cut(timeoutMs) : await a.restore(timeoutMs)
      out.push({ ...o, kind: a.kind, ms: round(o.ms), started_ms: round(started) })
      if (o.ok) last = started + o.ms
      else ok = false
    }
    if (what === 'restore' && !ok) {
      // One restore can need another first, whatever order the list was written in: an
      // interface cannot be set up while its rfkill switch blocks it (ERFKILL), a device behind
      // a power line needs the power. The ones that failed get one more try after the rest.
      ok = true
      for (const [i, a] of actions.entries()) {
        const prev = out[i]!
        if (prev.ok) continue
        const started = performance.now() - t0
        const o = await a.restore(cut.actions[i]!.timeoutMs)
        out[i] = { ...o, kind: a.kind, ms: round(o.ms), started_ms: round(started), retried: true, first_error: prev.error ?? prev.observed } as CutReport['actions'][number]
        if (o.ok) last = Math.max(last ?? 0, started + o.ms)
        else ok = false
      }
    }
    return { actions: out, latency_ms: last === null ? null : round(last), ok, physical: actions.length > 0 }
  }

  /** Releases what is held for `link` (it was removed from the config). */
  forget(link: string): void {
    this.held.get(link)?.actions.forEach((a) => a.release())
    this.held.delete(link)
  }

  releaseAll(): void {
    for (const h of this.held.values()) for (const a of h.actions) a.release()
    this.held.clear()
  }
}

function stripTimeout<T extends { timeoutMs: number }>(a: T): Omit<T, 'timeoutMs'> {
  const { timeoutMs: _t, ...rest } = a
  return rest
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}
