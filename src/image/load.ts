/**
 * `strata load`: imports every image of a docker-archive or an OCI layout
 * (a tar file or a directory) through the layer pipeline, then records the
 * images and their tags. Records are written only after every layer of
 * every image is in; each image's layers move to the image hold once its
 * record is written; on failure the layers of the images not recorded are
 * released.
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.js";
import { type ArchiveImage, isDockerArchive, readDockerArchive } from "./docker-archive.js";
import type { ImageRecord, ImageStore } from "./image-store.js";
import type { LayerSink } from "./layer-sink.js";
import { isOciLayout, readOciLayout } from "./oci-layout.js";
import { type ImportOptions, type ImportResult, importLayers } from "./pipeline.js";
import { openSource } from "./source.js";
import { testPause } from "./test-hooks.js";
import type { Platform } from "./types.js";

/** Options of {@link loadImages}. */
export interface LoadOptions extends ImportOptions {
  /** An extra tag for the image (only when the archive holds one image). */
  tag?: string;
  /** For OCI indexes: the platform to take. @default the host */
  platform?: Platform;
  /** For OCI layouts: load only the image whose ref.name is this (`DIR:TAG`). */
  refName?: string;
}

/**
 * Reads the images of an archive or layout without importing them.
 * @throws ERR_BAD_ARCHIVE when `path` is neither format; ERR_ARCHIVE_TRUNCATED
 */
export async function readArchive(path: string, platform?: Platform, refName?: string): Promise<ArchiveImage[]> {
  const src = await openSource(path);
  if (await isDockerArchive(src)) return readDockerArchive(src);
  if (await isOciLayout(src)) return readOciLayout(src, platform, refName);
  throw new InvalidArgumentError(
    "ERR_BAD_ARCHIVE",
    `Cannot load: neither a docker-archive (manifest.json) nor an OCI layout (oci-layout, index.json) "${path}"`,
  );
}

/**
 * Loads every image of `path` into `sink` and `store`.
 * @returns the stored records
 * @example
 * const recs = await loadImages("debian.tar", sink, store, { concurrency: 4 });
 */
export async function loadImages(
  path: string,
  sink: LayerSink,
  store: ImageStore,
  opts: LoadOptions = {},
): Promise<ImageRecord[]> {
  const images = await readArchive(path, opts.platform, opts.refName);
  if (opts.tag && images.length !== 1) {
    throw new InvalidArgumentError(
      "ERR_INVALID_ARGUMENT",
      `Cannot tag the load: the archive holds ${images.length} images`,
    );
  }
  const done: Array<{ image: ArchiveImage; result: ImportResult }> = [];
  let recorded = 0;
  try {
    for (const image of images) done.push({ image, result: await importLayers(sink, image.layers, opts) });
    await testPause("AFTER_LAYERS");
    const out: ImageRecord[] = [];
    for (const { image, result } of done) {
      out.push(await store.put(image.config, result.layers, [...image.tags, ...(opts.tag ? [opts.tag] : [])]));
      // From here the record uses the layers: never release them, even if the next step fails.
      recorded++;
      await imageRecorded(
        sink,
        result.layers.map((l) => l.chainID),
      );
    }
    return out;
  } catch (err) {
    await releaseAll(
      sink,
      done.slice(recorded).map((d) => d.result),
    );
    throw err;
  }
}

/** Releases, newest first, the layers that imports hold (when the sink can release). */
export async function releaseAll(sink: LayerSink, results: ImportResult[]): Promise<void> {
  if (!sink.release) return;
  for (const r of [...results].reverse()) for (const c of [...r.held].reverse()) await sink.release(c).catch(() => {});
}

/**
 * Tells the sink that the image record using `chainIDs` (its whole chain) is
 * durably written, so its layers move from the import's hold to the image hold.
 */
export async function imageRecorded(sink: LayerSink, chainIDs: string[]): Promise<void> {
  await testPause("AFTER_RECORD");
  await sink.imageRecorded?.(chainIDs);
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
