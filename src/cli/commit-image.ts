/**
 * `strata commit NAME IMAGE`: the committed layer becomes an image record.
 * The config is the container's image config (when it was created from an
 * image) with the new diffID and a history entry appended, else a minimal
 * config for the layer chain.
 *
 * Like pull and load, the commit holds the whole chain with its own pending
 * reference until the record is written, then moves it to the "image"
 * reference (see `src/image/image-refs.ts`), so a commit killed in between
 * leaves a reference `strata check` can attribute to a dead process.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { NotFoundError } from "../errors.js";
import { ImageStore } from "../image/image-store.js";
import { layerStoreSink } from "../image/layer-store-sink.js";
import { imageRecorded } from "../image/load.js";
import { testPause } from "../image/test-hooks.js";
import type { ImageConfig } from "../image/types.js";
import type { Digest, LayerStore } from "../layer/index.js";
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

/**
 * Registers the layer tar `tarFile` on `parent` (the container's image
 * layer) and stores an image named `name` whose top layer it is.
 * @returns the new layer's chainID
 */
export async function commitImage(
  store: LayerStore,
  root: string,
  parent: Digest | "",
  tarFile: string,
  name: string,
): Promise<Digest> {
  const sink = layerStoreSink(store);
  const images = await ImageStore.open(imageDir(root, store.driver.name));
  const held: string[] = [];
  let recorded = false;
  try {
    const below = parent ? await chainOf(store, parent) : [];
    for (const l of below) {
      if (!(await sink.hold(l.chainID)))
        throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot commit: layer removed meanwhile "${l.chainID}"`);
      held.push(l.chainID);
    }
    const top = await sink.register(createReadStream(tarFile), parent);
    held.push(top.chainID);
    await testPause("AFTER_LAYERS");
    let base: ImageConfig | undefined;
    for (const img of parent ? await images.list() : []) {
      if (img.layers.at(-1)?.chainID === parent) {
        base = JSON.parse((await images.config(img.id)).toString()) as ImageConfig;
        break;
      }
    }
    const layers = [...below, { diffID: top.diffID, chainID: top.chainID }];
    const config: ImageConfig = {
      ...(base ?? { architecture: process.arch === "x64" ? "amd64" : process.arch, os: "linux", config: {} }),
      created: new Date().toISOString(),
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
      history: [...(base?.history ?? []), { created: new Date().toISOString(), created_by: "strata commit" }],
    };
    await images.put(Buffer.from(JSON.stringify(config)), layers, [name]);
    recorded = true;
    await imageRecorded(
      sink,
      layers.map((l) => l.chainID),
    );
    return top.chainID as Digest;
  } catch (err) {
    // Once the record is written it uses the layers: they are never released here.
    if (!recorded) for (const c of held.reverse()) await sink.release(c).catch(() => {});
    throw err;
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
