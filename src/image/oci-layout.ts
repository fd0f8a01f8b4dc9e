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
import { hasCode, InvalidArgumentError, NotFoundError, NotSupportedError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic.js";

import { assertDigest, DigestStream, digestHex, sha256 } from "./digest.js";
import type { ArchiveImage } from "./docker-archive.js";
import { type ImageStore, parseConfig, tagKey } from "./image-store.js";
import type { LayerSink } from "./layer-sink.js";
import { hostPlatform, selectPlatform } from "./platform.js";
import { familiarName, parseReference } from "./reference.js";
import { type FileSource, openVerified, readVerified } from "./source.js";
import { type Descriptor, type ImageIndex, type ImageManifest, LAYER_TYPES, MT, type Platform } from "./types.js";

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

async function readJson<T>(src: FileSource, d: Descriptor): Promise<T> {
  assertDigest(d.digest, "a descriptor digest");
  const bytes = await readVerified(src, blobPath(d.digest), d.digest);
  try {
    return JSON.parse(bytes.toString("utf8")) as T;
  } catch {
    throw bad(src, `blob ${d.digest} is not JSON`);
  }
}

const isIndex = (mt: string | undefined) => mt === MT.ociIndex || mt === MT.dockerList;
const isManifest = (mt: string | undefined) => mt === MT.ociManifest || mt === MT.dockerManifest;

/**
 * Turns a verified manifest into an importable image.
 * @throws ERR_UNSUPPORTED_MEDIA_TYPE for a layer type strata cannot apply
 */
export async function manifestImage(src: FileSource, manifest: ImageManifest, tags: string[]): Promise<ArchiveImage> {
  if (!manifest.config || !Array.isArray(manifest.layers)) throw bad(src, "manifest without config/layers");
  assertDigest(manifest.config.digest, "the config digest");
  const config = await readVerified(src, blobPath(manifest.config.digest), manifest.config.digest);
  const diffIDs = parseConfig(config).rootfs.diff_ids;
  if (diffIDs.length !== manifest.layers.length)
    throw bad(src, `${diffIDs.length} diff_ids for ${manifest.layers.length} layers`);
  const layers = manifest.layers.map((d, i) => {
    assertDigest(d.digest, "a layer digest");
    assertDigest(diffIDs[i], "a diff_id");
    assertLayerType(d.mediaType);
    return {
      diffID: diffIDs[i],
      blob: { digest: d.digest, size: d.size, mediaType: d.mediaType },
      label: d.digest.slice(7, 19),
      local: true,
      open: async (_s: AbortSignal, onBytes: (n: number) => void) => {
        // An uncompressed blob is its diffID, which the layer store verifies as it applies: hash once.
        const s =
          d.digest === diffIDs[i]
            ? await src.open(blobPath(d.digest))
            : await openVerified(src, blobPath(d.digest), d.digest, d.size);
        s.on("data", (c: Buffer) => onBytes(c.length));
        return s;
      },
    };
  });
  return { config, tags, layers };
}

/** @throws ERR_UNSUPPORTED_MEDIA_TYPE unless strata can apply layers of this type */
export function assertLayerType(mt: string): void {
  if (!LAYER_TYPES.has(mt)) {
    throw new NotSupportedError("ERR_UNSUPPORTED_MEDIA_TYPE", `Cannot apply the layer: unsupported media type "${mt}"`);
  }
}

/**
 * Reads the images of an OCI layout: every index.json entry (or only the one
 * whose ref.name is `refName`), nested indexes resolved to `platform`.
 */
export async function readOciLayout(
  src: FileSource,
  platform: Platform = hostPlatform(),
  refName?: string,
): Promise<ArchiveImage[]> {
  let index: ImageIndex;
  try {
    index = JSON.parse((await src.read("index.json")).toString("utf8")) as ImageIndex;
  } catch (err) {
    if (err instanceof SyntaxError) throw bad(src, "index.json is not JSON");
    throw err;
  }
  if (!Array.isArray(index.manifests) || index.manifests.length === 0) throw bad(src, "index.json lists no manifests");
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
    const refName = top.annotations?.[REF_NAME];
    const name = top.annotations?.[IMAGE_NAME] ?? (refName && /[:/]/.test(refName) ? refName : undefined);
    const tags = name ? [name] : [];
    let d = top;
    for (let depth = 0; isIndex(d.mediaType); depth++) {
      if (depth > 8) throw bad(src, "indexes nested too deep");
      const inner = await readJson<ImageIndex>(src, d);
      d = selectPlatform(inner.manifests ?? [], platform, `index ${d.digest}`);
    }
    if (!isManifest(d.mediaType)) {
      throw new NotSupportedError(
        "ERR_UNSUPPORTED_MEDIA_TYPE",
        `Cannot load the manifest: unsupported media type "${d.mediaType}"`,
      );
    }
    out.push(await manifestImage(src, await readJson<ImageManifest>(src, d), tags.filter(validTag)));
  }
  return out;
}

function validTag(t: string): boolean {
  try {
    tagKey(t);
    return true;
  } catch {
    return false;
  }
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
    let byTag: string | undefined;
    try {
      byTag = tagKey(ref);
    } catch {
      byTag = undefined;
    }
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
