/**
 * `strata commit NAME IMAGE`: a container's change becomes a layer and an
 * image record, through the import transaction as pull and load do: the
 * layers below are held, the new one registered, the record written, the
 * references traded (or, on failure, everything released).
 *
 * The config is the container's image config (the one it was created
 * from, kept even when that image was removed since; see
 * `records/containers.ts`) with the new diffID, `created`, `author`,
 * `comment` and a history entry appended; a container made from no image
 * gets a minimal config for the host platform.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { NotFoundError } from "../../errors.js";
import type { Digest, LayerStore } from "../../layer/index.js";
import type { ImageRecord, ImageLayer, ImageStore } from "../records/image-store.js";
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
  return {
    ...from,
    ...meta,
    created,
    config: { ...((from.config as Record<string, unknown> | null) ?? {}), ...opts.config },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
    history: [...(from.history ?? []), { created, created_by: "strata commit", ...meta }],
  };
}

/**
 * Commits container `name` of `layers` as a new image in `images`.
 * @returns the image record and the new layer's chainID
 * @throws ERR_CONTAINER_NOT_FOUND; ERR_LAYER_NOT_FOUND when a layer below went meanwhile
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
  return withImport(layerStoreSink(layers), opts.hooks, async (tx) => {
    const below: ImageLayer[] = [];
    for (const l of c.parent ? await chainOf(layers, c.parent) : []) {
      const held = await tx.hold(l.chainID);
      if (!held)
        throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot commit: layer removed meanwhile "${l.chainID}"`);
      below.push({ ...l, size: held.size });
    }
    const top = await tx.register(opts.tar ?? (await layers.diffTar(name)), c.parent);
    const chain = [...below, { diffID: top.diffID, chainID: top.chainID, size: top.size, tarSize: top.tarSize }];
    const base = await images.containerImage(c);
    const config = Buffer.from(JSON.stringify(commitConfig(base?.config, chain, opts)));
    const image = await tx.record(images, { config, layers: chain, tags: opts.tag ? [opts.tag] : [] });
    return { image, chainID: top.chainID };
  });
}
