/**
 * The {@link LayerSink} over strata's LayerStore.
 *
 * Layers of recorded images are held by one named reference, "image" (the
 * image-record store decides when no image uses a layer any more, and
 * `releaseImage` drops it). Layers of an import in progress are held by the
 * sink's own pending reference (`image-refs.ts`): `register` and `hold` take
 * it, `imageRecorded` trades it for "image" once the record is written,
 * `release` drops it when the import fails. The sink counts its holds per
 * layer, so imports sharing a layer through one sink (a `load` of several
 * images) each keep it until they are done. Only references keep a layer:
 * `register` with a ref takes no in-process handle.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { hasCode, NotFoundError } from "../errors.js";
import { type Digest, isDigest, type LayerStore, withRefs } from "../layer/index.js";
import { IMAGE_REF, newPendingRef } from "./image-refs.js";
import type { LayerSink } from "./layer-sink.js";

export { IMAGE_REF } from "./image-refs.js";

/** A LayerSink that registers into `store` (see the module doc for the references it uses). */
export function layerStoreSink(store: LayerStore): Required<LayerSink> {
  const digest = (d: string): Digest => {
    if (!isDigest(d)) throw new Error(`not a digest: ${d}`);
    return d;
  };
  let pendingName: Promise<string> | undefined;
  const pending = () => (pendingName ??= newPendingRef());
  /** This sink's holds per chainID (one pending ref on disk stands for all of them). */
  const holds = new Map<string, number>();
  const count = (c: string, by: number) => {
    const n = (holds.get(c) ?? 0) + by;
    if (n > 0) holds.set(c, n);
    else holds.delete(c);
    return n;
  };
  return {
    async register(tar: Readable, parentChainID: string, expectDiffID?: string) {
      const info = await store.register(tar, parentChainID ? digest(parentChainID) : "", {
        ref: await pending(),
        ...(expectDiffID ? { diffID: digest(expectDiffID) } : {}),
      });
      count(info.chainID, 1);
      return { chainID: info.chainID, diffID: info.diffID, size: info.size, tarSize: info.tarSize };
    },
    async has(chainID: string) {
      try {
        await store.layer(digest(chainID));
        return true;
      } catch (err) {
        if (hasCode(err, "ERR_LAYER_NOT_FOUND")) return false;
        throw err;
      }
    },
    async hold(chainID: string) {
      try {
        await store.addRef(digest(chainID), await pending());
      } catch (err) {
        if (hasCode(err, "ERR_LAYER_NOT_FOUND")) return false;
        throw err;
      }
      count(chainID, 1);
      return true;
    },
    tarStream: (chainID: string) => store.tarStream(digest(chainID)),
    async release(chainID: string) {
      if (!holds.has(chainID)) {
        throw new NotFoundError("ERR_REF_NOT_FOUND", `Cannot release layer: this import does not hold "${chainID}"`);
      }
      if (count(chainID, -1) === 0) await store.removeRef(digest(chainID), await pending());
    },
    async imageRecorded(chainIDs: string[]) {
      const name = await pending();
      await withRefs(store, async (refs) => {
        // "image" first: a crash in between leaves both refs, never neither.
        for (const c of chainIDs) await refs.add(digest(c), IMAGE_REF);
        for (const c of chainIDs) if (holds.has(c) && count(c, -1) === 0) await refs.remove(digest(c), name);
      });
    },
    scratchDir: (label: string) => store.db.scratchDir(label),
    async releaseImage(chainID: string) {
      try {
        await store.removeRef(digest(chainID), IMAGE_REF);
      } catch (err) {
        // Stores written before every image layer got "image" (a reused layer did not): nothing to drop.
        if (!hasCode(err, "ERR_REF_NOT_FOUND")) throw err;
      }
    },
  };
}
