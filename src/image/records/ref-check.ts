/**
 * The image side of `strata check`: the layer store's references against the
 * image records (the layer store alone cannot know which layers an image
 * uses).
 *
 * - `dead-import-ref`: a pending import reference whose process is gone (a
 *   pull, load or commit killed between registering its layers and moving
 *   them to "image"). Repair: "image" when some image record uses the layer,
 *   then the pending reference goes.
 * - `unused-image-ref`: "image" on a layer no image record uses (stores
 *   written before pending references, or an `rmi` killed half-way).
 *   Repair: the reference goes.
 * - `image-layer-unheld`: a layer an image record uses without "image" and
 *   with no import holding it (older stores, where a reused layer was not
 *   given "image"). Repair: "image" is added.
 *
 * Pending references of live processes are imports in progress, not
 * problems. A removed reference deletes the layer (and parents) when nothing
 * else holds it, as `removeRef` does. Everything runs under the layer-store
 * lock, which imports need to move their references, so no import can
 * finish between what is read here and what is changed.
 *
 * @module
 */
import { type Digest, type LayerStore, withRefs } from "../../layer/index.js";
import { isAlive } from "../../util/process.js";
import { IMAGE_REF, PENDING_PREFIX, pendingOwner } from "./image-refs.js";
import type { ImageStore } from "./image-store.js";

/** One finding, in the shape of the layer store's `CheckProblem`. */
export interface ImageRefProblem {
  kind: "dead-import-ref" | "unused-image-ref" | "image-layer-unheld";
  /** The layer's chainID. */
  subject: string;
  detail: string;
}

/** What {@link checkImageRefs} found and, with `repair`, deleted. */
export interface ImageRefReport {
  problems: ImageRefProblem[];
  /** Layers deleted because the repair left nothing holding them. */
  deleted: string[];
}

/**
 * Checks the image references of `layers` against the records of `images`;
 * with `repair`, fixes what it reports (see the module doc).
 * @example
 * const { problems } = await checkImageRefs(layerStore, imageStore, false);
 */
export async function checkImageRefs(layers: LayerStore, images: ImageStore, repair: boolean): Promise<ImageRefReport> {
  return withRefs(layers, async (refs) => {
    // Read under the layer lock: an import writes its record before it moves refs (which needs this lock).
    const used = new Set((await images.list()).flatMap((r) => r.layers.map((l) => l.chainID)));
    const report: ImageRefReport = { problems: [], deleted: [] };
    const found = (kind: ImageRefProblem["kind"], chainID: Digest, detail: string) =>
      report.problems.push({ kind, subject: chainID, detail });
    const listed = await refs.list();
    // Adds first: a layer an image uses must be held before any removal can delete it.
    for (const { chainID, refs: names } of listed) {
      if (!used.has(chainID) || names.includes(IMAGE_REF)) continue;
      // A live import gives it "image" when it finishes; a dead one's ref is reported (and converted) below.
      if (names.some((n) => n.startsWith(PENDING_PREFIX))) continue;
      found("image-layer-unheld", chainID, `used by an image record but not held by "${IMAGE_REF}"`);
      if (repair) await refs.add(chainID, IMAGE_REF);
    }
    for (const { chainID, refs: names } of listed) {
      for (const name of names.filter((n) => n.startsWith(PENDING_PREFIX))) {
        const owner = pendingOwner(name);
        if (owner && (await isAlive(owner))) continue;
        const keep = used.has(chainID);
        found(
          "dead-import-ref",
          chainID,
          `held by "${name}" of a process that is gone; ${keep ? `an image uses it (repair: "${IMAGE_REF}")` : "no image uses it"}`,
        );
        if (!repair) continue;
        if (keep) await refs.add(chainID, IMAGE_REF);
        report.deleted.push(...(await refs.remove(chainID, name)));
      }
      if (names.includes(IMAGE_REF) && !used.has(chainID)) {
        found("unused-image-ref", chainID, `held by "${IMAGE_REF}" but no image record uses it`);
        if (repair) report.deleted.push(...(await refs.remove(chainID, IMAGE_REF)));
      }
    }
    return report;
  });
}
