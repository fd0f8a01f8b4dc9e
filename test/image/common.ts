/** Shared set-up for image tests: a fresh vfs sink and image store, tree comparisons. */
import { join } from "node:path";
import type { ExecutionContext } from "ava";
import { ImageStore } from "../../src/image/image-store.js";
import { manifest } from "../helpers/tree.js";
import { tempDir } from "../helpers/tmp.js";
import { run } from "./peers.js";
import { VfsSink } from "./vfs-sink.js";

export interface Stores {
  root: string;
  sink: VfsSink;
  store: ImageStore;
}

/** A fresh sink and image store under a temporary directory. */
export async function stores(t: ExecutionContext): Promise<Stores> {
  const root = await tempDir(t, "strata-image-");
  const store = await ImageStore.open(join(root, "images"));
  t.teardown(() => store.close());
  return { root, sink: await VfsSink.open(join(root, "layers")), store };
}

/** A tree listing for comparing image roots (no mtimes: tools differ on directory times). */
export function tree(dir: string): Promise<string[]> {
  return manifest(dir, { mtime: false, xattrs: "capability" });
}

/** Unpacks `layoutDir:tag` with umoci and returns the rootfs path. */
export async function umociRootfs(t: ExecutionContext, layoutDir: string, tag: string): Promise<string> {
  const bundle = join(await tempDir(t, "strata-umoci-"), "bundle");
  await run("umoci", ["unpack", "--image", `${layoutDir}:${tag}`, bundle], { maxBuffer: 1 << 26 });
  return join(bundle, "rootfs");
}

/** Asserts the store and sink hold nothing (after a failed import). */
export async function assertEmpty(t: ExecutionContext, s: Stores): Promise<void> {
  t.deepEqual(await s.sink.chainIDs(), [], "no layers stored");
  t.deepEqual(await s.sink.driverLayers(), [], "no driver layers left");
  t.deepEqual(await s.store.ids(), [], "no image records");
}
