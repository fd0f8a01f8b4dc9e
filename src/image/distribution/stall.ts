/**
 * Watching registry downloads: a stall timer that is pushed back every time
 * bytes arrive, and a minimum transfer rate checked over the same period,
 * so that neither a registry that stopped sending nor one that trickles (a
 * byte every two seconds keeps a stall timer happy for ever) can hang a
 * pull. Either aborts the request with a clear error; the client counts it
 * as a broken connection (retried, resuming).
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
 * is not called for `ms` milliseconds (ERR_REGISTRY_STALLED), when fewer
 * than `minBytesPerSecond` × `ms` / 1000 bytes arrived during any period of
 * `ms` (ERR_REGISTRY_TOO_SLOW; 0 turns the rate check off), or when
 * `parent` aborts.
 */
export class TransferGuard {
  readonly #controller = new AbortController();
  readonly #ms: number;
  readonly #minBytes: number;
  readonly #minRate: number;
  readonly #url: string;
  #stallTimer: NodeJS.Timeout | undefined;
  #rateTimer: NodeJS.Timeout | undefined;
  #bytes = 0;
  #bytesAtCheck = 0;
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
    this.#stallTimer = setTimeout(() => this.#fire("ERR_REGISTRY_STALLED", `no data for ${ms / 1000} s`), ms);
    // Only the request's own socket should keep the process alive.
    this.#stallTimer.unref();
    if (this.#minBytes > 0) {
      this.#rateTimer = setInterval(() => this.#checkRate(), ms);
      this.#rateTimer.unref();
    }
  }

  /** The signal to give the request. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  #checkRate(): void {
    const got = this.#bytes - this.#bytesAtCheck;
    this.#bytesAtCheck = this.#bytes;
    if (got < this.#minBytes) {
      this.#fire("ERR_REGISTRY_TOO_SLOW", `${got} bytes in ${this.#ms / 1000} s, less than ${this.#minRate} bytes/s`);
    }
  }

  #fire(code: "ERR_REGISTRY_STALLED" | "ERR_REGISTRY_TOO_SLOW", why: string): void {
    this.stalled = new RegistryError(code, 0, `Cannot download from the registry: ${why} "${this.#url}"`);
    this.clear();
    this.#controller.abort(this.stalled);
  }

  /** `n` bytes arrived (0: the response headers): the registry is alive. */
  touch(n = 0): void {
    this.#bytes += n;
    this.#stallTimer?.refresh();
  }

  /** The response is read (or given up): stop watching. */
  clear(): void {
    clearTimeout(this.#stallTimer);
    clearInterval(this.#rateTimer);
    this.#stallTimer = undefined;
    this.#rateTimer = undefined;
    this.#unlink();
  }
}
