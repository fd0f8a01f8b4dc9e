/**
 * The names image layers are held by in the layer store.
 *
 * A layer that some image record uses is held by {@link IMAGE_REF}. While an
 * import (pull, load, commit) runs, the layers it registered or reuses are
 * held instead by a pending reference of its own,
 * `image-pending:<pid>:<process start time>:<nonce>`; only after the image
 * record is durably written do they get "image", and the pending reference
 * goes. So a process killed in between leaves a reference whose owner is
 * dead, which `strata check` can tell apart from an import still running
 * (see `ref-check.ts`), instead of "image" refs that no image uses.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { hasCode } from "../../errors.js";
import { assertDigest, type LayerStore } from "../../layer/index.js";
import { currentProcess, type ProcessIdentity } from "../../util/process.js";

/** The reference name image layers are held by in the layer store once an image record uses them. */
export const IMAGE_REF = "image";

/** The prefix of every pending import reference. */
export const PENDING_PREFIX = "image-pending:";

/** A new pending reference name for an import in this process (unique per call). */
export async function newPendingRef(): Promise<string> {
  const me = await currentProcess();
  return `${PENDING_PREFIX}${me.pid}:${me.start}:${randomBytes(6).toString("hex")}`;
}

/** The process that owns a pending reference; undefined when `name` is not one. */
export function pendingOwner(name: string): ProcessIdentity | undefined {
  if (!name.startsWith(PENDING_PREFIX)) return undefined;
  const m = /^(\d+):(\d+):[0-9a-f]+$/.exec(name.slice(PENDING_PREFIX.length));
  return m ? { pid: Number(m[1]), start: m[2]! } : undefined;
}

/**
 * Drops the "image" reference of layers no image record uses any more (after
 * `rmi`), top first; a layer then goes when nothing else holds it (a
 * container, a child, another reference).
 * @returns the chainIDs the layer store deleted
 */
export async function releaseImageLayers(store: LayerStore, chainIDs: readonly string[]): Promise<string[]> {
  const deleted: string[] = [];
  for (const c of [...chainIDs].reverse()) {
    try {
      deleted.push(...(await store.removeRef(assertDigest(c), IMAGE_REF)));
    } catch (err) {
      // Stores written before every image layer got "image" (a reused layer did not): nothing to drop.
      if (!hasCode(err, "ERR_REF_NOT_FOUND")) throw err;
    }
  }
  return deleted;
}
