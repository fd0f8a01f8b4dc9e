/**
 * `strata pull REF`: resolve the reference, fetch the manifest (choosing the
 * platform in a manifest list or OCI index), fetch and verify the config,
 * import the layers through the pipeline, then record the image with its
 * tag and repo digest, in one import transaction: nothing is recorded
 * unless every layer made it, and a failed pull releases what it held.
 *
 * Everything the registry sends is checked before use: manifests are at
 * most 4 MiB and verified against their digest, every descriptor has a
 * digest and a size, the config is read no further than its declared size
 * (at most 8 MiB), and each layer blob no further than its own.
 *
 * @module
 */
import { InvalidArgumentError, NotSupportedError } from "../../errors.js";
import type { LayerSink } from "../import/layer-sink.js";
import { type ImportOptions, importLayers, type LayerSource } from "../import/pipeline.js";
import { type ImportHooks, withImport } from "../import/transaction.js";
import type { ImageRecord, ImageStore } from "../records/image-store.js";
import { MAX_CONFIG_BYTES } from "../spec/limits.js";
import { declaredMediaType, parseConfig, parseIndex, parseManifest } from "../spec/parse.js";
import { hostPlatform, selectPlatform } from "../spec/platform.js";
import { familiarName, parseReference, repoName } from "../spec/reference.js";
import { assertLayerType, type ImageManifest, MT, type Platform } from "../spec/types.js";
import { type ClientOptions, type FetchedManifest, RegistryClient } from "./client.js";

/** Media types a pull accepts for a manifest. */
export const MANIFEST_ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest];

/** Options of {@link pullImage}. */
export interface PullOptions extends ImportOptions, ClientOptions {
  /** @default the host */
  platform?: Platform;
  /** Awaited between the steps of the import transaction (crash tests). */
  hooks?: ImportHooks;
}

/** What a pull stored. */
export interface PullResult {
  /** The image record: its `id` is the image ID. */
  image: ImageRecord;
  /** The digest of the manifest the reference names (a list's when it is one): Docker's `Digest: sha256:…`. */
  digest: string;
}

function mediaTypeOf(m: FetchedManifest): string {
  if (m.mediaType && m.mediaType !== "application/json" && m.mediaType !== "text/plain") return m.mediaType;
  return declaredMediaType(m.bytes) ?? m.mediaType;
}

/**
 * Resolves `ref` to one image manifest for `platform`.
 * @returns the manifest, its digest, and the digest the reference names (the list's when there is one)
 * @throws ERR_UNSUPPORTED_MEDIA_TYPE for schema 1 and unknown types; ERR_PLATFORM_NOT_FOUND; ERR_BAD_MANIFEST
 */
export async function resolveManifest(
  client: RegistryClient,
  repo: string,
  ref: string,
  platform: Platform,
): Promise<{ manifest: ImageManifest; digest: string; topDigest: string }> {
  let m = await client.manifest(repo, ref, MANIFEST_ACCEPT);
  const topDigest = m.digest;
  let mt = mediaTypeOf(m);
  if (mt === MT.ociIndex || mt === MT.dockerList) {
    const index = parseIndex(m.bytes, `the manifest list of ${repo}:${ref}`);
    const d = selectPlatform(index.manifests, platform, `${repo}:${ref}`);
    m = await client.manifest(repo, d.digest, MANIFEST_ACCEPT);
    mt = mediaTypeOf(m);
  }
  if (mt !== MT.ociManifest && mt !== MT.dockerManifest) {
    throw new NotSupportedError("ERR_UNSUPPORTED_MEDIA_TYPE", `Cannot pull: unsupported manifest media type "${mt}"`);
  }
  return { manifest: parseManifest(m.bytes, `the manifest of ${repo}:${ref}`), digest: m.digest, topDigest };
}

/**
 * Pulls `ref` into `sink` and `store`.
 * @returns the image record and the manifest digest
 * @throws ERR_INVALID_REFERENCE, ERR_MANIFEST_NOT_FOUND, ERR_BLOB_NOT_FOUND, ERR_DIGEST_MISMATCH,
 *   ERR_UNSUPPORTED_MEDIA_TYPE, ERR_PLATFORM_NOT_FOUND, ERR_BAD_MANIFEST, ERR_BLOB_TOO_LARGE,
 *   ERR_MANIFEST_TOO_LARGE, ERR_REGISTRY*, ERR_REGISTRY_AUTH
 * @example
 * const { image, digest } = await pullImage("127.0.0.1:5000/peer/base:1", sink, images, { concurrency: 4 });
 */
export async function pullImage(
  ref: string,
  sink: LayerSink,
  store: ImageStore,
  opts: PullOptions = {},
): Promise<PullResult> {
  const r = parseReference(ref);
  const client = new RegistryClient(r.registry, opts);
  const { manifest, topDigest } = await resolveManifest(
    client,
    r.repository,
    r.digest ?? (r.tag as string),
    opts.platform ?? hostPlatform(),
  );
  if (manifest.config.size > MAX_CONFIG_BYTES) {
    throw new InvalidArgumentError(
      "ERR_BLOB_TOO_LARGE",
      `Cannot pull: the config has ${manifest.config.size} bytes, at most ${MAX_CONFIG_BYTES} allowed "${familiarName(r)}"`,
    );
  }
  const config = await client.blob(r.repository, manifest.config.digest, manifest.config.size);
  const diffIDs = parseConfig(config).rootfs.diff_ids;
  if (diffIDs.length !== manifest.layers.length) {
    throw new InvalidArgumentError(
      "ERR_BAD_MANIFEST",
      `Cannot pull: ${diffIDs.length} diff_ids for ${manifest.layers.length} layers "${familiarName(r)}"`,
    );
  }
  const layers: LayerSource[] = manifest.layers.map((d, i) => {
    assertLayerType(d.mediaType);
    return {
      diffID: diffIDs[i],
      blob: { digest: d.digest, size: d.size, mediaType: d.mediaType, registry: r.registry, repository: r.repository },
      label: d.digest.slice(7, 19),
      open: async (signal) => client.blobStream(r.repository, d.digest, d.size, signal),
    };
  });
  const image = await withImport(sink, opts.hooks, async (tx) =>
    tx.record(store, {
      config,
      layers: await importLayers(tx, layers, opts),
      tags: r.tag ? [`${repoName(r)}:${r.tag}`] : [],
      repoDigest: `${repoName(r)}@${topDigest}`,
    }),
  );
  return { image, digest: topDigest };
}
