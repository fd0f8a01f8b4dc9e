/**
 * The import transaction: how pull, load and commit get an image into the
 * store without leaving half of it behind.
 *
 * 1. **hold** every layer of the image that is stored already, and
 *    **register** the others (the sink holds each with this import's
 *    pending reference, so another process's `rmi` cannot take them away);
 * 2. **record** the image (config, record, tags: `ImageStore.put`, each
 *    file atomic);
 * 3. **trade refs**: the layers move from the import's hold to the
 *    "image" reference (`LayerSink.imageRecorded`);
 *
 * or, when anything fails before the record is written, **release** every
 * layer this import holds, newest first (a layer nothing else holds goes).
 * Once the record is written the layers are never released here: a crash
 * between 2 and 3 leaves a pending reference of a dead process that
 * `strata check --repair` turns into "image" (see `records/ref-check.ts`).
 *
 * {@link ImportHooks} are awaited between the steps; the crash tests stop a
 * process there.
 *
 * @module
 */
import type { Readable } from "node:stream";
import type { ImageLayer, ImageRecord, ImageStore } from "../records/image-store.js";
import type { LayerSink, RegisteredLayer, StoredLayer } from "./layer-sink.js";

/** Awaited between the steps of an import (see the module doc); each may be left out. */
export interface ImportHooks {
  /** Every layer is held or registered; the image record is not written yet. */
  layersHeld?(): Promise<void>;
  /** The image record is written; its layers are not yet moved to the "image" reference. */
  recordWritten?(): Promise<void>;
}

/** What an image record is made of. */
export interface ImageToRecord {
  /** The config bytes exactly as received (their sha256 is the image id). */
  config: Buffer;
  /** Every layer of the image, bottom first. */
  layers: ImageLayer[];
  /** Names to point at the image ("debian:12"). */
  tags?: string[];
  /** The `repo@digest` the image was pulled by. */
  repoDigest?: string;
}

/** One import: holds, then a record and the trade of references, or a release (see the module doc). */
export class ImportTransaction {
  readonly #sink: LayerSink;
  readonly #hooks: ImportHooks;
  /** ChainIDs this import holds in the sink, in the order taken. */
  readonly #held: string[] = [];
  #state: "open" | "recorded" | "released" = "open";

  constructor(sink: LayerSink, hooks: ImportHooks = {}) {
    this.#sink = sink;
    this.#hooks = hooks;
  }

  /** The sink layers go to. */
  get sink(): LayerSink {
    return this.#sink;
  }

  /** ChainIDs this import holds, in the order taken. */
  get held(): readonly string[] {
    return this.#held;
  }

  #assertOpen(what: string): void {
    if (this.#state !== "open") throw new Error(`import transaction: ${what} after it was ${this.#state}`);
  }

  /**
   * Holds a layer that is stored already (a sink that cannot hold only says
   * whether it has it).
   * @returns the stored layer (size unknown, -1, for a sink that cannot hold), or undefined when it is not stored
   */
  async hold(chainID: string): Promise<StoredLayer | undefined> {
    this.#assertOpen("hold");
    if (!this.#sink.hold) return (await this.#sink.has(chainID)) ? { chainID, diffID: "", size: -1 } : undefined;
    const stored = await this.#sink.hold(chainID);
    if (stored) this.#held.push(chainID);
    return stored;
  }

  /**
   * Registers a layer tar on `parent` and holds it.
   * @throws what the sink throws (ERR_DIGEST_MISMATCH when the tar is not `diffID`)
   */
  async register(tar: Readable, parent: string, diffID?: string): Promise<RegisteredLayer> {
    this.#assertOpen("register");
    const res = await this.#sink.register(tar, parent, diffID);
    if (this.#sink.release) this.#held.push(res.chainID);
    return res;
  }

  /**
   * Writes the image record, then moves the image's layers to the "image"
   * reference. From the moment the record is written, {@link release} does
   * nothing: the record uses the layers.
   */
  async record(store: ImageStore, image: ImageToRecord): Promise<ImageRecord> {
    this.#assertOpen("record");
    await this.#hooks.layersHeld?.();
    const rec = await store.put(image.config, image.layers, image.tags ?? [], image.repoDigest);
    this.#state = "recorded";
    await this.#hooks.recordWritten?.();
    await this.#sink.imageRecorded?.(image.layers.map((l) => l.chainID));
    return rec;
  }

  /** Releases, newest first, every layer this import holds, unless the image was recorded. Errors are not thrown: each hold is tried. */
  async release(): Promise<void> {
    if (this.#state !== "open") return;
    this.#state = "released";
    if (!this.#sink.release) return;
    for (const c of [...this.#held].reverse()) await this.#sink.release(c).catch(() => {});
  }
}

/**
 * Runs `fn` with a new transaction; when `fn` fails, the transaction's holds
 * are released (unless it recorded its image) and the error is thrown.
 * @example
 * const rec = await withImport(sink, {}, async (tx) => {
 *   const layers = await importLayers(tx, sources);
 *   return tx.record(images, { config, layers, tags: ["debian:12"] });
 * });
 */
export async function withImport<T>(
  sink: LayerSink,
  hooks: ImportHooks | undefined,
  fn: (tx: ImportTransaction) => Promise<T>,
): Promise<T> {
  const tx = new ImportTransaction(sink, hooks);
  try {
    return await fn(tx);
  } catch (err) {
    await tx.release();
    throw err;
  }
}
