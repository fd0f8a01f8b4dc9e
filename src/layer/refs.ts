/**
 * Named references read and changed as one critical section under the
 * store lock (`LayerStore.withRefs` runs the editor under it). Owners of
 * references that depend on state outside the layer store (the image
 * records decide which layers the "image" ref must hold) use it to decide
 * and change without racing other processes: a process that changes refs
 * must take the same lock, so what the decision read cannot move under it.
 *
 * @module
 */
import { NotFoundError } from "../errors.js";
import type { Digest } from "./ids.js";
import type { Collector } from "./collector.js";
import type { LayerDB } from "./layerdb.js";

/** One stored layer and the named references on it. */
export interface LayerRefs {
  chainID: Digest;
  refs: string[];
}

/** What {@link withRefs} hands its callback: reads and changes of named references. */
export interface RefEditor {
  /** Every stored layer with its named references. */
  list(): Promise<LayerRefs[]>;
  /**
   * Adds `name` on a stored layer (adding one that is there is a no-op).
   * @throws ERR_LAYER_NOT_FOUND
   */
  add(chainID: Digest, name: string): Promise<void>;
  /**
   * Drops `name` (a no-op when it is not there), then deletes the layer and
   * its parents as far as nothing references them, as `removeRef` does.
   * @returns the chainIDs deleted
   */
  remove(chainID: Digest, name: string): Promise<Digest[]>;
}

/** A {@link RefEditor} over `db`; the caller holds the store lock while it is used. */
export function refEditor(db: LayerDB, collector: Collector): RefEditor {
  return {
    async list() {
      const out: LayerRefs[] = [];
      for (const l of await db.listLayers()) out.push({ chainID: l.chainID, refs: await db.refs(l.chainID) });
      return out;
    },
    async add(chainID, name) {
      if (!(await db.readLayer(chainID)))
        throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot add reference: no layer "${chainID}"`);
      await db.addRef(chainID, name);
    },
    async remove(chainID, name) {
      await db.removeRef(chainID, name);
      return collector.deleteUnreferenced(chainID);
    },
  };
}
