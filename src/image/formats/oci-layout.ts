/**
 * OCI image layouts: `oci-layout`, `index.json` and `blobs/sha256/<hex>`.
 * Reading walks index.json, descending into nested indexes (choosing the
 * wanted platform); every blob is verified against its digest. Writing puts
 * uncompressed (or gzip) layer blobs, the config and an OCI manifest per
 * image, and one index.json entry per tag (`org.opencontainers.image.ref.name`),
 * the form `skopeo copy oci:DIR:TAG` and `umoci unpack --image DIR:TAG` use.
 *
 * @module
 */
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { DigestMismatchError, hasCode, InvalidArgumentError, NotFoundError, NotSupportedError } from "../../errors.js";
import { writeFileAtomic } from "../../util/atomic.js";
import type { LayerSink } from "../import/layer-sink.js";
import type { LayerSource } from "../import/pipeline.js";
import { type ImageStore, tagKeyOf } from "../records/image-store.js";
import { DigestStream, digestHex, sha256 } from "../spec/digest.js";
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES } from "../spec/limits.js";
import { parseConfig, parseIndex, parseManifest } from "../spec/parse.js";
import { hostPlatform, selectPlatform } from "../spec/platform.js";
import { familiarName, parseReference } from "../spec/reference.js";
import {
  assertLayerType,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  MT,
  type Platform,
} from "../spec/types.js";
import type { ArchiveImage } from "./docker-archive.js";
import { type FileSource, openVerified, readVerified } from "./source.js";

/** An OCI layout is for other tools to read: world-readable files. */
const PUBLIC = { mode: 0o644 } as const;

/** The annotation holding a tag in an OCI layout's index. */
export const REF_NAME = "org.opencontainers.image.ref.name";
/** containerd's annotation holding the full image name. */
export const IMAGE_NAME = "io.containerd.image.name";

const bad = (src: FileSource, why: string) =>
  new InvalidArgumentError("ERR_BAD_ARCHIVE", `Cannot load the OCI layout: ${why} "${src.path}"`);

/** The path of a blob in a layout. */
export function blobPath(digest: string): string {
  return `blobs/sha256/${digestHex(digest)}`;
}

/** Whether `src` looks like an OCI layout. */
export async function isOciLayout(src: FileSource): Promise<boolean> {
  return (await src.has("oci-layout")) && (await src.has("index.json"));
}

const isIndex = (mt: string | undefined) => mt === MT.ociIndex || mt === MT.dockerList;
const isManifest = (mt: string | undefined) => mt === MT.ociManifest || mt === MT.dockerManifest;

/**
 * A blob of a descriptor, read whole: refused when the descriptor says more
 * than `max` bytes, verified against its digest and size.
 */
async function readBlob(src: FileSource, d: Descriptor, max: number, what: string): Promise<Buffer> {
  if (d.size > max) throw bad(src, `${what} ${d.digest} has ${d.size} bytes, at most ${max} allowed`);
  const bytes = await readVerified(src, blobPath(d.digest), d.digest, max);
  if (bytes.length !== d.size)
    throw new DigestMismatchError(
      `Cannot verify ${what} ${d.digest}: size mismatch, want ${d.size} got ${bytes.length}`,
    );
  return bytes;
}

/**
 * Turns a verified manifest into an importable image. Each layer blob's
 * size is checked against its descriptor before anything is read.
 * @throws ERR_UNSUPPORTED_MEDIA_TYPE for a layer type strata cannot apply; ERR_DIGEST_MISMATCH
 */
export async function manifestImage(src: FileSource, manifest: ImageManifest, tags: string[]): Promise<ArchiveImage> {
  const config = await readBlob(src, manifest.config, MAX_CONFIG_BYTES, "the config");
  const diffIDs = parseConfig(config).rootfs.diff_ids;
  if (diffIDs.length !== manifest.layers.length)
    throw bad(src, `${diffIDs.length} diff_ids for ${manifest.layers.length} layers`);
  const layers: LayerSource[] = [];
  for (const [i, d] of manifest.layers.entries()) {
    assertLayerType(d.mediaType);
    const have = await src.size(blobPath(d.digest));
    if (have !== d.size) {
      throw new DigestMismatchError(
        `Cannot verify layer ${d.digest}: size mismatch, want ${d.size} got ${have} in "${src.path}"`,
      );
    }
    layers.push({
      diffID: diffIDs[i],
      blob: { digest: d.digest, size: d.size, mediaType: d.mediaType },
      label: d.digest.slice(7, 19),
      local: true,
      // An uncompressed blob is its diffID, which the layer store verifies as it applies: hash once.
      open: async () =>
        d.digest === diffIDs[i]
          ? src.open(blobPath(d.digest))
          : openVerified(src, blobPath(d.digest), d.digest, d.size),
    });
  }
  return { config, tags, layers };
}

/**
 * Reads the images of an OCI layout: every index.json entry (or only the one
 * whose ref.name is `refName`), nested indexes resolved to `platform`.
 * Reads whole only what is capped: index.json and manifests (4 MiB),
 * configs (8 MiB).
 * @throws ERR_BAD_ARCHIVE, ERR_BAD_MANIFEST, ERR_BAD_CONFIG, ERR_DIGEST_MISMATCH, ERR_IMAGE_NOT_FOUND
 */
export async function readOciLayout(
  src: FileSource,
  platform: Platform = hostPlatform(),
  refName?: string,
): Promise<ArchiveImage[]> {
  const index = parseIndex(await src.read("index.json", MAX_MANIFEST_BYTES), "index.json");
  if (index.manifests.length === 0) throw bad(src, "index.json lists no manifests");
  const out: ArchiveImage[] = [];
  const wanted = refName ? index.manifests.filter((m) => m.annotations?.[REF_NAME] === refName) : index.manifests;
  if (wanted.length === 0) {
    throw new NotFoundError(
      "ERR_IMAGE_NOT_FOUND",
      `Cannot load the OCI layout: no image named "${refName}" in "${src.path}"`,
    );
  }
  for (const top of wanted) {
    // A bare ref.name ("v1") is only a tag inside this layout; a full reference names the image.
    const ref = top.annotations?.[REF_NAME];
    const name = top.annotations?.[IMAGE_NAME] ?? (typeof ref === "string" && /[:/]/.test(ref) ? ref : undefined);
    const tags = typeof name === "string" && tagKeyOf(name) !== undefined ? [name] : [];
    let d = top;
    for (let depth = 0; isIndex(d.mediaType); depth++) {
      if (depth > 8) throw bad(src, "indexes nested too deep");
      const inner = parseIndex(await readBlob(src, d, MAX_MANIFEST_BYTES, "the index"), `index ${d.digest}`);
      d = selectPlatform(inner.manifests, platform, `index ${d.digest}`);
    }
    if (!isManifest(d.mediaType)) {
      throw new NotSupportedError(
        "ERR_UNSUPPORTED_MEDIA_TYPE",
        `Cannot load the manifest: unsupported media type "${d.mediaType}"`,
      );
    }
    const manifest = parseManifest(await readBlob(src, d, MAX_MANIFEST_BYTES, "the manifest"), `manifest ${d.digest}`);
    out.push(await manifestImage(src, manifest, tags));
  }
  return out;
}

/** Options of {@link saveOciLayout}. */
export interface OciSaveOptions {
  /** Layer blobs: "none" (media type ...layer.v1.tar, digest = diffID) or "gzip". @default "none" */
  compression?: "none" | "gzip";
}

/**
 * Writes the named images into an OCI layout at `dir` (created, or merged
 * into an existing layout: entries with the same ref name are replaced).
 * Blobs are written under temporary names and renamed once verified.
 */
export async function saveOciLayout(
  store: ImageStore,
  sink: LayerSink,
  refs: string[],
  dir: string,
  opts: OciSaveOptions = {},
): Promise<void> {
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  await writeFileAtomic(join(dir, "oci-layout"), `${JSON.stringify({ imageLayoutVersion: "1.0.0" })}\n`, PUBLIC);
  let index: ImageIndex = { schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] };
  try {
    index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as ImageIndex;
  } catch (err) {
    if (!hasCode(err, "ENOENT")) throw err;
  }
  const putBlob = async (bytes: Buffer) => {
    const d = sha256(bytes);
    await writeFileAtomic(join(blobs, digestHex(d)), bytes, PUBLIC);
    return d;
  };
  for (const ref of refs) {
    const rec = await store.resolve(ref);
    const config = await store.config(rec.id);
    const cfg = parseConfig(config);
    await putBlob(config);
    const layers: Descriptor[] = [];
    for (const l of rec.layers)
      layers.push(await writeLayerBlob(sink, l.chainID, l.diffID, blobs, opts.compression ?? "none"));
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: rec.id, size: config.length },
      layers,
    };
    const mbytes = Buffer.from(JSON.stringify(manifest));
    const mdigest = await putBlob(mbytes);
    const byTag = tagKeyOf(ref);
    const keys = byTag && rec.repoTags.includes(byTag) ? [byTag] : rec.repoTags.slice(0, 1);
    const entry: Descriptor = {
      mediaType: MT.ociManifest,
      digest: mdigest,
      size: mbytes.length,
      platform: { architecture: cfg.architecture ?? hostPlatform().architecture, os: cfg.os ?? "linux" },
    };
    if (keys.length === 0) index.manifests.push(entry);
    for (const k of keys) {
      const r = parseReference(k);
      const annotations = { [IMAGE_NAME]: familiarName(r), [REF_NAME]: r.tag ?? "latest" };
      index.manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME] !== annotations[REF_NAME]);
      index.manifests.push({ ...entry, annotations });
    }
  }
  await writeFileAtomic(join(dir, "index.json"), `${JSON.stringify(index)}\n`, PUBLIC);
}

async function writeLayerBlob(
  sink: LayerSink,
  chainID: string,
  diffID: string,
  blobs: string,
  compression: "none" | "gzip",
): Promise<Descriptor> {
  if (compression === "none") {
    const final = join(blobs, digestHex(diffID));
    try {
      const st = await stat(final);
      return { mediaType: MT.ociLayer, digest: diffID, size: st.size };
    } catch (err) {
      if (!hasCode(err, "ENOENT")) throw err;
    }
  }
  const tmp = join(blobs, `.tmp-${digestHex(diffID)}-${process.pid}`);
  try {
    const tar = await sink.tarStream(chainID);
    const checkTar = new DigestStream(`layer ${diffID}`, { digest: diffID });
    const blobHash = new DigestStream("blob");
    if (compression === "gzip")
      await pipeline(tar, checkTar, createGzip({ chunkSize: 1 << 20 }), blobHash, createWriteStream(tmp));
    else await pipeline(tar, checkTar, blobHash, createWriteStream(tmp));
    await rename(tmp, join(blobs, digestHex(blobHash.digest)));
    return {
      mediaType: compression === "gzip" ? MT.ociLayerGzip : MT.ociLayer,
      digest: blobHash.digest,
      size: blobHash.bytes,
    };
  } finally {
    await rm(tmp, { force: true });
  }
}
