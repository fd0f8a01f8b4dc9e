/**
 * The images of a {@link Store}: image records over the store's layers.
 * Listing, naming and removing work on the records; pull, push, load, save
 * and import load the image module's pipelines on first use, so a program
 * that only lists images or creates containers does not pay for the
 * registry client and archive formats.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { mkdtemp, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Readable, Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { decompress } from "../archive/compression.js";
import type {
  CommitOptions,
  CommitResult,
  ImageConfig,
  ImageInspect,
  LoadOptions,
  OciSaveOptions,
  PullOptions,
  PullResult,
  PushOptions,
  PushResult,
} from "../image/index.js";
import type { LayerSink } from "../image/import/layer-sink.js";
import { releaseImageLayers } from "../image/records/image-refs.js";
import type { ImageRecord, ImageStore, RemoveResult } from "../image/records/image-store.js";
import { familiarName, parseReference } from "../image/spec/reference.js";
import { type Digest, isDigest, type LayerStore } from "../layer/index.js";

/** An image as {@link Images.list} shows it (Docker's `GET /images/json`, in camelCase). */
export interface ImageSummary {
  /** The config digest, "sha256:…". */
  id: string;
  /** Names in their short form ("debian:12"). */
  repoTags: string[];
  /** "repository@sha256:…" for each registry manifest it came from or went to. */
  repoDigests: string[];
  /** The config's `created` time (ISO), when it has one. */
  created?: string;
  /** Bytes of all its layers' content (Docker's Size: the whole chain). */
  size: number;
  /** Bytes of its layers that another stored image also uses. */
  sharedSize: number;
  /** Containers created on it. */
  containers: number;
  /** Its layers' chainIDs, bottom first. */
  layers: string[];
}

/** One entry of {@link Images.history}, newest first (Docker's `GET /images/{name}/history`). */
export interface HistoryEntry {
  /** The image id for the image's own entry, "<missing>" for the entries below it. */
  id: string;
  created?: string;
  createdBy: string;
  /** Bytes of the layer this step made (0 for an empty-layer step). */
  size: number;
  comment: string;
  /** Names of the image, on its own entry. */
  tags: string[];
}

/** Where a byte-counting operation reports progress: bytes so far and the total when known. */
export type BytesProgress = (current: number, total: number | undefined) => void;

/** Options of {@link Images.save}. */
export interface SaveOptions {
  /** "docker" (docker-archive, what `docker save` writes) or "oci" (an OCI image layout). @default "docker" */
  format?: "docker" | "oci";
  /** OCI layer compression. @default "none" */
  compression?: OciSaveOptions["compression"];
  /** Bytes written so far against the layers' total. */
  progress?: BytesProgress;
}

/** Containers on a layer: how {@link Images} counts an image's containers. */
export type ContainerCounter = () => Promise<Map<string, number>>;

/**
 * The image operations of a store. Get it from `openStore(...).images`.
 * @example
 * const store = await openStore({ root: "/var/lib/strata" });
 * await store.images.pull("127.0.0.1:5000/debian:12");
 * for (const i of await store.images.list()) console.log(i.repoTags, i.size);
 */
export class Images {
  readonly #records: ImageStore;
  readonly #layers: LayerStore;
  readonly #sink: LayerSink;
  readonly #containersOn: ContainerCounter;

  /** @internal built by `openStore` */
  constructor(records: ImageStore, layers: LayerStore, sink: LayerSink, containersOn: ContainerCounter) {
    this.#records = records;
    this.#layers = layers;
    this.#sink = sink;
    this.#containersOn = containersOn;
  }

  /** The image-record store underneath. */
  get records(): ImageStore {
    return this.#records;
  }

  /** Every stored image with its sizes; sizes come from the layer store, so a shared layer counts in each image. */
  async list(): Promise<ImageSummary[]> {
    const records = await this.#records.list();
    const sizes = new Map<string, number>();
    const users = new Map<string, number>();
    for (const rec of records)
      for (const l of rec.layers) {
        users.set(l.chainID, (users.get(l.chainID) ?? 0) + 1);
        if (!sizes.has(l.chainID)) sizes.set(l.chainID, await this.#layerSize(l.chainID));
      }
    const containers = await this.#containersOn();
    const out: ImageSummary[] = [];
    for (const rec of records) {
      const cfg = await this.config(rec.id);
      const size = (l: { chainID: string }) => sizes.get(l.chainID) ?? 0;
      out.push({
        id: rec.id,
        repoTags: rec.repoTags.map(short),
        repoDigests: rec.repoDigests.map(short),
        ...(cfg.created ? { created: cfg.created } : {}),
        size: rec.layers.reduce((n, l) => n + size(l), 0),
        sharedSize: rec.layers.filter((l) => (users.get(l.chainID) ?? 0) > 1).reduce((n, l) => n + size(l), 0),
        containers: containers.get(rec.layers.at(-1)?.chainID ?? "") ?? 0,
        layers: rec.layers.map((l) => l.chainID),
      });
    }
    return out;
  }

  async #layerSize(chainID: string): Promise<number> {
    return isDigest(chainID) ? ((await this.#layers.db.readLayer(chainID))?.size ?? 0) : 0;
  }

  /**
   * Resolves a name ("debian:12"), a full id, an id prefix of 4 hex digits or more, or "repo@sha256:…".
   * @throws ERR_IMAGE_NOT_FOUND (NotFoundError); ERR_AMBIGUOUS_ID
   */
  resolve(ref: string): Promise<ImageRecord> {
    return this.#records.resolve(ref);
  }

  /** The image's parsed config. @throws ERR_IMAGE_NOT_FOUND */
  async config(ref: string): Promise<ImageConfig> {
    const rec = await this.resolve(ref);
    return JSON.parse((await this.#records.config(rec.id)).toString("utf8")) as ImageConfig;
  }

  /** What `strata inspect` prints for one image (Docker's `GET /images/{name}/json`). @throws ERR_IMAGE_NOT_FOUND */
  async inspect(ref: string): Promise<ImageInspect> {
    const { inspectImage } = await import("../image/records/inspect.js");
    return inspectImage(this.#records, ref, this.#layers);
  }

  /** The image's build steps, newest first, with the size of the layer each made. @throws ERR_IMAGE_NOT_FOUND */
  async history(ref: string): Promise<HistoryEntry[]> {
    const rec = await this.resolve(ref);
    const cfg = await this.config(rec.id);
    const steps: Array<Record<string, unknown>> =
      cfg.history && cfg.history.length > 0 ? cfg.history : rec.layers.map(() => ({}));
    const out: HistoryEntry[] = [];
    let layer = 0;
    for (const h of steps) {
      const empty = h.empty_layer === true;
      const l = empty ? undefined : rec.layers[layer++];
      out.push({
        id: "<missing>",
        ...(typeof h.created === "string" ? { created: h.created } : {}),
        createdBy: typeof h.created_by === "string" ? h.created_by : "",
        size: l ? await this.#layerSize(l.chainID) : 0,
        comment: typeof h.comment === "string" ? h.comment : "",
        tags: [],
      });
    }
    out.reverse();
    if (out[0]) Object.assign(out[0], { id: rec.id, tags: rec.repoTags.map(short) });
    return out;
  }

  /** Gives an image another name (moving the name from any image that had it). @throws ERR_IMAGE_NOT_FOUND */
  tag(source: string, target: string): Promise<void> {
    return this.#records.tag(source, target);
  }

  /**
   * Removes a name, or an image with all its names; `force` when it has
   * several and is named by id, or a container was created from it (the
   * container keeps its layers and its image's config). Layers no image
   * uses any more lose their image hold (and go, unless a container or
   * `layer apply` holds them).
   * @throws ERR_IMAGE_NOT_FOUND; ERR_IMAGE_IN_USE
   */
  async remove(ref: string, opts: { force?: boolean } = {}): Promise<RemoveResult> {
    const containers = await this.#layers.containers();
    const res = await this.#records.remove(ref, { ...(opts.force ? { force: true } : {}), containers });
    await releaseImageLayers(this.#layers, res.unusedChainIDs);
    return res;
  }

  /**
   * Pulls an image from a registry (Docker Registry HTTP API v2 / OCI distribution).
   * @returns the stored image and the manifest digest the reference resolved to (what `docker pull` prints)
   * @throws ERR_INVALID_REFERENCE, ERR_MANIFEST_NOT_FOUND, ERR_REGISTRY*, ERR_DIGEST_MISMATCH, ...
   */
  async pull(ref: string, opts: PullOptions = {}): Promise<PullResult> {
    const { pullImage } = await imageModule();
    return pullImage(ref, this.#sink, this.#records, opts);
  }

  /**
   * Pushes a stored image to `target` (default: its own name).
   * @returns the manifest digest and what happened to each layer
   */
  async push(image: string, target?: string, opts: PushOptions = {}): Promise<PushResult & { id: string }> {
    const { pushImage } = await imageModule();
    const rec = await this.resolve(image);
    const res = await pushImage(this.#records, this.#sink, image, target, opts);
    return { ...res, id: rec.id };
  }

  /**
   * Loads every image of a docker-archive or OCI layout: a path (tar file,
   * gzip/zstd/xz-compressed tar, or directory) or a stream of a (compressed)
   * tar, which the image module spools to the store's scratch space first.
   * @returns the stored records
   * @throws ERR_BAD_ARCHIVE, ERR_ARCHIVE_NOT_FOUND, ERR_ARCHIVE_TRUNCATED, ERR_DECOMPRESS, ERR_DIGEST_MISMATCH
   */
  async load(
    source: string | Readable,
    opts: LoadOptions & { spoolProgress?: BytesProgress } = {},
  ): Promise<ImageRecord[]> {
    const { loadImages } = await imageModule();
    const { spoolProgress, ...rest } = opts;
    const input = typeof source === "string" ? source : counted(source, spoolProgress);
    return loadImages(input, this.#sink, this.#records, rest);
  }

  /**
   * Imports a flat filesystem tar (a path or a stream, any compression) as a
   * one-layer image, as `docker import` does.
   * @returns the new image and its layer's chainID
   */
  async import(
    source: string | Readable,
    opts: CommitOptions & { spoolProgress?: BytesProgress } = {},
  ): Promise<CommitResult> {
    const { importImage } = await imageModule();
    const { spoolProgress, ...rest } = opts;
    const from = typeof source === "string" ? source : "-";
    const size = typeof source === "string" ? (await stat(source)).size : undefined;
    const raw = typeof source === "string" ? createReadStream(source, { highWaterMark: 1 << 20 }) : source;
    const { stream } = await decompress(counted(raw, spoolProgress, size));
    return importImage(this.#layers, this.#records, stream, { comment: `Imported from ${from}`, ...rest });
  }

  /**
   * Saves images as a docker-archive (a tar file) or an OCI layout (a
   * directory) at `out`, or streams the docker-archive into a writable. A
   * file appears whole or not at all.
   * @throws ERR_IMAGE_NOT_FOUND; ERR_INVALID_ARGUMENT for an OCI layout to a stream
   */
  async save(refs: string[], out: string | Writable, opts: SaveOptions = {}): Promise<void> {
    const { saveDockerArchive, saveOciLayout } = await imageModule();
    const records = await Promise.all(refs.map((r) => this.resolve(r)));
    const total = await this.#tarBytes(records);
    const format = opts.format ?? "docker";
    // Written in a private directory beside the output (or in the store's scratch space for a stream),
    // whose growth is the progress, then moved into place or streamed out.
    const dir =
      typeof out === "string"
        ? await mkdtemp(join(dirname(out), ".strata-save-"))
        : await this.#layers.db.scratchDir("save");
    const timer = opts.progress
      ? setInterval(() => void dirBytes(dir).then((n) => opts.progress?.(n, total)), 200)
      : undefined;
    try {
      const tmp = join(dir, "out");
      if (format === "docker") await saveDockerArchive(this.#records, this.#sink, refs, tmp);
      else await saveOciLayout(this.#records, this.#sink, refs, tmp, { compression: opts.compression ?? "none" });
      if (timer) clearInterval(timer);
      opts.progress?.(total, total);
      if (typeof out === "string") await rename(tmp, out);
      else await pipeline(createReadStream(tmp, { highWaterMark: 1 << 20 }), out, { end: false });
    } finally {
      if (timer) clearInterval(timer);
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** About how many bytes a save writes: the layer tars (as stored) of the distinct layers. */
  async #tarBytes(records: ImageRecord[]): Promise<number> {
    const seen = new Map<string, number>();
    for (const rec of records)
      for (const l of rec.layers)
        if (!seen.has(l.chainID)) seen.set(l.chainID, l.tarSize ?? (await this.#layerSize(l.chainID)));
    return [...seen.values()].reduce((a, b) => a + b, 0);
  }

  /** The top layer of an image name or id; undefined when no image matches or it has no layers. */
  async topLayer(ref: string): Promise<Digest | undefined> {
    return ((await this.#records.topLayer(ref)) || undefined) as Digest | undefined;
  }
}

/** The image module's operations, loaded on first use. */
function imageModule() {
  return import("../image/index.js");
}

/** "docker.io/library/debian:12" → "debian:12"; "…/x@sha256:…" likewise. */
function short(key: string): string {
  return familiarName(parseReference(key));
}

/** `input` passed through with its bytes counted into `progress` (the same stream when there is none). */
function counted(input: Readable, progress: BytesProgress | undefined, total?: number): Readable {
  if (!progress) return input;
  let seen = 0;
  const out = new Transform({
    transform(chunk: Buffer, _enc, done) {
      progress((seen += chunk.length), total);
      done(null, chunk);
    },
  });
  input.on("error", (err) => out.destroy(err));
  return input.pipe(out);
}

/** Bytes of the files under `dir` (for save progress). */
async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []))
    if (e.isFile()) n += (await stat(join(e.parentPath, e.name)).catch(() => ({ size: 0 }))).size;
  return n;
}
