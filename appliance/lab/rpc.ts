/**
 * The lab's handle on a control socket (a gateway's, or the emulator host's): a ControlClient
 * that connects on first use and again after the connection dropped, since a restarted gateway
 * listens at the same path.
 */
import { ControlClient } from '../control/client.js'

export class Control {
  readonly path: string
  #client: ControlClient | undefined
  #connecting: Promise<ControlClient> | undefined

  constructor(path: string) {
    this.path = path
  }

  async call<T = unknown>(method: string, params: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<T> {
    const c = await this.#get(timeoutMs)
    return c.call<T>(method, params, { timeoutMs })
  }

  #get(timeoutMs: number): Promise<ControlClient> {
    if (this.#client !== undefined && !this.#client.closed) return Promise.resolve(this.#client)
    this.#connecting ??= ControlClient.connect(this.path, { timeoutMs: Math.min(timeoutMs, 5000) }).then(
      (c) => {
        this.#client = c
        this.#connecting = undefined
        return c
      },
      (e: unknown) => {
        this.#connecting = undefined
        throw e
      },
    )
    return this.#connecting
  }

  /** Drops the connection (the next call connects again). */
  close(): void {
    const c = this.#client
    this.#client = undefined
    if (c !== undefined) void c.close()
  }
}
