/**
 * Images: how layers get into strata and out again. Owns the image formats
 * (docker-archive, OCI image layout), the registry client (Distribution API
 * v2 / OCI distribution: pull, push, auth), the layer import pipeline
 * (parallel fetch, verify, decompress, hash, apply in order), and the
 * image-record store (name/tag → config + layer chain).
 *
 * It reaches the layer store only through {@link LayerSink}, and (for
 * `strata check`'s image side, `ref-check.ts`) the layer store's `withRefs`.
 *
 * @example
 * const store = await ImageStore.open("/var/lib/strata/image");
 * const rec = await pullImage("debian:12", layerStore, store, { progress: jsonProgress() });
 * await saveDockerArchive(store, layerStore, ["debian:12"], "debian.tar");
 *
 * @module
 */
export { type CommitOptions, type CommitResult, commitImage } from "./commit.js";
export { applyChanges, type ContainerConfig } from "./config-changes.js";
export { DigestMismatchError, chainIDs, sha256 } from "./digest.js";
export { readDockerArchive, saveDockerArchive } from "./docker-archive.js";
export {
  type ImageInspect,
  type ImageRecord,
  ImageStore,
  type LayerRecord,
  type RemoveResult,
  parseConfig,
  tagKey,
} from "./image-store.js";
export type { LayerSink } from "./layer-sink.js";
export { IMAGE_REF, layerStoreSink } from "./layer-store-sink.js";
export { type LoadOptions, loadImages, parseLoadArg, readArchive } from "./load.js";
export { type OciSaveOptions, readOciLayout, saveOciLayout } from "./oci-layout.js";
export { type ImportOptions, type ImportResult, importLayers, type LayerSource } from "./pipeline.js";
export { hostPlatform, parsePlatform } from "./platform.js";
export { jsonProgress, type LayerStatus, type ProgressEvent, type ProgressFn } from "./progress.js";
export { familiarName, parseReference, type Reference } from "./reference.js";
export { type Credentials, dockerConfigCredentials } from "./registry/auth.js";
export { type ClientOptions, RegistryClient, RegistryError } from "./registry/client.js";
export { type PullOptions, pullImage } from "./registry/pull.js";
export { type PushOptions, type PushResult, pushImage } from "./registry/push.js";
export type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from "./types.js";
