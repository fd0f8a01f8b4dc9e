/**
 * The DeviceSet's locks (Docker's model): one global lock for all DeviceSet
 * state and every pool call, plus one lock per device, always taken
 * **before** the global lock (parent device before child). The global lock
 * is also an flock on `<home>/lock`, so several strata processes can share
 * one pool.
 *
 * @module
 */
import { open } from "node:fs/promises";
import { C, flock } from "../../native.js";

/** An in-process FIFO mutex. */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();

  /** Runs `fn` once every earlier holder is done. */
  async with<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.#tail;
    let done!: () => void;
    this.#tail = new Promise<void>((r) => (done = r));
    await prev;
    try {
      return await fn();
    } finally {
      done();
    }
  }
}

/** The global lock: in-process mutex, then an exclusive flock on a file. */
export class GlobalLock {
  readonly #path: string;
  readonly #mutex = new Mutex();

  constructor(path: string) {
    this.#path = path;
  }

  async with<T>(fn: () => Promise<T>): Promise<T> {
    return this.#mutex.with(async () => {
      // A fresh open file description per hold: flock is per description.
      const fh = await open(this.#path, "a+", 0o600);
      try {
        await flock(fh.fd, C.LOCK_EX);
        return await fn();
      } finally {
        await fh.close(); // closing drops the flock
      }
    });
  }
}

/** Per-device locks, created on demand. */
export class DeviceLocks {
  readonly #locks = new Map<string, { m: Mutex; users: number }>();

  /** Runs `fn` holding the lock of every hash in `hashes`, in the given order (parent first). */
  async with<T>(hashes: string[], fn: () => Promise<T>): Promise<T> {
    if (hashes.length === 0) return fn();
    const [first, ...rest] = hashes;
    const e = this.#locks.get(first!) ?? { m: new Mutex(), users: 0 };
    this.#locks.set(first!, e);
    e.users++;
    try {
      return await e.m.with(() => this.with(rest, fn));
    } finally {
      if (--e.users === 0) this.#locks.delete(first!);
    }
  }
}
