/**
 * Shared set-up for image tests: a fresh LayerStore (vfs) with its sink and
 * image records, tree comparisons, and the check that a failed import left
 * nothing behind.
 */
import type { ExecutionContext } from "ava";
import { join } from "node:path";
import { createVfs } from "../../src/drivers/vfs/index.js";
import { ImageStore, checkImageRefs, layerStoreSink, type LayerSink } from "../../src/image/index.js";
import { check, type Digest, LayerStore } from "../../src/layer/index.js";
import { manifest } from "../helpers/tree.js";
import { tempDir } from "../helpers/tmp.js";
import { run } from "./peers.js";

export interface Stores {
  root: string;
  layers: LayerStore;
  sink: LayerSink;
  store: ImageStore;
}

/** A fresh layer store (vfs), its sink and the image records under a temporary root. */
export async function stores(t: ExecutionContext): Promise<Stores> {
  const root = await tempDir(t, "strata-image-");
  const driver = await createVfs({ root, options: {} });
  const layers = await LayerStore.open(root, driver);
  const store = await ImageStore.openFor(root, driver.name);
  t.teardown(async () => {
    await store.close();
    await layers.close();
    await driver.cleanup();
  });
  return { root, layers, sink: layerStoreSink(layers), store };
}

/** A tree listing for comparing image roots (no mtimes: tools differ on directory times). */
export function tree(dir: string): Promise<string[]> {
  return manifest(dir, { mtime: false, xattrs: "capability" });
}

/** The tree of a stored layer (mounted for the listing). */
export async function layerTree(s: Stores, chainID: string): Promise<string[]> {
  const { cacheID } = await s.layers.layer(chainID as Digest);
  const path = await s.layers.mounts.acquire(cacheID);
  try {
    return await tree(path);
  } finally {
    await s.layers.mounts.release(cacheID);
  }
}

/** Every stored layer's chainID, sorted. */
export async function chainIDsOf(s: Stores): Promise<string[]> {
  return (await s.layers.layers()).map((l) => l.chainID).sort();
}

/** Unpacks `layoutDir:tag` with umoci and returns the rootfs path. */
export async function umociRootfs(t: ExecutionContext, layoutDir: string, tag: string): Promise<string> {
  const bundle = join(await tempDir(t, "strata-umoci-"), "bundle");
  await run("umoci", ["unpack", "--image", `${layoutDir}:${tag}`, bundle], { maxBuffer: 1 << 26 });
  return join(bundle, "rootfs");
}

/** Asserts the stores hold nothing and are consistent (after a failed import). */
export async function assertEmpty(t: ExecutionContext, s: Stores): Promise<void> {
  t.deepEqual(await chainIDsOf(s), [], "no layers stored");
  t.deepEqual(await s.layers.driver.list(), [], "no driver layers left");
  t.deepEqual(await s.store.ids(), [], "no image records");
  t.deepEqual(await check(s.layers, false), [], "the layer store is consistent");
  t.deepEqual((await checkImageRefs(s.layers, s.store, false)).problems, [], "no image references left");
}
