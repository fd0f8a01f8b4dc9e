/**
 * `inspect` and image sizes, in Docker's shape: what `docker image inspect`
 * prints for one image (the CLI prints a JSON array of these), and the
 * size `docker images` shows (Σ of the layers' content sizes).
 *
 * @module
 */
import { type Digest, isDigest, type LayerStore } from "../../layer/index.js";
import { parseConfig } from "../spec/parse.js";
import { familiarName, parseReference } from "../spec/reference.js";
import type { ImageRecord, ImageStore } from "./image-store.js";

/** One image as `docker image inspect` shows it (Docker 20.10's keys). */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  Created: string;
  Container: string;
  ContainerConfig: Record<string, unknown>;
  DockerVersion: string;
  Author: string;
  Config: Record<string, unknown> | null;
  Architecture: string;
  Variant?: string;
  Os: string;
  /** Bytes: Σ of the layers' content sizes. */
  Size: number;
  VirtualSize: number;
  GraphDriver: { Data: Record<string, string> | null; Name: string };
  RootFS: { Type: string; Layers: string[] };
  Metadata: { LastTagTime: string };
}

/**
 * The size of an image as Docker reports it: Σ of its layers' content sizes.
 * Sizes come from the layer store when given (so layers recorded without a
 * size count too), else from the record.
 */
export async function imageSize(rec: ImageRecord, layers?: LayerStore): Promise<number> {
  let total = 0;
  for (const l of rec.layers) {
    let size = l.size;
    if (layers && isDigest(l.chainID))
      size = (await layers.layer(l.chainID as Digest).catch(() => undefined))?.size ?? size;
    total += size ?? 0;
  }
  return total;
}

/**
 * Inspects image `ref` of `images`; with `layers`, sizes and the graph
 * driver's data (its paths for the top layer) come from the layer store.
 * @throws ERR_IMAGE_NOT_FOUND, ERR_AMBIGUOUS_ID
 * @example
 * console.log(JSON.stringify([await inspectImage(images, "debian:12", layerStore)], null, 4));
 */
export async function inspectImage(images: ImageStore, ref: string, layers?: LayerStore): Promise<ImageInspect> {
  const rec = await images.resolve(ref);
  const cfg = parseConfig(await images.config(rec.id));
  const str = (v: unknown) => (typeof v === "string" ? v : "");
  const obj = (v: unknown) => (typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined);
  const size = await imageSize(rec, layers);
  let data: Record<string, string> | null = null;
  const top = rec.layers.at(-1)?.chainID;
  if (layers && top && isDigest(top)) {
    const info = await layers.layer(top).catch(() => undefined);
    if (info) data = await layers.driver.metadata(info.cacheID).catch(() => null);
  }
  return {
    Id: rec.id,
    RepoTags: rec.repoTags.map((k) => familiarName(parseReference(k))),
    RepoDigests: rec.repoDigests,
    Parent: "",
    Comment: str(cfg.comment),
    Created: str(cfg.created),
    Container: str(cfg.container),
    ContainerConfig: obj(cfg.container_config) ?? {},
    DockerVersion: str(cfg.docker_version),
    Author: str(cfg.author),
    Config: obj(cfg.config) ?? null,
    Architecture: str(cfg.architecture),
    ...(cfg.variant ? { Variant: cfg.variant } : {}),
    Os: str(cfg.os),
    Size: size,
    VirtualSize: size,
    GraphDriver: { Data: data, Name: layers?.driver.name ?? "" },
    RootFS: { Type: cfg.rootfs.type || "layers", Layers: cfg.rootfs.diff_ids },
    Metadata: { LastTagTime: "" },
  };
}
