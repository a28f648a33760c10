/** Resolves with the first truthy value of `probe` (polled every 5 ms); rejects naming `what` after `ms`. */
export function until<T>(what: string, ms: number, probe: () => T | undefined | false | null): Promise<T> {
  const end = Date.now() + ms
  return new Promise((resolve, reject) => {
    const tick = () => {
      const v = probe()
      if (v) return resolve(v)
      if (Date.now() > end) return reject(new Error(`timed out after ${ms} ms waiting for ${what}`))
      setTimeout(tick, 5)
    }
    tick()
  })
}

/** Like until, for a probe that must await (a control-socket call): polled every `everyMs` (default 50). */
export async function untilAsync<T>(what: string, ms: number, probe: () => Promise<T | undefined | false | null>, everyMs = 50): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await probe()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
