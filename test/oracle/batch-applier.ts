/**
 * The loader of the test addon (`build/Release/strata_test_native.node`,
 * built from `test/native/batch_apply.cc`): a layer root with its own thread
 * that executes batches of ops (`batch.ts`) with the product's ApplyFs, in
 * submission order. Failures are typed as `src/native.ts` types them, so the
 * oracle reports the same errors as the product engine.
 *
 * @module
 */
import { createRequire } from "node:module";
import { BreakoutError, InvalidArgumentError, SystemError } from "../../src/errors.js";

interface RawBatchApplier {
  submit(meta: Buffer, bodies: Buffer[]): Promise<string[]>;
  close(): Promise<void>;
}

const require = createRequire(import.meta.url);
const addon = require("../../../build/Release/strata_test_native.node") as {
  BatchApplier: new (root: string, threads: number) => RawBatchApplier;
};

function typed(err: unknown): never {
  if (err instanceof Error && (err as { strata?: unknown }).strata === true) {
    const code = (err as Error & { code: string }).code;
    if (code === "ERR_BREAKOUT") throw new BreakoutError(err.message);
    throw new InvalidArgumentError(code, err.message);
  }
  if (err instanceof Error && typeof (err as { errno?: unknown }).errno === "number") {
    const e = err as Error & { code: string; errno: number; syscall: string; path?: string };
    throw new SystemError(e.code, e.errno, e.syscall, e.path, e.message);
  }
  throw err;
}

/**
 * Executes batches in order; after a failed op every later batch rejects
 * with `aborted: true`. Always {@link BatchApplier.close} it.
 */
export class BatchApplier {
  #raw: RawBatchApplier;

  /** Opens `root`; with `threads` > 1, ops flagged independent run on a pool. */
  constructor(root: string, threads = 0) {
    try {
      this.#raw = new addon.BatchApplier(root, threads);
    } catch (err) {
      typed(err);
    }
  }

  /** Executes one batch; `bodies` must not change until it settles. @returns its warnings */
  async submit(meta: Buffer, bodies: Buffer[]): Promise<string[]> {
    try {
      return await this.#raw.submit(meta, bodies);
    } catch (err) {
      typed(err);
    }
  }

  /** Waits for every batch, closes the fds and stops the thread. */
  async close(): Promise<void> {
    try {
      await this.#raw.close();
    } catch (err) {
      typed(err);
    }
  }
}
