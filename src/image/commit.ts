/**
 * Commit and import: a layer tar becomes an image. `docker commit` turns a
 * container's change into a layer on its image's chain; `docker import`
 * turns a flat filesystem tar into a one-layer image. Both store the layer,
 * then an image record whose config is the base image's (commit, when the
 * container was created from an image) or a minimal one (import), with the
 * Dockerfile instructions of `-c` applied, the new diffID and a history
 * entry appended.
 *
 * Like pull and load, the commit holds the whole chain with its own pending
 * reference until the record is written, then moves it to the "image"
 * reference (see `image-refs.ts`), so a commit killed in between leaves a
 * reference `strata check` can attribute to a dead process.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { NotFoundError } from "../errors.js";
import type { Digest, LayerStore } from "../layer/index.js";
import { applyChanges, type ContainerConfig } from "./config-changes.js";
import type { ImageRecord, ImageStore } from "./image-store.js";
import { layerStoreSink } from "./layer-store-sink.js";
import { imageRecorded } from "./load.js";
import { testPause } from "./test-hooks.js";
import type { ImageConfig } from "./types.js";

/** Options of {@link commitImage}. */
export interface CommitOptions {
  /** Name for the new image; none leaves it untagged (`<none>` in listings). */
  tag?: string;
  /** The new history entry's comment (`docker commit -m`, `docker import -m`). */
  comment?: string;
  /** The image's author (`docker commit -a`). */
  author?: string;
  /** Dockerfile instructions applied to the config (`-c`): see {@link applyChanges}. */
  changes?: string[];
  /** The new history entry's `created_by` ("" leaves it out, as `docker import` does). @default "strata commit" */
  createdBy?: string;
}

/** What {@link commitImage} stored. */
export interface CommitResult {
  /** The new image's record; its `id` is what `docker commit` prints. */
  image: ImageRecord;
  /** The chainID of the new top layer. */
  chainID: string;
}

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

/** The config of an image whose top layer is `parent`, if any image has it. */
async function baseConfig(images: ImageStore, parent: string): Promise<ImageConfig | undefined> {
  if (!parent) return undefined;
  for (const img of await images.list()) {
    if (img.layers.at(-1)?.chainID === parent)
      return JSON.parse((await images.config(img.id)).toString()) as ImageConfig;
  }
  return undefined;
}

/**
 * Registers the layer tar `tarFile` on `parent` (a container's image layer,
 * or "" for an import) and stores an image whose top layer it is.
 * @throws ERR_LAYER_NOT_FOUND when a layer of the chain went away meanwhile;
 *   ERR_INVALID_CHANGE for a bad `changes` entry; whatever the layer store throws for a bad tar
 * @example
 * const { image } = await commitImage(layers, images, container.parent, "change.tar", { tag: "web:v2", comment: "fix" });
 */
export async function commitImage(
  store: LayerStore,
  images: ImageStore,
  parent: Digest | "",
  tarFile: string,
  opts: CommitOptions = {},
): Promise<CommitResult> {
  const sink = layerStoreSink(store);
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
    const base = await baseConfig(images, parent);
    // Sizes go into the record (push shows them as its progress totals).
    const layers = [...below, { diffID: top.diffID, chainID: top.chainID, size: top.size, tarSize: top.tarSize }];
    const now = new Date().toISOString();
    const createdBy = opts.createdBy ?? "strata commit";
    const entry: Record<string, unknown> = { created: now, ...(createdBy ? { created_by: createdBy } : {}) };
    if (opts.comment) entry.comment = opts.comment;
    if (opts.author) entry.author = opts.author;
    const config: ImageConfig = {
      ...(base ?? { architecture: process.arch === "x64" ? "amd64" : process.arch, os: "linux" }),
      ...(opts.author ? { author: opts.author } : {}),
      created: now,
      config: applyChanges((base?.config ?? {}) as ContainerConfig, opts.changes ?? []),
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
      history: [...(base?.history ?? []), entry],
    };
    const image = await images.put(Buffer.from(JSON.stringify(config)), layers, opts.tag ? [opts.tag] : []);
    recorded = true;
    await imageRecorded(
      sink,
      layers.map((l) => l.chainID),
    );
    return { image, chainID: top.chainID };
  } catch (err) {
    // Once the record is written it uses the layers: they are never released here.
    if (!recorded) for (const c of held.reverse()) await sink.release(c).catch(() => {});
    throw err;
  }
}
