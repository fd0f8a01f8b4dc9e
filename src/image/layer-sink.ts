/**
 * The one thing `src/image` needs from the layer store. The lead's LayerStore
 * implements it; tests use a vfs-backed sink (test/image/vfs-sink.ts).
 *
 * @module
 */
import type { Readable } from "node:stream";

/** Where image layers go: a content-addressed store of applied layer tars. */
export interface LayerSink {
  /**
   * Registers an uncompressed layer tar on a parent chainID ("" for none);
   * returns its ids. An existing chainID returns the existing layer. When
   * `tar` errors (digest mismatch, truncated input) nothing is stored and the
   * promise rejects with that error.
   */
  register(tar: Readable, parentChainID: string): Promise<{ chainID: string; diffID: string; size: number }>;
  /** True when a layer with this chainID is already stored (so the blob need not be fetched). */
  has(chainID: string): Promise<boolean>;
  /** The exact uncompressed tar of a stored layer (verified against its diffID). */
  tarStream(chainID: string): Promise<Readable>;
  /**
   * Optional: undoes one `register` (a layer store with reference counts
   * drops the layer when nothing else holds it). Imports that fail call it
   * for the layers they registered, so a failed pull leaves nothing behind.
   */
  release?(chainID: string): Promise<void>;
}
