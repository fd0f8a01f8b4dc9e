/**
 * A small seeded PRNG (xorshift128) so that every corpus the harness makes is
 * the same bytes on every machine and every run.
 *
 * @module
 */

/** Deterministic pseudo-random numbers from a 32-bit seed. Not for cryptography. */
export class Prng {
  #s: Uint32Array;

  constructor(seed: number) {
    // splitmix32 spreads the seed over the four state words (never all zero).
    let x = seed >>> 0 || 0x9e3779b9;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s = new Uint32Array([next(), next(), next(), next() | 1]);
  }

  /** The next 32-bit unsigned integer. */
  u32(): number {
    const s = this.#s;
    let t = s[3]!;
    const a = s[0]!;
    s[3] = s[2]!;
    s[2] = s[1]!;
    s[1] = a;
    t ^= t << 11;
    t ^= t >>> 8;
    s[0] = (t ^ a ^ (a >>> 19)) >>> 0;
    return s[0];
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** `n` pseudo-random bytes. */
  bytes(n: number): Buffer {
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) words[i] = this.u32();
    return Buffer.from(words.buffer, 0, n);
  }
}
