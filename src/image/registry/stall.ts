/**
 * Stall detection for registry downloads: a timer that is pushed back every
 * time bytes arrive and, when it runs out, aborts the request with a clear
 * error instead of letting a registry that stopped sending hang the pull.
 *
 * @module
 */
import { RegistryError } from "./errors.js";

/** Default: give up on a response that sends nothing for 30 s (Docker has no such limit; curl's speed-time is similar). */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/**
 * An AbortSignal for one request that fires when {@link StallGuard.touch}
 * is not called for `ms` milliseconds, or when `parent` aborts.
 */
export class StallGuard {
  readonly #controller = new AbortController();
  readonly #ms: number;
  readonly #url: string;
  #timer: NodeJS.Timeout | undefined;
  #unlink: () => void = () => {};
  /** The error the guard aborted with, once it has. */
  stalled: RegistryError | undefined;

  constructor(ms: number, url: string, parent?: AbortSignal) {
    this.#ms = ms;
    this.#url = url;
    if (parent) {
      if (parent.aborted) this.#controller.abort(parent.reason);
      const onAbort = () => this.#controller.abort(parent.reason);
      parent.addEventListener("abort", onAbort, { once: true });
      this.#unlink = () => parent.removeEventListener("abort", onAbort);
    }
    this.#timer = setTimeout(() => this.#fire(), ms);
    // Only the request's own socket should keep the process alive.
    this.#timer.unref();
  }

  /** The signal to give fetch. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  #fire(): void {
    this.stalled = new RegistryError(
      "ERR_REGISTRY_STALLED",
      0,
      `Cannot download from the registry: no data for ${this.#ms / 1000} s "${this.#url}"`,
    );
    this.#unlink();
    this.#controller.abort(this.stalled);
  }

  /** Bytes arrived: the registry is alive. */
  touch(): void {
    this.#timer?.refresh();
  }

  /** The response is read (or given up): stop watching. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#unlink();
  }
}
