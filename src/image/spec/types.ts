/**
 * Media types and the JSON shapes of manifests, indexes and image configs
 * (Docker image manifest v2 schema 2 and the OCI image spec).
 *
 * @module
 */
import { NotSupportedError } from "../../errors.js";

/** Media types strata reads and writes. */
export const MT = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
} as const;

/** Layer media types whose content is a (possibly compressed) tar strata can apply. */
export const LAYER_TYPES: ReadonlySet<string> = new Set([
  MT.dockerLayer,
  MT.ociLayer,
  MT.ociLayerGzip,
  MT.ociLayerZstd,
  "application/vnd.docker.image.rootfs.diff.tar",
]);

/** The platform of an image or of an index entry. */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
}

/** A content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
}

/** An image manifest (Docker schema 2 or OCI). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** A manifest list or OCI index. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The parts of an image config strata reads; the rest is kept verbatim. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: Record<string, unknown>;
  rootfs: { type: string; diff_ids: string[] };
  history?: Array<Record<string, unknown>>;
  [key: string]: unknown;
}

/** @throws ERR_UNSUPPORTED_MEDIA_TYPE unless strata can apply layers of this type */
export function assertLayerType(mt: string): void {
  if (!LAYER_TYPES.has(mt)) {
    throw new NotSupportedError("ERR_UNSUPPORTED_MEDIA_TYPE", `Cannot apply the layer: unsupported media type "${mt}"`);
  }
}
