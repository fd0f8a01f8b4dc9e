/**
 * Work handed to native code and not yet done, bounded in bytes (and, when
 * asked, in count): the backpressure of the apply pipeline. Keeps the first
 * failure; later work only reports that it was aborted.
 *
 * @module
 */

/** Native work in flight (see the module doc). */
export class InFlight {
  #queue: Array<{ done: Promise<void>; bytes: number }> = [];
  #bytes = 0;
  #failed = false;
  #failure: unknown;

  /**
   * @param maxBytes bytes in flight before {@link pace} waits
   * @param maxCount pieces of work in flight before {@link pace} waits (unbounded by default)
   */
  constructor(
    readonly maxBytes: number,
    readonly maxCount = Infinity,
  ) {}

  /** Whether some work failed. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Tracks `work` (holding `bytes`) until `onDone` has taken its result (and its promise, if any, settled). */
  add<T>(work: Promise<T>, bytes: number, onDone: (result: T) => void | Promise<void>): void {
    const done = work.then(onDone).then(undefined, (err: unknown) => {
      if (this.#failed) return; // later work only reports that it was aborted
      this.#failed = true;
      this.#failure = err;
    });
    this.#queue.push({ done, bytes });
    this.#bytes += bytes;
  }

  /** Waits while too much is in flight; throws the first failure. */
  async pace(): Promise<void> {
    while (this.#queue.length > this.maxCount || this.#bytes > this.maxBytes) {
      const first = this.#queue.shift()!;
      await first.done;
      this.#bytes -= first.bytes;
    }
    if (this.#failed) throw this.#failure;
  }

  /** Waits for everything; throws the first failure. */
  async drain(): Promise<void> {
    const all = this.#queue;
    this.#queue = [];
    this.#bytes = 0;
    await Promise.all(all.map((f) => f.done));
    if (this.#failed) throw this.#failure;
  }

  /**
   * The error to report when the JavaScript side failed with `err`: work
   * queued before it still runs first, and a native failure among it is the
   * earlier error and wins.
   */
  async firstError(err: unknown): Promise<unknown> {
    try {
      await this.drain();
    } catch (nativeErr) {
      return nativeErr;
    }
    return err;
  }
}
