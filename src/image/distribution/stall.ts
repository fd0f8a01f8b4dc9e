/**
 * Watching registry downloads: a stall timer that is pushed back every time
 * bytes arrive, and a minimum transfer rate checked over the same period,
 * so that neither a registry that stopped sending nor one that trickles (a
 * byte every two seconds keeps a stall timer happy for ever) can hang a
 * pull. Either aborts the request with a clear error; the client counts it
 * as a broken connection (retried, resuming).
 *
 * Only time spent waiting for the registry counts: while the consumer holds
 * a chunk (the layer store applying it, with the download held back by
 * backpressure) the guard is paused, so a slow disk is never taken for a
 * slow registry.
 *
 * @module
 */
import { RegistryError } from "./errors.js";

/** Default: give up on a response that sends nothing for 30 s (Docker has no such limit; curl's speed-time is similar). */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/** Default minimum rate: 1 KiB/s, averaged over each stall-timeout period (curl's speed-limit, 30 s). */
export const DEFAULT_MIN_BYTES_PER_SECOND = 1024;

/**
 * An AbortSignal for one request that fires when {@link TransferGuard.touch}
 * is not called for `ms` milliseconds of waiting (ERR_REGISTRY_STALLED),
 * when fewer than `minBytesPerSecond` × `ms` / 1000 bytes arrived during
 * any `ms` of waiting (ERR_REGISTRY_TOO_SLOW; 0 turns the rate check off),
 * or when `parent` aborts.
 */
export class TransferGuard {
  readonly #controller = new AbortController();
  readonly #ms: number;
  readonly #minBytes: number;
  readonly #minRate: number;
  readonly #url: string;
  #stallTimer: NodeJS.Timeout | undefined;
  #rateTimer: NodeJS.Timeout | undefined;
  /** Bytes and waiting time of the current rate window. */
  #windowBytes = 0;
  #windowWaited = 0;
  /** When waiting resumed; undefined while paused or done. */
  #waitingSince: number | undefined;
  #done = false;
  #unlink: () => void = () => {};
  /** The error the guard aborted with, once it has. */
  stalled: RegistryError | undefined;

  constructor(ms: number, url: string, parent?: AbortSignal, minBytesPerSecond = DEFAULT_MIN_BYTES_PER_SECOND) {
    this.#ms = ms;
    this.#url = url;
    this.#minRate = minBytesPerSecond;
    this.#minBytes = Math.ceil((minBytesPerSecond * ms) / 1000);
    if (parent) {
      if (parent.aborted) this.#controller.abort(parent.reason);
      const onAbort = () => this.#controller.abort(parent.reason);
      parent.addEventListener("abort", onAbort, { once: true });
      this.#unlink = () => parent.removeEventListener("abort", onAbort);
    }
    this.resume();
  }

  /** The signal to give the request. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  #stopTimers(): void {
    clearTimeout(this.#stallTimer);
    clearTimeout(this.#rateTimer);
    this.#stallTimer = undefined;
    this.#rateTimer = undefined;
  }

  /** Waiting for the registry again: the clocks run. */
  resume(): void {
    if (this.#done || this.#waitingSince !== undefined) return;
    this.#waitingSince = Date.now();
    this.#stallTimer = setTimeout(
      () => this.#fire("ERR_REGISTRY_STALLED", `no data for ${this.#ms / 1000} s`),
      this.#ms,
    );
    // Only the request's own socket should keep the process alive.
    this.#stallTimer.unref();
    if (this.#minBytes > 0) {
      this.#rateTimer = setTimeout(() => this.#checkRate(), Math.max(0, this.#ms - this.#windowWaited));
      this.#rateTimer.unref();
    }
  }

  /** The consumer holds what arrived (backpressure): the clocks stop until {@link resume}. */
  pause(): void {
    if (this.#waitingSince === undefined) return;
    this.#windowWaited += Date.now() - this.#waitingSince;
    this.#waitingSince = undefined;
    this.#stopTimers();
  }

  #checkRate(): void {
    const got = this.#windowBytes;
    if (got < this.#minBytes) {
      this.#fire("ERR_REGISTRY_TOO_SLOW", `${got} bytes in ${this.#ms / 1000} s, less than ${this.#minRate} bytes/s`);
      return;
    }
    this.#windowBytes = 0;
    this.#windowWaited = 0;
    this.#waitingSince = Date.now();
    this.#rateTimer = setTimeout(() => this.#checkRate(), this.#ms);
    this.#rateTimer.unref();
  }

  #fire(code: "ERR_REGISTRY_STALLED" | "ERR_REGISTRY_TOO_SLOW", why: string): void {
    this.stalled = new RegistryError(code, 0, `Cannot download from the registry: ${why} "${this.#url}"`);
    this.clear();
    this.#controller.abort(this.stalled);
  }

  /** `n` bytes arrived (0: the response headers): the registry is alive. */
  touch(n = 0): void {
    this.#windowBytes += n;
    this.#stallTimer?.refresh();
  }

  /** The response is read (or given up): stop watching. */
  clear(): void {
    this.#done = true;
    this.#waitingSince = undefined;
    this.#stopTimers();
    this.#unlink();
  }
}
