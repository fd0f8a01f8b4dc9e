/**
 * Parsing and checking the JSON documents of images: configs, manifests,
 * indexes and their descriptors. Everything comes from outside (a registry,
 * an archive), so every field strata reads is checked for its type before
 * use, and a bad document is one clear error, never a TypeError further on.
 *
 * @module
 */
import { InvalidArgumentError } from "../../errors.js";
import { isDigest } from "./digest.js";
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from "./types.js";

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Parses JSON bytes (UTF-8).
 * @throws `code` (an InvalidArgumentError) when the bytes are not JSON
 */
export function parseJson(bytes: Buffer, what: string, code: string): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw new InvalidArgumentError(code, `Cannot parse ${what}: ${(err as Error).message}`);
  }
}

/**
 * Parses and checks an image config: a JSON object with rootfs.diff_ids (sha256
 * digests); `config` an object and `history` an array of objects when present.
 * @throws ERR_BAD_CONFIG
 */
export function parseConfig(bytes: Buffer): ImageConfig {
  const bad = (why: string) => new InvalidArgumentError("ERR_BAD_CONFIG", `Cannot parse the image config: ${why}`);
  const c = parseJson(bytes, "the image config", "ERR_BAD_CONFIG");
  if (!isObject(c)) throw bad("not a JSON object");
  const rootfs = c.rootfs;
  if (!isObject(rootfs) || !Array.isArray(rootfs.diff_ids)) throw bad("no rootfs.diff_ids");
  for (const d of rootfs.diff_ids)
    if (typeof d !== "string" || !isDigest(d)) throw bad(`invalid diff_id "${String(d)}"`);
  if (c.config !== undefined && c.config !== null && !isObject(c.config)) throw bad("config is not an object");
  if (c.history !== undefined && (!Array.isArray(c.history) || !c.history.every(isObject)))
    throw bad("history is not a list of objects");
  for (const k of ["architecture", "os", "variant", "created"] as const)
    if (c[k] !== undefined && typeof c[k] !== "string") throw bad(`${k} is not a string`);
  return c as ImageConfig;
}

/**
 * Checks a content descriptor: a media type, a sha256 digest and a size (a
 * whole number of bytes; a descriptor without one would leave the download
 * unbounded, so it is refused).
 * @throws ERR_BAD_MANIFEST
 */
export function parseDescriptor(v: unknown, what: string): Descriptor {
  const bad = (why: string) => new InvalidArgumentError("ERR_BAD_MANIFEST", `Cannot use ${what}: ${why}`);
  if (!isObject(v)) throw bad("not a descriptor object");
  if (typeof v.mediaType !== "string") throw bad("no mediaType");
  if (typeof v.digest !== "string" || !isDigest(v.digest)) throw bad(`invalid digest "${String(v.digest)}"`);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0)
    throw bad(`no size, or a size that is not a byte count "${String(v.size)}"`);
  if (v.annotations !== undefined && !isObject(v.annotations)) throw bad("annotations are not an object");
  if (v.platform !== undefined) {
    const p = v.platform;
    if (!isObject(p) || typeof p.os !== "string" || typeof p.architecture !== "string")
      throw bad("platform without os/architecture");
  }
  return v as unknown as Descriptor;
}

/**
 * Parses an image manifest (Docker schema 2 or OCI): a config descriptor and
 * layer descriptors, all checked.
 * @throws ERR_BAD_MANIFEST
 */
export function parseManifest(bytes: Buffer, what: string): ImageManifest {
  const m = parseJson(bytes, what, "ERR_BAD_MANIFEST");
  if (!isObject(m) || !Array.isArray(m.layers))
    throw new InvalidArgumentError("ERR_BAD_MANIFEST", `Cannot parse ${what}: no config and layers`);
  parseDescriptor(m.config, `the config descriptor of ${what}`);
  m.layers.forEach((l, i) => parseDescriptor(l, `layer ${i} of ${what}`));
  return m as unknown as ImageManifest;
}

/**
 * Parses a manifest list or OCI index: a list of checked descriptors.
 * @throws ERR_BAD_MANIFEST
 */
export function parseIndex(bytes: Buffer, what: string): ImageIndex {
  const m = parseJson(bytes, what, "ERR_BAD_MANIFEST");
  if (!isObject(m) || !Array.isArray(m.manifests))
    throw new InvalidArgumentError("ERR_BAD_MANIFEST", `Cannot parse ${what}: no manifests`);
  m.manifests.forEach((d, i) => parseDescriptor(d, `entry ${i} of ${what}`));
  return m as unknown as ImageIndex;
}

/** The media type a manifest document declares inside itself, if any. */
export function declaredMediaType(bytes: Buffer): string | undefined {
  try {
    const m = JSON.parse(bytes.toString("utf8")) as unknown;
    if (!isObject(m)) return undefined;
    if (typeof m.mediaType === "string") return m.mediaType;
    if (Array.isArray(m.manifests)) return "application/vnd.oci.image.index.v1+json";
    return "application/vnd.oci.image.manifest.v1+json";
  } catch {
    return undefined;
  }
}
