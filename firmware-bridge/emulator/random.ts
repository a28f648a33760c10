/**
 * A small seeded PRNG so that an emulated run can be repeated: sfc32 (Chris Doty-Humphrey's
 * Small Fast Chaotic generator, 128-bit state, PractRand-clean), its state filled from the seed
 * by splitmix32. Not for cryptography.
 */

function splitmix32(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

export class SeededRandom {
  readonly seed: number
  #a: number
  #b: number
  #c: number
  #d: number

  /** `seed`: any integer; it is taken modulo 2^32. */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new TypeError(`seed: ${String(seed)} is not an integer`)
    this.seed = seed >>> 0
    const sm = splitmix32(this.seed)
    this.#a = sm()
    this.#b = sm()
    this.#c = sm()
    this.#d = sm()
    for (let i = 0; i < 12; i++) this.nextUint32()
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0
    this.#d = (this.#d + 1) >>> 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) >>> 0
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0
    this.#c = (this.#c + t) >>> 0
    return t
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4_294_967_296
  }

  /** True with probability `p` (0..1). Always draws one number, so the sequence does not depend on `p`. */
  chance(p: number): boolean {
    return this.next() < p
  }
}
