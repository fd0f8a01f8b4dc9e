/**
 * The port of the import pipeline to the layer store: what an import needs
 * to put layers in, hold them and read them back. `layerStoreSink` is the
 * one over strata's LayerStore; the images benchmark has one that only
 * hashes (the pipeline's own cost).
 *
 * @module
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";

/** What {@link LayerSink.register} returns. */
export interface RegisteredLayer {
  chainID: string;
  diffID: string;
  /** Σ of the entries' sizes (Docker's layer size). */
  size: number;
  /** Bytes of the tar as read. */
  tarSize: number;
}

/** A layer the sink has already, as {@link LayerSink.hold} finds it. */
export interface StoredLayer {
  chainID: string;
  diffID: string;
  /** Σ of the entries' sizes (Docker's layer size). */
  size: number;
}

/** Where image layers go: a content-addressed store of applied layer tars. */
export interface LayerSink {
  /**
   * Registers an uncompressed layer tar on a parent chainID ("" for none);
   * returns its ids. An existing chainID returns the existing layer. When
   * `tar` errors (truncated input, a bad blob upstream) nothing is stored and
   * the promise rejects with that error. With `expectDiffID` the sink hashes
   * the tar in the same pass as it stores it and rejects with
   * ERR_DIGEST_MISMATCH, storing nothing, when the tar is not that diffID:
   * the import pipeline relies on this instead of hashing every tar twice.
   */
  register(tar: Readable, parentChainID: string, expectDiffID?: string): Promise<RegisteredLayer>;
  /** True when a layer with this chainID is already stored (so the blob need not be fetched). */
  has(chainID: string): Promise<boolean>;
  /** The exact uncompressed tar of a stored layer (verified against its diffID). */
  tarStream(chainID: string): Promise<Readable>;
  /**
   * Optional: takes this import's hold on an already-stored layer, the same
   * hold `register` takes, so the layer cannot go away (another process's
   * `rmi`) before the image record that reuses it is written.
   * @returns the layer, or undefined when it is not stored (then the import registers it)
   */
  hold?(chainID: string): Promise<StoredLayer | undefined>;
  /**
   * Optional: undoes one `register` or `hold` (a layer store with reference
   * counts drops the layer when nothing else holds it). Imports that fail
   * call it for the layers they hold, so a failed pull leaves nothing behind.
   */
  release?(chainID: string): Promise<void>;
  /**
   * Optional: the image record using `chainIDs` (its whole chain) is durably
   * written: hold them as image layers and drop this import's holds on them.
   * Sinks without it keep the `register` hold as the image's.
   */
  imageRecorded?(chainIDs: string[]): Promise<void>;
  /**
   * Optional: a new scratch directory for spool files, which the store
   * removes if this process dies before it does (see LayerDB.scratchDir).
   * Without it, spool files go to the system temp dir.
   */
  scratchDir?(label: string): Promise<string>;
}

/**
 * A new spool directory for an import or a save: `strata-<label>-*` under
 * `dir` when given, else the sink's scratch dir (in the store, cleared after
 * a crash), else `strata-<label>-*` in the system temp dir.
 */
export async function spoolDirFor(sink: LayerSink, label: string, dir?: string): Promise<string> {
  if (dir === undefined && sink.scratchDir) return sink.scratchDir(label);
  return mkdtemp(join(dir ?? tmpdir(), `strata-${label}-`));
}
