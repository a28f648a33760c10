/**
 * KISS framing as RNode uses it (markqvist/RNode_Firmware `Framing.h`, `serial_callback()`;
 * markqvist/Reticulum `RNS/Interfaces/RNodeInterface.py` `KISS.escape()` and `readLoop()`):
 *
 *   FEND command escaped(data) FEND
 *
 * with FEND 0xC0 and FESC 0xDB in the data sent as `FESC TFEND` (DB DC) and `FESC TFESC` (DB DD).
 * The command byte is sent as is (RNode commands never are 0xC0 or 0xDB).
 *
 * **Every frame carries its own opening and closing FEND.** RNode_Firmware writes every frame as
 * `serial_write(FEND); ...; serial_write(FEND)` (`kiss_indicate_*()`, `kiss_write_packet()`), and
 * RNodeInterface.py builds every command as `bytes([FEND, cmd, ...]) + FEND`; two frames in a row
 * are therefore `... C0 C0 ...`, never one shared FEND. So this decoder treats a FEND that ends a
 * non-empty frame as *closing* it: the bytes after it, up to the next FEND, are outside any
 * frame (boot text such as "Error, incorrect boot vector\r\n", line noise) and are counted as
 * `outOfFrame` and skipped, exactly like bytes before the very first FEND. (A decoder that let one
 * FEND both end a frame and start the next would turn such text into a frame with a random
 * command byte: 'E' is 0x45, a real RNode command.) A FEND outside a frame opens one, and
 * `C0 C0` inside one is an empty frame and is skipped, so any run of FENDs is harmless.
 * The cost: a frame that loses its closing FEND (a device reset mid-frame, a dropped byte) is
 * closed by the next frame's opening FEND and that next frame is then counted as out-of-frame
 * bytes; the one after it decodes again. Everything lost is counted.
 *
 * The decoder is an I/O-free state machine: bytes in, frames out, in any chunking. It never
 * throws on input; what does not decode is counted and skipped, and it is back in step at the
 * latest with the second frame after any garbage.
 */
import { FEND, FESC, TFEND, TFESC } from './commands.js'

/** One decoded frame: the command byte and the unescaped data after it (possibly empty). */
export interface KissFrame {
  command: number
  data: Buffer
}

/** Default bound of a decoded frame (command + data), bytes. RNode's largest is CMD_DATA + 508. */
export const KISS_MAX_FRAME = 1024

/** Escapes FEND and FESC in `data` (RNodeInterface.py `KISS.escape()`). */
export function kissEscape(data: Uint8Array): Buffer {
  let extra = 0
  for (const b of data) if (b === FEND || b === FESC) extra++
  const out = Buffer.allocUnsafe(data.length + extra)
  let j = 0
  for (const b of data) {
    if (b === FEND) {
      out[j++] = FESC
      out[j++] = TFEND
    } else if (b === FESC) {
      out[j++] = FESC
      out[j++] = TFESC
    } else {
      out[j++] = b
    }
  }
  return out
}

/** One frame on the wire: FEND, the command, the escaped data, FEND. */
export function kissEncode(command: number, data: Uint8Array = Buffer.alloc(0)): Buffer {
  if (!Number.isInteger(command) || command < 0 || command > 0xff) throw new TypeError(`kissEncode: command ${String(command)} is not a byte`)
  if (command === FEND || command === FESC) throw new TypeError(`kissEncode: command 0x${command.toString(16)} cannot be sent unescaped`)
  const body = kissEscape(data)
  const out = Buffer.allocUnsafe(body.length + 3)
  out[0] = FEND
  out[1] = command
  body.copy(out, 2)
  out[out.length - 1] = FEND
  return out
}

/** What the decoder counts. */
export interface KissDecoderErrors {
  /** FESC followed by something other than TFEND/TFESC (or by FEND): frame dropped. */
  badEscape: number
  /** A frame longer than the bound: dropped up to the next FEND. */
  oversize: number
  /** Bytes outside any frame (before the first FEND, or between a closing FEND and the next opening one): skipped. */
  outOfFrame: number
}

export interface KissDecoderOptions {
  /** Largest decoded frame (command + data) kept, bytes (default KISS_MAX_FRAME = 1024). */
  maxFrameBytes?: number
}

const enum State {
  /** Outside a frame (before the first FEND, after a closing one): bytes are noise; a FEND opens a frame. */
  Hunt,
  /** Inside a frame. */
  Frame,
  /** After FESC inside a frame. */
  Escape,
  /** Inside a frame that is being dropped (oversize or bad escape): wait for FEND. */
  Drop,
}

/**
 * Streaming KISS decoder. `push()` returns the frames completed by these bytes; state carries
 * over between calls, so a frame may arrive in any number of pieces. Memory is bounded by
 * `maxFrameBytes`.
 */
export class KissDecoder {
  readonly maxFrameBytes: number
  #state: State = State.Hunt
  #buf: Buffer
  #len = 0
  #frames = 0
  #errors: KissDecoderErrors = { badEscape: 0, oversize: 0, outOfFrame: 0 }

  constructor(opts: KissDecoderOptions = {}) {
    const max = opts.maxFrameBytes ?? KISS_MAX_FRAME
    if (!Number.isInteger(max) || max < 1) throw new TypeError(`maxFrameBytes: ${String(max)} is not a positive integer`)
    this.maxFrameBytes = max
    this.#buf = Buffer.allocUnsafe(max)
  }

  /** Feeds bytes; returns the frames they complete, in order. Never throws on any input. */
  push(bytes: Uint8Array): KissFrame[] {
    const out: KissFrame[] = []
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!
      if (b === FEND) {
        switch (this.#state) {
          case State.Hunt:
            this.#state = State.Frame // an opening FEND
            break
          case State.Frame:
            // Closing a frame, or one more FEND of a run (an empty frame: still open).
            if (this.#len > 0) {
              out.push({ command: this.#buf[0]!, data: Buffer.from(this.#buf.subarray(1, this.#len)) })
              this.#frames++
              this.#state = State.Hunt
            }
            break
          case State.Escape:
            this.#errors.badEscape++
            this.#state = State.Hunt // the closing FEND of a broken frame
            break
          case State.Drop:
            this.#state = State.Hunt // the closing FEND of a dropped frame
            break
        }
        this.#len = 0
        continue
      }
      switch (this.#state) {
        case State.Hunt:
          this.#errors.outOfFrame++
          break
        case State.Drop:
          break
        case State.Escape:
          if (b === TFEND) this.#append(FEND)
          else if (b === TFESC) this.#append(FESC)
          else {
            this.#errors.badEscape++
            this.#state = State.Drop
          }
          break
        case State.Frame:
          if (b === FESC) this.#state = State.Escape
          else this.#append(b)
          break
      }
    }
    return out
  }

  #append(b: number): void {
    if (this.#len >= this.maxFrameBytes) {
      this.#errors.oversize++
      this.#state = State.Drop
      this.#len = 0
      return
    }
    this.#buf[this.#len++] = b
    this.#state = State.Frame
  }

  /** Forgets a partial frame and waits for the next FEND, as after power-up. */
  reset(): void {
    this.#state = State.Hunt
    this.#len = 0
  }

  /** Bytes of the frame being assembled (for tests; bounded by maxFrameBytes). */
  get pendingBytes(): number {
    return this.#len
  }

  /** Frames decoded so far. */
  get frames(): number {
    return this.#frames
  }

  /** Error counters (a copy). */
  get errors(): KissDecoderErrors {
    return { ...this.#errors }
  }

  /** Sum of all error counters. */
  get errorCount(): number {
    return this.#errors.badEscape + this.#errors.oversize + this.#errors.outOfFrame
  }
}
