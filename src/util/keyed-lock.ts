/**
 * Serialises operations per key (a layer id) inside one process: the overlay
 * driver's get, put, create and remove of one id, and `strata serve`'s
 * requests on one id, never interleave.
 *
 * @module
 */
/** Per-key FIFO serialisation; keys with nothing queued hold no memory. */
export class KeyedLock {
  #tails = new Map<string, Promise<void>>();

  /** Runs `fn` after every earlier `run` with the same key has settled. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
