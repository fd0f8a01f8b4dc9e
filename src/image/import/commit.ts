/**
 * Commit and import: a layer tar becomes an image. `strata commit`
 * (`docker commit`) turns a container's change into a layer on its image's
 * chain; `strata import` (`docker import`) turns a flat filesystem tar into
 * a one-layer image. Both go through the import transaction as pull and
 * load do: the layers below are held, the new one registered, the record
 * written, the references traded (or, on failure, everything released).
 *
 * A commit's config is the container's image config (the one it was
 * created from, kept even when that image was removed since; see
 * `records/containers.ts`); an import's, or a commit of a container made
 * from no image, is a minimal config for the host platform. Either gets the
 * Dockerfile instructions of `changes` applied (`-c`, see
 * `spec/config-changes.ts`), the new diffID, `created`, `author`, `comment`
 * and a history entry appended.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { NotFoundError } from "../../errors.js";
import type { Digest, LayerStore } from "../../layer/index.js";
import type { ImageRecord, ImageLayer, ImageStore } from "../records/image-store.js";
import { applyChanges } from "../spec/config-changes.js";
import { hostPlatform } from "../spec/platform.js";
import type { ImageConfig } from "../spec/types.js";
import { layerStoreSink } from "./layer-store-sink.js";
import { type ImportHooks, withImport } from "./transaction.js";

/** Options of {@link commitContainer}. */
export interface CommitOptions {
  /** A name for the image ("web:v2"); none leaves it untagged. */
  tag?: string;
  /** The commit message (`comment` in the config and its history entry). */
  comment?: string;
  /** The author (`author` in the config and its history entry). */
  author?: string;
  /** Fields laid over the image's run config (`config.Cmd`, `config.Env`…). */
  config?: Record<string, unknown>;
  /** Dockerfile instructions applied to the run config after `config` (`-c "CMD [\"sh\"]"`). */
  changes?: string[];
  /** The history entry's `created_by` ("" leaves it out, as `docker import` does). @default "strata commit" */
  createdBy?: string;
  /** The layer tar to commit, when the caller has it already; default: the container's diff. */
  tar?: Readable;
  /** Awaited between the steps of the import (crash tests). */
  hooks?: ImportHooks;
}

/** What a commit stored. */
export interface CommitResult {
  /** The image record: its `id` is the image ID (`strata images`). */
  image: ImageRecord;
  /** The new layer's chainID. */
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

/** The new image's config: `base` (or a minimal one) with the new layers, metadata and history. */
function commitConfig(base: ImageConfig | undefined, layers: ImageLayer[], opts: CommitOptions): ImageConfig {
  const created = new Date().toISOString();
  const host = hostPlatform();
  const from: ImageConfig = base ?? {
    architecture: host.architecture,
    os: host.os,
    ...(host.variant ? { variant: host.variant } : {}),
    config: {},
    rootfs: { type: "layers", diff_ids: [] },
  };
  const meta = {
    ...(opts.author ? { author: opts.author } : {}),
    ...(opts.comment ? { comment: opts.comment } : {}),
  };
  const createdBy = opts.createdBy ?? "strata commit";
  const runConfig = { ...((from.config as Record<string, unknown> | null) ?? {}), ...opts.config };
  return {
    ...from,
    ...meta,
    created,
    config: applyChanges(runConfig, opts.changes ?? []),
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
    history: [...(from.history ?? []), { created, ...(createdBy ? { created_by: createdBy } : {}), ...meta }],
  };
}

/**
 * Registers `tar` on `parent` and records an image of the chain, with
 * `base` (or a minimal config) as the config it derives from.
 */
function commitLayer(
  layers: LayerStore,
  images: ImageStore,
  parent: Digest | "",
  tar: Readable,
  base: ImageConfig | undefined,
  opts: CommitOptions,
): Promise<CommitResult> {
  try {
    applyChanges({}, opts.changes ?? []); // a bad -c fails before anything is stored
  } catch (err) {
    tar.destroy();
    return Promise.reject(err);
  }
  return withImport(layerStoreSink(layers), opts.hooks, async (tx) => {
    const below: ImageLayer[] = [];
    for (const l of parent ? await chainOf(layers, parent) : []) {
      const held = await tx.hold(l.chainID);
      if (!held)
        throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot commit: layer removed meanwhile "${l.chainID}"`);
      below.push({ ...l, size: held.size });
    }
    const top = await tx.register(tar, parent);
    const chain = [...below, { diffID: top.diffID, chainID: top.chainID, size: top.size, tarSize: top.tarSize }];
    const config = Buffer.from(JSON.stringify(commitConfig(base, chain, opts)));
    const image = await tx.record(images, { config, layers: chain, tags: opts.tag ? [opts.tag] : [] });
    return { image, chainID: top.chainID };
  });
}

/**
 * Commits container `name` of `layers` as a new image in `images`.
 * @returns the image record and the new layer's chainID
 * @throws ERR_CONTAINER_NOT_FOUND; ERR_LAYER_NOT_FOUND when a layer below went meanwhile;
 *   ERR_INVALID_CHANGE for a bad `changes` entry
 * @example
 * const { image } = await commitContainer(layerStore, images, "web", { tag: "web:v2", comment: "fix" });
 * console.log(image.id);
 */
export async function commitContainer(
  layers: LayerStore,
  images: ImageStore,
  name: string,
  opts: CommitOptions = {},
): Promise<CommitResult> {
  const c = await layers.container(name);
  const tar = opts.tar ?? (await layers.diffTar(name));
  const base = await images.containerImage(c);
  return commitLayer(layers, images, c.parent, tar, base?.config, opts);
}

/**
 * Imports a flat filesystem tar (uncompressed) as a one-layer image, as
 * `docker import` does: no history `created_by` unless `opts.createdBy`.
 * @returns the image record and its layer's chainID
 * @throws ERR_INVALID_CHANGE; whatever the layer store throws for a bad tar
 * @example
 * const { image } = await importImage(layerStore, images, createReadStream("rootfs.tar"), { tag: "base:1" });
 */
export function importImage(
  layers: LayerStore,
  images: ImageStore,
  tar: Readable,
  opts: CommitOptions = {},
): Promise<CommitResult> {
  return commitLayer(layers, images, "", tar, undefined, { createdBy: "", ...opts });
}
