/**
 * `strata commit NAME IMAGE`: the committed layer becomes an image record.
 * The config is the container's image config (when it was created from an
 * image) with the new diffID and a history entry appended, else a minimal
 * config for the layer chain.
 *
 * @module
 */
import { ImageStore } from "../image/image-store.js";
import type { ImageConfig } from "../image/types.js";
import type { Digest, LayerInfo, LayerStore } from "../layer/index.js";
import { imageDir } from "./images.js";

/** Diff and chain IDs of a layer and its parents, bottom first. */
async function chainOf(store: LayerStore, top: Digest): Promise<Array<{ diffID: string; chainID: string }>> {
  const out: Array<{ diffID: string; chainID: string }> = [];
  for (let id: Digest | "" = top; id;) {
    const l = await store.layer(id);
    out.unshift({ diffID: l.diffID, chainID: l.chainID });
    id = l.parent;
  }
  return out;
}

/** Stores an image named `name` whose top layer is `layer`, built on the container's image `parent`. */
export async function commitImage(
  store: LayerStore,
  root: string,
  parent: Digest | "",
  layer: LayerInfo,
  name: string,
) {
  const images = await ImageStore.open(imageDir(root, store.driver.name));
  try {
    let base: ImageConfig | undefined;
    for (const img of parent ? await images.list() : []) {
      if (img.layers.at(-1)?.chainID === parent) {
        base = JSON.parse((await images.config(img.id)).toString()) as ImageConfig;
        break;
      }
    }
    const layers = await chainOf(store, layer.chainID);
    const config: ImageConfig = {
      ...(base ?? { architecture: process.arch === "x64" ? "amd64" : process.arch, os: "linux", config: {} }),
      created: new Date().toISOString(),
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
      history: [...(base?.history ?? []), { created: new Date().toISOString(), created_by: "strata commit" }],
    };
    return await images.put(Buffer.from(JSON.stringify(config)), layers, [name]);
  } finally {
    await images.close();
  }
}

/** The top chainID of an image name or id, or undefined when no image matches. */
export async function imageTop(store: LayerStore, root: string, ref: string): Promise<Digest | undefined> {
  const images = await ImageStore.open(imageDir(root, store.driver.name));
  try {
    const rec = await images.resolve(ref).catch(() => undefined);
    return rec?.layers.at(-1)?.chainID as Digest | undefined;
  } finally {
    await images.close();
  }
}
