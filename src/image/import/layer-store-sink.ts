/**
 * The {@link LayerSink} over strata's LayerStore.
 *
 * Layers of recorded images are held by one named reference, "image" (the
 * image records decide when no image uses a layer any more; see
 * `records/image-refs.ts`). Layers of an import in progress are held by the
 * sink's own pending reference: `register` and `hold` take it,
 * `imageRecorded` trades it for "image" once the record is written,
 * `release` drops it when the import fails. The sink counts its holds per
 * layer, so imports sharing a layer through one sink (a `load` of several
 * images) each keep it until they are done. Only references keep a layer:
 * `register` with a ref takes no in-process handle.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { hasCode, NotFoundError } from "../../errors.js";
import { assertDigest, type LayerStore, withRefs } from "../../layer/index.js";
import { IMAGE_REF, newPendingRef } from "../records/image-refs.js";
import type { LayerSink } from "./layer-sink.js";

/** A LayerSink that registers into `store` (see the module doc for the references it uses). */
export function layerStoreSink(store: LayerStore): Required<LayerSink> {
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
      const info = await store.register(tar, parentChainID ? assertDigest(parentChainID) : "", {
        ref: await pending(),
        ...(expectDiffID ? { diffID: assertDigest(expectDiffID) } : {}),
      });
      count(info.chainID, 1);
      return { chainID: info.chainID, diffID: info.diffID, size: info.size, tarSize: info.tarSize };
    },
    async has(chainID: string) {
      try {
        await store.layer(assertDigest(chainID));
        return true;
      } catch (err) {
        if (hasCode(err, "ERR_LAYER_NOT_FOUND")) return false;
        throw err;
      }
    },
    async hold(chainID: string) {
      try {
        await store.addRef(assertDigest(chainID), await pending());
        count(chainID, 1);
        const info = await store.layer(assertDigest(chainID));
        return { chainID: info.chainID, diffID: info.diffID, size: info.size };
      } catch (err) {
        if (hasCode(err, "ERR_LAYER_NOT_FOUND")) return undefined;
        throw err;
      }
    },
    tarStream: (chainID: string) => store.tarStream(assertDigest(chainID)),
    async release(chainID: string) {
      if (!holds.has(chainID)) {
        throw new NotFoundError("ERR_REF_NOT_FOUND", `Cannot release layer: this import does not hold "${chainID}"`);
      }
      if (count(chainID, -1) === 0) await store.removeRef(assertDigest(chainID), await pending());
    },
    async imageRecorded(chainIDs: string[]) {
      const name = await pending();
      await withRefs(store, async (refs) => {
        // "image" first: a crash in between leaves both refs, never neither.
        for (const c of chainIDs) await refs.add(assertDigest(c), IMAGE_REF);
        for (const c of chainIDs) if (holds.has(c) && count(c, -1) === 0) await refs.remove(assertDigest(c), name);
      });
    },
    scratchDir: (label: string) => store.db.scratchDir(label),
  };
}
