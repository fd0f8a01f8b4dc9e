/**
 * The store lock: an flock on `<store>/lock`, so several strata processes
 * can share one store. Critical sections are short (metadata only); long
 * work such as applying a layer runs outside it.
 *
 * @module
 */
import { open } from "node:fs/promises";
import { C, flock } from "../native.js";

export class StoreLock {
  readonly path: string;
  #depth = 0;
  #fd: Awaited<ReturnType<typeof open>> | undefined;
  #queue: Promise<void> = Promise.resolve();

  constructor(path: string) {
    this.path = path;
  }

  /**
   * Runs `fn` holding the lock exclusively. Calls within one process are
   * serialised; nested calls from inside `fn` are not supported (deadlock).
   */
  async with<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.#queue;
    let done!: () => void;
    this.#queue = new Promise<void>((r) => {
      done = r;
    });
    await prev;
    try {
      this.#fd ??= await open(this.path, "a+", 0o600);
      await flock(this.#fd.fd, C.LOCK_EX);
      this.#depth++;
      try {
        return await fn();
      } finally {
        this.#depth--;
        await flock(this.#fd.fd, C.LOCK_UN);
      }
    } finally {
      done();
    }
  }

  async close(): Promise<void> {
    await this.#queue;
    await this.#fd?.close();
    this.#fd = undefined;
  }
}
