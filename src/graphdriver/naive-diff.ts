/**
 * The naive-diff adapter: diff, changes, applyDiff and diffSize for any
 * driver that can mount a layer, built by comparing mounted trees with the
 * shared diff engine. It never calls the driver's get/put itself: every
 * mount goes through the {@link MountAccess} the caller hands in (the layer
 * store's counted `Mounts`), so a diff of a container in use never unmounts
 * it (the bug that made Docker move counts back into its drivers).
 *
 * @module
 */
import type { Readable } from "node:stream";
import { type ApplyOptions, applyLayer, changes, changesSize, exportChanges, exportTree } from "../diff/index.js";
import type { ApplyDiffOptions, Change, Driver, MountAccess } from "./driver.js";

/** Runs `fn` with `id` (and `parent`, when not "") acquired, releasing both afterwards. */
async function withLayers<T>(
  mounts: MountAccess,
  id: string,
  parent: string,
  fn: (layer: string, parentPath: string | null) => Promise<T>,
): Promise<T> {
  const layer = await mounts.acquire(id);
  try {
    if (!parent) return await fn(layer, null);
    const parentPath = await mounts.acquire(parent);
    try {
      return await fn(layer, parentPath);
    } finally {
      await mounts.release(parent);
    }
  } finally {
    await mounts.release(id);
  }
}

/** Changes of `id` against `parent` by walking both mounted trees. */
export function naiveChanges(id: string, parent: string, mounts: MountAccess): Promise<Change[]> {
  return withLayers(mounts, id, parent, (layer, parentPath) => changes(layer, parentPath));
}

/**
 * Tar of `id` against `parent`. `id` stays acquired until the returned
 * stream closes (consumed or destroyed); `parent` only while comparing.
 */
export async function naiveDiff(id: string, parent: string, mounts: MountAccess): Promise<Readable> {
  const layer = await mounts.acquire(id);
  try {
    let stream: Readable;
    if (!parent) {
      stream = exportTree(layer);
    } else {
      const parentPath = await mounts.acquire(parent);
      let list: Change[];
      try {
        list = await changes(layer, parentPath);
      } finally {
        await mounts.release(parent);
      }
      stream = exportChanges(layer, list);
    }
    stream.once("close", () => void mounts.release(id));
    return stream;
  } catch (err) {
    await mounts.release(id);
    throw err;
  }
}

/** Applies `tar` into the mounted `id` (the parent's content is already visible there). */
export async function naiveApplyDiff(
  id: string,
  tar: AsyncIterable<Buffer | Uint8Array | string>,
  mounts: MountAccess,
  opts: ApplyOptions = {},
): Promise<number> {
  const layer = await mounts.acquire(id);
  try {
    return (await applyLayer(layer, tar, opts)).size;
  } finally {
    await mounts.release(id);
  }
}

/** Size of what `id` added or changed relative to `parent`. */
export function naiveDiffSize(id: string, parent: string, mounts: MountAccess): Promise<number> {
  return withLayers(mounts, id, parent, async (layer, parentPath) =>
    changesSize(layer, await changes(layer, parentPath)),
  );
}

/**
 * The four diff methods of a driver that has no diff of its own (Docker's
 * NaiveDiffDriver): vfs and devmapper extend it; overlay keeps its native
 * diff and falls back to the functions above.
 */
export abstract class NaiveDiffDriver implements Pick<Driver, "diff" | "changes" | "applyDiff" | "diffSize"> {
  diff(id: string, parent: string, mounts: MountAccess): Promise<Readable> {
    return naiveDiff(id, parent, mounts);
  }
  changes(id: string, parent: string, mounts: MountAccess): Promise<Change[]> {
    return naiveChanges(id, parent, mounts);
  }
  applyDiff(id: string, _parent: string, tar: Readable, mounts: MountAccess, opts?: ApplyDiffOptions): Promise<number> {
    return naiveApplyDiff(id, tar, mounts, { recorder: opts?.recorder });
  }
  diffSize(id: string, parent: string, mounts: MountAccess): Promise<number> {
    return naiveDiffSize(id, parent, mounts);
  }
}
