/**
 * In-process locks on snapshot keys. A request locks every key it reads or
 * changes (its key, its parent, a commit's name) at once; keys are taken in
 * sorted order, so two requests never wait on each other in a circle.
 *
 * @module
 */

/** Locks on sets of string keys, each a FIFO queue. */
export class KeyLocks {
  #tails = new Map<string, Promise<void>>();

  /** Runs `fn` holding every key of `keys` ("" is ignored). */
  async with<T>(keys: string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(keys.filter((k) => k !== ""))].sort();
    const releases: Array<() => void> = [];
    try {
      for (const key of sorted) releases.push(await this.#acquire(key));
      return await fn();
    } finally {
      for (const release of releases.reverse()) release();
    }
  }

  async #acquire(key: string): Promise<() => void> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#tails.set(key, tail);
    await prev;
    return () => {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }
}
