/**
 * The {@link LayerSink} over strata's LayerStore. Image layers are held by
 * one named reference, "image" (the image-record store decides when no image
 * uses a layer any more and calls `release`); the in-process handle that
 * `register` takes is dropped at once, so only the reference keeps the layer.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { hasCode } from "../errors.js";
import { type Digest, isDigest, type LayerStore } from "../layer/index.js";
import type { LayerSink } from "./layer-sink.js";

/** The reference name image layers are held by in the layer store. */
export const IMAGE_REF = "image";

/** A LayerSink that registers into `store`, holding layers with the reference `ref`. */
export function layerStoreSink(store: LayerStore, ref = IMAGE_REF): LayerSink {
  const digest = (d: string): Digest => {
    if (!isDigest(d)) throw new Error(`not a digest: ${d}`);
    return d;
  };
  return {
    async register(tar: Readable, parentChainID: string, expectDiffID?: string) {
      const info = await store.register(tar, parentChainID ? digest(parentChainID) : "", {
        ref,
        ...(expectDiffID ? { diffID: digest(expectDiffID) } : {}),
      });
      await store.release(info.chainID);
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
    tarStream: (chainID: string) => store.tarStream(digest(chainID)),
    async release(chainID: string) {
      await store.removeRef(digest(chainID), ref);
    },
  };
}
