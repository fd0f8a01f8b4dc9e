/**
 * `strata pull REF`: resolve the reference, fetch the manifest (choosing the
 * platform in a manifest list or OCI index), fetch and verify the config,
 * import the layers through the pipeline, then record the image with its
 * tag and repo digest. Nothing is recorded unless every layer made it.
 *
 * @module
 */
import { NotSupportedError } from "../../errors.js";
import { assertDigest } from "../digest.js";
import type { ImageRecord, ImageStore } from "../image-store.js";
import { parseConfig } from "../image-store.js";
import type { LayerSink } from "../layer-sink.js";
import { imageRecorded, releaseAll } from "../load.js";
import { assertLayerType } from "../oci-layout.js";
import { type ImportOptions, type ImportResult, importLayers, type LayerSource } from "../pipeline.js";
import { hostPlatform, selectPlatform } from "../platform.js";
import { familiarName, parseReference, repoName } from "../reference.js";
import { type Descriptor, type ImageIndex, type ImageManifest, MT, type Platform } from "../types.js";
import { testPause } from "../test-hooks.js";
import { type ClientOptions, type FetchedManifest, RegistryClient } from "./client.js";

/** Media types a pull accepts for a manifest. */
export const MANIFEST_ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest];

/** Options of {@link pullImage}. */
export interface PullOptions extends ImportOptions, ClientOptions {
  /** @default the host */
  platform?: Platform;
}

function mediaTypeOf(m: FetchedManifest): string {
  if (m.mediaType && m.mediaType !== "application/json" && m.mediaType !== "text/plain") return m.mediaType;
  const parsed = JSON.parse(m.bytes.toString("utf8")) as { mediaType?: string; manifests?: unknown };
  return parsed.mediaType ?? (parsed.manifests ? MT.ociIndex : MT.ociManifest);
}

/**
 * Resolves `ref` to one image manifest for `platform`.
 * @returns the manifest, its digest, and the digest the reference names (the list's when there is one)
 * @throws ERR_UNSUPPORTED_MEDIA_TYPE for schema 1 and unknown types; ERR_PLATFORM_NOT_FOUND
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
    const index = JSON.parse(m.bytes.toString("utf8")) as ImageIndex;
    const d: Descriptor = selectPlatform(index.manifests ?? [], platform, `${repo}:${ref}`);
    assertDigest(d.digest, "a manifest digest");
    m = await client.manifest(repo, d.digest, MANIFEST_ACCEPT);
    mt = mediaTypeOf(m);
  }
  if (mt !== MT.ociManifest && mt !== MT.dockerManifest) {
    throw new NotSupportedError("ERR_UNSUPPORTED_MEDIA_TYPE", `Cannot pull: unsupported manifest media type "${mt}"`);
  }
  const manifest = JSON.parse(m.bytes.toString("utf8")) as ImageManifest;
  return { manifest, digest: m.digest, topDigest };
}

/**
 * Pulls `ref` into `sink` and `store`.
 * @throws ERR_INVALID_REFERENCE, ERR_MANIFEST_NOT_FOUND, ERR_BLOB_NOT_FOUND, ERR_DIGEST_MISMATCH,
 *   ERR_UNSUPPORTED_MEDIA_TYPE, ERR_PLATFORM_NOT_FOUND, ERR_REGISTRY*, ERR_REGISTRY_AUTH
 * @example
 * await pullImage("127.0.0.1:5000/peer/base:1", sink, store, { concurrency: 4 });
 */
export async function pullImage(
  ref: string,
  sink: LayerSink,
  store: ImageStore,
  opts: PullOptions = {},
): Promise<ImageRecord> {
  const r = parseReference(ref);
  const client = new RegistryClient(r.registry, opts);
  const { manifest, topDigest } = await resolveManifest(
    client,
    r.repository,
    r.digest ?? (r.tag as string),
    opts.platform ?? hostPlatform(),
  );
  assertDigest(manifest.config?.digest, "the config digest");
  const config = await client.blob(r.repository, manifest.config.digest);
  const diffIDs = parseConfig(config).rootfs.diff_ids;
  if (!Array.isArray(manifest.layers) || diffIDs.length !== manifest.layers.length) {
    throw new NotSupportedError(
      "ERR_BAD_MANIFEST",
      `Cannot pull: ${diffIDs.length} diff_ids for ${manifest.layers?.length} layers "${familiarName(r)}"`,
    );
  }
  const layers: LayerSource[] = manifest.layers.map((d, i) => {
    assertDigest(d.digest, "a layer digest");
    assertDigest(diffIDs[i], "a diff_id");
    assertLayerType(d.mediaType);
    return {
      diffID: diffIDs[i],
      blob: { digest: d.digest, size: d.size, mediaType: d.mediaType, registry: r.registry, repository: r.repository },
      label: d.digest.slice(7, 19),
      open: async (signal, onBytes) => client.blobStream(r.repository, d.digest, d.size, signal, onBytes),
    };
  });
  let result: ImportResult | undefined;
  let rec: ImageRecord | undefined;
  try {
    result = await importLayers(sink, layers, opts);
    await testPause("AFTER_LAYERS");
    const tags = r.tag ? [`${repoName(r)}:${r.tag}`] : [];
    rec = await store.put(config, result.layers, tags, `${repoName(r)}@${topDigest}`);
    await imageRecorded(
      sink,
      result.layers.map((l) => l.chainID),
    );
    return rec;
  } catch (err) {
    // Once the record is written it uses the layers: they are never released here.
    if (result && !rec) await releaseAll(sink, [result]);
    throw err;
  }
}
