/**
 * The store lock: an flock on `<store>/lock`, so several strata processes
 * can share one store. Critical sections are short (metadata only); long
 * work such as applying a layer runs outside it. The lock file is opened
 * inside its {@link StoreDir} (never through a symlink).
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { C, close, flock } from "../native.js";
import { StoreDir } from "../util/store-dir.js";

/** An inter-process lock on one file (flock), serialised within the process too. */
export class StoreLock {
  readonly #dir: StoreDir | string;
  readonly #name: string;
  #fd: number | undefined;
  #queue: Promise<void> = Promise.resolve();

  /**
   * A lock on file `name` (created 0600 when missing) in `dir`; or, with a
   * single argument, on the file at that path.
   */
  constructor(dir: StoreDir | string, name?: string) {
    this.#dir = name === undefined ? dirname(dir as string) : dir;
    this.#name = name ?? basename(dir as string);
  }

  async #open(): Promise<number> {
    const flags = C.O_RDWR | C.O_CREAT;
    if (typeof this.#dir !== "string") return this.#dir.openFd(this.#name, flags, 0o600);
    const dir = await StoreDir.open(this.#dir);
    try {
      return await dir.openFd(this.#name, flags, 0o600);
    } finally {
      await dir.close();
    }
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
      this.#fd ??= await this.#open();
      await flock(this.#fd, C.LOCK_EX);
      try {
        return await fn();
      } finally {
        await flock(this.#fd, C.LOCK_UN);
      }
    } finally {
      done();
    }
  }

  /** Closes the lock file (after calls in flight). Safe to call twice. */
  async close(): Promise<void> {
    await this.#queue;
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) await close(fd);
  }
}
