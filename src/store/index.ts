/**
 * A strata store as one object: the driver, the layer store and the image
 * records under one root, seen through three views — {@link Images},
 * {@link Layers} and {@link Containers} — plus the whole-store checks. The
 * `strata` command and library users open it the same way, with
 * {@link openStore}.
 *
 * @module
 */
import { builtinDrivers } from "../drivers/index.js";
import type { Driver } from "../graphdriver/driver.js";
import { layerStoreSink } from "../image/import/layer-store-sink.js";
import { ImageStore, imageDir } from "../image/records/image-store.js";
import { LayerStore } from "../layer/index.js";
import { Containers } from "./containers.js";
import { Images } from "./images.js";
import { Layers } from "./layers.js";

/** Where strata keeps its data unless told otherwise (Docker's is /var/lib/docker). */
export const DEFAULT_ROOT = "/var/lib/strata";

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** The store's directory. @default "/var/lib/strata" */
  root?: string;
  /**
   * The storage driver: "overlay", "devmapper" or "vfs". None: the one whose
   * data is already under `root`, else the first that works here (overlay,
   * then vfs), as Docker chooses.
   */
  driver?: string;
  /**
   * Driver options (Docker's `--storage-opt`), keys with the driver's prefix:
   * `overlay.size`, `dm.basesize`, ... A key the driver does not know is an error.
   */
  options?: Record<string, string>;
}

/** One problem {@link Store.check} found (layer store or image references). */
export interface StoreProblem {
  kind: string;
  subject: string;
  detail: string;
  /** With `repair`: why this one could not be fixed (it is still there). */
  unrepaired?: string;
}

/**
 * An open store. Every process (or program) opens its own; they share the
 * directory safely (file locks). Call {@link close} when done: it keeps
 * the mounts `containers.mount` made, as the `strata mount` command does.
 */
export class Store {
  /** The store's directory. */
  readonly root: string;
  /** The storage driver in use. */
  readonly driver: Driver;
  /** The layer store underneath (chainIDs, references, containers' layers), for what the views do not cover. */
  readonly layerStore: LayerStore;
  /** Images: pull, push, load, save, import, list, inspect, history, tag, remove. */
  readonly images: Images;
  /** Layers applied by hand: apply, list, export, remove. */
  readonly layers: Layers;
  /** Containers: create, mount, diff, commit, export, remove. */
  readonly containers: Containers;
  readonly #records: ImageStore;

  /** @internal use {@link openStore} */
  constructor(root: string, driver: Driver, layerStore: LayerStore, records: ImageStore) {
    this.root = root;
    this.driver = driver;
    this.layerStore = layerStore;
    this.#records = records;
    const sink = layerStoreSink(layerStore);
    this.images = new Images(records, layerStore, sink, () => this.#containersPerLayer());
    this.layers = new Layers(layerStore, (ref) => this.images.topLayer(ref));
    this.containers = new Containers(layerStore, this.layers, records);
  }

  async #containersPerLayer(): Promise<Map<string, number>> {
    const n = new Map<string, number>();
    for (const c of await this.layerStore.containers()) if (c.parent) n.set(c.parent, (n.get(c.parent) ?? 0) + 1);
    return n;
  }

  /**
   * Verifies the store: reference counts, orphans, driver layers, mounts
   * (the layer store's check) and the layers' image references against the
   * image records. With `repair`, fixes what it finds.
   * @returns what was found (and, with `repair`, fixed)
   */
  async check(repair = false): Promise<StoreProblem[]> {
    const { checkImageRefs } = await import("../image/records/ref-check.js");
    const problems: StoreProblem[] = await this.layerStore.check(repair);
    return [...problems, ...(await checkImageRefs(this.layerStore, this.#records, repair)).problems];
  }

  /**
   * Removes layers nothing references, after dropping the references of
   * imports whose process died and "image" references no image uses.
   * @returns the chainIDs deleted
   */
  async prune(): Promise<string[]> {
    const { checkImageRefs } = await import("../image/records/ref-check.js");
    const { deleted } = await checkImageRefs(this.layerStore, this.#records, true);
    return [...deleted, ...(await this.layerStore.prune())];
  }

  /** Closes the store: image records, layer store, driver connections. Mounts stay. */
  async close(): Promise<void> {
    try {
      await this.#records.close();
      await this.layerStore.close();
    } finally {
      await this.driver.close(); // not cleanup(): mounts held by `mount` must outlive the process
    }
  }
}

/**
 * Opens (creating if needed) the store under `root` with the chosen driver.
 * Needs root privileges, as Docker does (mounts, device nodes, ownership).
 * @throws ERR_DRIVER_UNKNOWN, ERR_INVALID_OPTION (an option the driver does
 *   not take), ERR_DRIVER_AMBIGUOUS (several drivers' data under root),
 *   ERR_NO_DRIVER, ERR_NOT_SUPPORTED
 * @example
 * import { openStore } from "strata";
 * const store = await openStore({ root: "/var/lib/strata", driver: "overlay" });
 * try {
 *   await store.images.load("debian.tar");
 *   await store.containers.create("web", "debian:12");
 *   console.log(await store.containers.mount("web"));
 * } finally {
 *   await store.close();
 * }
 */
export async function openStore(opts: OpenStoreOptions = {}): Promise<Store> {
  const root = opts.root ?? DEFAULT_ROOT;
  const driver = await builtinDrivers().select(opts.driver, { root, options: opts.options ?? {} });
  let layers: LayerStore | undefined;
  try {
    layers = await LayerStore.open(root, driver);
    // Image records live beside the layers of the driver they were stored with.
    const records = await ImageStore.open(imageDir(root, driver.name));
    return new Store(root, driver, layers, records);
  } catch (err) {
    await layers?.close().catch(() => {});
    await driver.close();
    throw err;
  }
}

export { Containers, type ContainerCommitOptions, type ContainerSummary, type CreateOptions } from "./containers.js";
export { type BytesProgress, type HistoryEntry, type ImageSummary, Images, type SaveOptions } from "./images.js";
export { type LayerSummary, Layers, USER_REF } from "./layers.js";
