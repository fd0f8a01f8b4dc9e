/**
 * `strata load`: imports every image of a docker-archive or an OCI layout
 * through the layer pipeline, then records the images and their tags, one
 * import transaction per image. Records are written only after every layer
 * of every image is in; on failure the layers of the images not recorded
 * are released.
 *
 * What is loaded: a tar file, a directory (an unpacked archive or layout),
 * or a stream (stdin). A tar file or stream may be compressed (gzip, zstd,
 * bzip2, xz, as `docker load` takes): a compressed file or any stream is
 * decompressed once into a spool file in the store's scratch space, which
 * the tar index then reads at random (the members of a docker-archive are
 * in no useful order: manifest.json comes last).
 *
 * @module
 */
import { createWriteStream } from "node:fs";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decompress, detectCompression } from "../../archive/compression.js";
import { InvalidArgumentError } from "../../errors.js";
import { type LayerSink, spoolDirFor } from "../import/layer-sink.js";
import { type ImportOptions, importLayers } from "../import/pipeline.js";
import { type ImportHooks, ImportTransaction } from "../import/transaction.js";
import type { ImageLayer, ImageRecord, ImageStore } from "../records/image-store.js";
import type { Platform } from "../spec/types.js";
import { type ArchiveImage, isDockerArchive, readDockerArchive } from "./docker-archive.js";
import { isOciLayout, readOciLayout } from "./oci-layout.js";
import { type FileSource, openSource, tarSource } from "./source.js";

/** Options of {@link loadImages}. */
export interface LoadOptions extends ImportOptions {
  /** An extra tag for the image (only when the archive holds one image). */
  tag?: string;
  /** For OCI indexes: the platform to take. @default the host */
  platform?: Platform;
  /** For OCI layouts: load only the image whose ref.name is this (`DIR:TAG`). */
  refName?: string;
  /** Awaited between the steps of each image's import transaction (crash tests). */
  hooks?: ImportHooks;
}

/**
 * Reads the images of an archive or layout without importing them.
 * @throws ERR_BAD_ARCHIVE when `src` is neither format; the format's own errors
 */
export async function readArchive(src: FileSource, platform?: Platform, refName?: string): Promise<ArchiveImage[]> {
  if (await isDockerArchive(src)) return readDockerArchive(src);
  if (await isOciLayout(src)) return readOciLayout(src, platform, refName);
  throw new InvalidArgumentError(
    "ERR_BAD_ARCHIVE",
    `Cannot load: neither a docker-archive (manifest.json) nor an OCI layout (oci-layout, index.json) "${src.path}"`,
  );
}

/** The compression of a file, from its first bytes. */
async function fileCompression(path: string) {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(10);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return detectCompression(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/**
 * Opens what `load` reads (see the module doc) as a {@link FileSource};
 * `spool` gives the directory a compressed file or a stream is decompressed
 * into (removed by the source's `close`).
 */
export async function openArchive(input: string | Readable, spool: () => Promise<string>): Promise<FileSource> {
  const shown = typeof input === "string" ? input : "-";
  // A directory, a missing path, an unreadable one: openSource says what it is.
  if (typeof input === "string" && (await fileCompression(input).catch(() => "none")) === "none") {
    return openSource(input);
  }
  const dir = await spool();
  try {
    const file = join(dir, "archive.tar");
    const { stream } = await decompress(typeof input === "string" ? (await open(input)).createReadStream() : input);
    await pipeline(stream, createWriteStream(file));
    const src = await tarSource(file, shown);
    return { ...src, close: () => rm(dir, { recursive: true, force: true }) };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Loads every image of `input` (a path or a stream, see the module doc)
 * into `sink` and `store`.
 * @returns the stored records
 * @throws ERR_ARCHIVE_NOT_FOUND, ERR_BAD_ARCHIVE, ERR_ARCHIVE_TRUNCATED, ERR_DIGEST_MISMATCH, …
 * @example
 * const recs = await loadImages("debian.tar.gz", sink, images, { concurrency: 4 });
 * const fromStdin = await loadImages(process.stdin, sink, images);
 */
export async function loadImages(
  input: string | Readable,
  sink: LayerSink,
  store: ImageStore,
  opts: LoadOptions = {},
): Promise<ImageRecord[]> {
  const src = await openArchive(input, () => spoolDirFor(sink, "load", opts.spoolDir));
  try {
    const images = await readArchive(src, opts.platform, opts.refName);
    if (opts.tag && images.length !== 1) {
      throw new InvalidArgumentError(
        "ERR_INVALID_ARGUMENT",
        `Cannot tag the load: the archive holds ${images.length} images`,
      );
    }
    const imports: Array<{ image: ArchiveImage; tx: ImportTransaction; layers?: ImageLayer[] }> = images.map(
      (image) => ({ image, tx: new ImportTransaction(sink, opts.hooks) }),
    );
    try {
      for (const i of imports) i.layers = await importLayers(i.tx, i.image.layers, opts);
      const out: ImageRecord[] = [];
      for (const { image, tx, layers } of imports) {
        const tags = [...image.tags, ...(opts.tag ? [opts.tag] : [])];
        out.push(await tx.record(store, { config: image.config, layers: layers!, tags }));
      }
      return out;
    } catch (err) {
      // Newest first; an image already recorded keeps its layers.
      for (const { tx } of [...imports].reverse()) await tx.release();
      throw err;
    }
  } finally {
    await src.close();
  }
}

/**
 * Splits the CLI's `FILE|DIR[:TAG]`: when the whole argument exists it is the
 * path; otherwise the part after the last ":" is the tag (an OCI ref.name).
 */
export async function parseLoadArg(arg: string): Promise<{ path: string; tag?: string }> {
  const { stat } = await import("node:fs/promises");
  const exists = (p: string) =>
    stat(p).then(
      () => true,
      () => false,
    );
  if (await exists(arg)) return { path: arg };
  const i = arg.lastIndexOf(":");
  if (i > 0 && (await exists(arg.slice(0, i)))) return { path: arg.slice(0, i), tag: arg.slice(i + 1) };
  return { path: arg };
}
