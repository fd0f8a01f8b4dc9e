/**
 * Images: how layers get into strata and out again. Four parts over a
 * common base, arrows pointing down only:
 *
 * - `formats/`: docker-archive and OCI layout, read (`loadImages`, from a
 *   file, a directory or a stream) and written (`saveDockerArchive`,
 *   `saveOciLayout`);
 * - `distribution/`: the registry client (Distribution API v2 / OCI
 *   distribution: auth, retries, caps, stalls), `pullImage`, `pushImage`;
 * - `import/`: the layer pipeline (parallel fetch, verify, decompress,
 *   register in order), the import transaction every import goes through
 *   (pull, load, `commitContainer`), the port to the layer store
 *   (`LayerSink`) and progress events;
 * - `records/`: the image-record store (name/tag → config + layer chain),
 *   the references image layers are held by, which image each container
 *   came from, `inspect`, and `strata check`'s image side;
 * - `spec/`: media types and JSON shapes, their parsing and limits,
 *   digests, references, platforms.
 *
 * @example
 * const images = await ImageStore.openFor(root, layerStore.driver.name);
 * const sink = layerStoreSink(layerStore);
 * const { image, digest } = await pullImage("debian:12", sink, images, { progress: (e) => console.error(e) });
 * await saveDockerArchive(images, sink, ["debian:12"], "debian.tar");
 *
 * @module
 */
export { type CommitOptions, type CommitResult, commitContainer } from "./import/commit.js";
export type { LayerSink, RegisteredLayer, StoredLayer } from "./import/layer-sink.js";
export { layerStoreSink } from "./import/layer-store-sink.js";
export { type ImportOptions, importLayers, type LayerSource } from "./import/pipeline.js";
export type { LayerStatus, ProgressEvent, ProgressFn } from "./import/progress.js";
export { type ImageToRecord, type ImportHooks, ImportTransaction, withImport } from "./import/transaction.js";
export { readDockerArchive, saveDockerArchive } from "./formats/docker-archive.js";
export { type LoadOptions, loadImages, openArchive, parseLoadArg, readArchive } from "./formats/load.js";
export { type OciSaveOptions, readOciLayout, saveOciLayout } from "./formats/oci-layout.js";
export { type ClientOptions, RegistryClient, RegistryError } from "./distribution/client.js";
export { type Credentials, dockerConfigCredentials } from "./distribution/auth.js";
export { type PullOptions, type PullResult, pullImage } from "./distribution/pull.js";
export { type PushOptions, type PushResult, pushImage } from "./distribution/push.js";
export { type ContainerImage, type ContainerRef } from "./records/containers.js";
export {
  imageDir,
  type ImageLayer,
  type ImageRecord,
  ImageStore,
  type RemoveOptions,
  type RemoveResult,
  tagKey,
  withImageStore,
} from "./records/image-store.js";
export { IMAGE_REF, releaseImageLayers } from "./records/image-refs.js";
export { type ImageInspect, imageSize, inspectImage } from "./records/inspect.js";
export { checkImageRefs, type ImageRefProblem, type ImageRefReport } from "./records/ref-check.js";
export { DigestMismatchError, chainIDs, sha256 } from "./spec/digest.js";
export { parseConfig } from "./spec/parse.js";
export { hostPlatform, parsePlatform } from "./spec/platform.js";
export { familiarName, parseReference, type Reference } from "./spec/reference.js";
export type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from "./spec/types.js";
