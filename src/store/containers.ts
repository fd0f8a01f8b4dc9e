/**
 * The containers of a {@link Store}: read-write layers on an image (or a
 * layer), named by the caller and identified by their random id. strata
 * runs nothing: a container here is the filesystem a runtime would use —
 * create, mount, change, diff, commit, export, remove.
 *
 * @module
 */
import { createReadStream, createWriteStream } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Change, exportTree } from "../diff/index.js";
import { InvalidArgumentError, NotFoundError } from "../errors.js";
import type { CommitOptions, CommitResult } from "../image/index.js";
import type { ImageStore } from "../image/records/image-store.js";
import type { ContainerRecord, LayerStore } from "../layer/index.js";
import type { Layers } from "./layers.js";

/** A container as {@link Containers.list} shows it. */
export interface ContainerSummary {
  /** The container's id (its driver layer's id), 64 hex digits. */
  id: string;
  name: string;
  /** The chainID of the layer it was created on ("" for an empty container). */
  layer: string;
  created: string;
  /** Mount holds: `mount` calls not yet undone, and in-process users. */
  mounts: number;
}

/** Options of {@link Containers.create}. */
export interface CreateOptions {
  /** Add Docker's init layer (/etc/hosts, /etc/resolv.conf, ...). @default true */
  init?: boolean;
  /** Per-container driver options, e.g. `{ size: "10G" }` where the driver supports it. */
  storageOpt?: Record<string, string>;
}

/** Options of {@link Containers.commit}. */
export interface ContainerCommitOptions extends Omit<CommitOptions, "tar" | "hooks"> {
  /** Also write the change's layer tar here (the same bytes the new layer is made from). */
  output?: string;
}

/**
 * The container operations of a store. Get it from `openStore(...).containers`.
 * Every method taking `ref` accepts a name, a full id or a unique id prefix.
 * @example
 * const c = await store.containers.create("web", "debian:12");
 * const path = await store.containers.mount("web");
 * // ... change files under path ...
 * console.log(await store.containers.changes("web"));
 * await store.containers.commit("web", { tag: "web:v2" });
 */
export class Containers {
  readonly #store: LayerStore;
  readonly #layers: Layers;
  readonly #records: ImageStore;

  /** @internal built by `openStore` */
  constructor(store: LayerStore, layers: Layers, records: ImageStore) {
    this.#store = store;
    this.#layers = layers;
    this.#records = records;
  }

  /**
   * Creates a container on an image or layer (see `Layers.resolve`); none: an
   * empty one. Created from an image, it remembers the image and its config
   * (for a later {@link commit}, even when the image is removed meanwhile).
   * @throws ERR_INVALID_NAME, ERR_CONTAINER_EXISTS, ERR_LAYER_NOT_FOUND
   */
  async create(name: string, image?: string, opts: CreateOptions = {}): Promise<ContainerRecord> {
    const parent = image ? await this.#layers.resolve(image) : "";
    const rec = await this.#store.createRWLayer(name, parent, {
      ...(opts.init !== undefined ? { init: opts.init } : {}),
      storageOpt: opts.storageOpt ?? {},
    });
    if (image) await this.#records.bindContainer(rec, image);
    return rec;
  }

  /** Every container, oldest first. */
  async list(): Promise<ContainerSummary[]> {
    const out: ContainerSummary[] = [];
    for (const c of await this.#store.containers())
      out.push({
        id: c.mountID,
        name: c.name,
        layer: c.parent,
        created: c.created,
        mounts: await this.#store.mounts.count(c.mountID),
      });
    return out.sort((a, b) => a.created.localeCompare(b.created));
  }

  /**
   * Finds a container by name, full id, or unique id prefix (in that order, as Docker does).
   * @throws ERR_CONTAINER_NOT_FOUND (NotFoundError); ERR_AMBIGUOUS for a prefix of several ids
   */
  async get(ref: string): Promise<ContainerRecord> {
    const all = await this.#store.containers();
    const hit = all.find((c) => c.name === ref) ?? all.find((c) => c.mountID === ref);
    if (hit) return hit;
    const byPrefix = /^[a-f0-9]+$/.test(ref) ? all.filter((c) => c.mountID.startsWith(ref)) : [];
    if (byPrefix.length === 1) return byPrefix[0]!;
    if (byPrefix.length > 1)
      throw new InvalidArgumentError("ERR_AMBIGUOUS", `Cannot find container: ambiguous id prefix "${ref}"`);
    throw new NotFoundError("ERR_CONTAINER_NOT_FOUND", `Cannot find container: no container "${ref}"`);
  }

  /** Mounts the container's tree with a hold that lasts until {@link unmount}; returns its path. */
  async mount(ref: string): Promise<string> {
    return this.#store.mount((await this.get(ref)).name);
  }

  /** Releases one {@link mount}. */
  async unmount(ref: string): Promise<void> {
    await this.#store.unmount((await this.get(ref)).name);
  }

  /**
   * Removes a container (its layer and init layer); its image layer stays while anything else holds it.
   * @throws ERR_ACTIVE_MOUNT while mounted, unless `force` (which unmounts first)
   */
  async remove(ref: string, opts: { force?: boolean } = {}): Promise<void> {
    const { name } = await this.get(ref);
    await this.#store.releaseRWLayer(name, opts);
    await this.#records.containers.forget(name);
  }

  /** What the container changed, as `docker diff` lists it (init files never show). */
  async changes(ref: string): Promise<Change[]> {
    return this.#store.changes((await this.get(ref)).name);
  }

  /** Bytes the container added or changed. */
  async size(ref: string): Promise<number> {
    return this.#store.diffSize((await this.get(ref)).name);
  }

  /** The container's change as a layer tar (AUFS whiteouts). The caller consumes or destroys the stream. */
  async diff(ref: string): Promise<Readable> {
    return this.#store.diffTar((await this.get(ref)).name);
  }

  /**
   * Turns the container's change into a new layer on its image's chain and
   * stores an image of it (tagged `opts.tag`, else untagged), with the
   * config of the image it was created from, `changes` applied and a
   * history entry added.
   * @returns the image and the new layer's chainID
   * @throws ERR_INVALID_CHANGE for a bad `changes` entry (nothing is stored)
   */
  async commit(ref: string, opts: ContainerCommitOptions = {}): Promise<CommitResult> {
    const { commitContainer } = await import("../image/import/commit.js");
    const { applyChanges } = await import("../image/spec/config-changes.js");
    const { output, ...commit } = opts;
    const rec = await this.get(ref);
    if (!output) return commitContainer(this.#store, this.#records, rec.name, commit);
    applyChanges({}, commit.changes ?? []); // a bad -c fails before the -o file is written
    // Written once and registered from the file, so the layer and the -o file are the same bytes.
    await pipeline(await this.#store.diffTar(rec.name), createWriteStream(output));
    const tar = createReadStream(output, { highWaterMark: 1 << 20 });
    return commitContainer(this.#store, this.#records, rec.name, { ...commit, tar });
  }

  /**
   * Writes the container's whole filesystem as a flat tar into `out`
   * (`docker export`), with the tree mounted while it is read.
   */
  async export(ref: string, out: Writable): Promise<void> {
    const rec = await this.get(ref);
    const path = await this.#store.mounts.acquire(rec.mountID);
    try {
      await pipeline(exportTree(path), out);
    } finally {
      await this.#store.mounts.release(rec.mountID);
    }
  }
}
