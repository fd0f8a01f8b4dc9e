/**
 * LayerStore: read-only image layers identified by chainID, read-write
 * container layers identified by name (`containers.ts`), and every mount
 * count (through {@link Mounts}) — on top of one graphdriver. README.md in
 * this folder is the theory of operation.
 *
 * References (Docker's rules, persisted so they hold across processes): a
 * layer is held by each child layer, by each container on it, by each named
 * ref ("image", an import in progress, `strata layer apply`; see
 * {@link LayerStore.withRefs} for changing them under the lock), and by
 * in-process handles from `get`/`register`. When the last goes, the layer is
 * deleted and the walk continues with its parent (`collector.ts`). A layer or
 * container that is mounted is never deleted (ERR_ACTIVE_MOUNT).
 *
 * Concurrency: metadata changes run under the store's file lock; applying a
 * tar runs outside it, announced by an intent record so that a crash mid-way
 * is cleaned up by the next process that opens the store.
 *
 * @example
 * const store = await LayerStore.open("/var/lib/strata", driver);
 * const base = await store.register(fs.createReadStream("layer.tar"), "", { ref: "user" });
 * await store.createRWLayer("web", base.chainID);
 * console.log(await store.changes("web"));
 * await store.close();
 *
 * @module
 */
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { TarSplitRecorder } from "../archive/tar-split.js";
import { DigestMismatchError, FailedPreconditionError, NotFoundError } from "../errors.js";
import type { Change } from "../diff/index.js";
import type { Driver } from "../graphdriver/driver.js";
import { currentProcess } from "../util/process.js";
import type { StoreDir } from "../util/store-dir.js";
import { openStoreRoot } from "../util/store-root.js";
import { type CheckProblem, check as checkParts, prune as pruneParts } from "./check.js";
import { Collector } from "./collector.js";
import { Containers, type CreateRWOptions } from "./containers.js";
import { type Applied, Differ } from "./differ.js";
import { chainID as makeChainID, type Digest, randomID } from "./ids.js";
import { setupInitLayer, sharedInitID } from "./init-layer.js";
import { type ContainerRecord, LayerDB, type LayerRecord } from "./layerdb.js";
import { StoreLock } from "./lock.js";
import { Mounts } from "./mounts.js";
import { assertOwner, STRATA_OWNER } from "./owner.js";
import { pristineTar } from "./pristine.js";
import { recover, type RecoveryReport, type StoreParts } from "./recovery.js";
import { type RefEditor, refEditor } from "./refs.js";

export type { CreateRWOptions } from "./containers.js";

/** Docker's limit: room is left for `-init` and the container layer within overlay's 128 lowers. */
export const MAX_LAYER_DEPTH = 125;

/** A stored layer and how many layers its chain has. */
export interface LayerInfo extends LayerRecord {
  depth: number;
}

/** A layer store over one driver (see the module doc). */
export class LayerStore {
  readonly driver: Driver;
  readonly db: LayerDB;
  /** Every mount count of this store's driver: the only caller of `driver.get`/`put`. */
  readonly mounts: Mounts;
  /** Applies tars and compares layers, mounting through {@link mounts}. */
  readonly differ: Differ;
  readonly #holds: StoreDir;
  readonly #lock: StoreLock;
  readonly #collector: Collector;
  readonly #parts: StoreParts;
  readonly #containers: Containers;
  #recovery: RecoveryReport | undefined;

  private constructor(driver: Driver, db: LayerDB, holds: StoreDir) {
    this.driver = driver;
    this.db = db;
    this.#holds = holds;
    this.mounts = new Mounts(driver, holds);
    this.differ = new Differ(driver, this.mounts);
    this.#lock = new StoreLock(db.files, "lock");
    this.#collector = new Collector(db, driver, this.mounts);
    this.#parts = { db, driver, mounts: this.mounts, collector: this.#collector };
    this.#containers = new Containers(this.#parts, this.#lock, this.differ);
  }

  /**
   * Opens (creating if needed) the store of `driver` under `root`, and
   * finishes or rolls back whatever a crashed process left half done.
   * @param opts.owner who the store's layers belong to (see `owner.ts`):
   *   strata's own layer store by default; an engine served by `strata serve`
   *   claims an empty store with its own name
   * @throws ERR_STORE_ROOT for a root that is empty, not owned by root or
   *   writable by others; ERR_STORE_SYMLINK when the store's own directories
   *   are symlinks; ERR_STORE_OWNED when the store belongs to another owner
   */
  static async open(root: string, driver: Driver, opts: { owner?: string } = {}): Promise<LayerStore> {
    const rootDir = await openStoreRoot(root);
    let db: LayerDB | undefined;
    let holds: StoreDir | undefined;
    try {
      db = await LayerDB.open(rootDir, driver.name);
      holds = await db.files.sub("holds");
      const store = new LayerStore(driver, db, holds);
      store.#recovery = await store.#lock.with(async () => {
        // Before recovery: a store of another owner is not this process's to repair.
        await assertOwner(store.db.files, opts.owner ?? STRATA_OWNER, () => store.#isEmpty());
        return recover(store.#parts);
      });
      return store;
    } catch (err) {
      await holds?.close();
      await db?.close();
      throw err;
    } finally {
      await rootDir.close();
    }
  }

  /**
   * No layer, container or operation in flight of strata's own. Driver
   * layers without records may be there: they are another owner's (an
   * engine served on the same root), not strata's.
   */
  async #isEmpty(): Promise<boolean> {
    const [layers, containers, intents] = await Promise.all([
      this.db.listLayers(),
      this.db.listContainers(),
      this.db.listIntents(),
    ]);
    return layers.length === 0 && containers.length === 0 && intents.length === 0;
  }

  /** What {@link open} rolled back, finished, or had to leave for `check`. */
  get recovery(): RecoveryReport {
    return this.#recovery!;
  }

  /** Closes what this process holds open (mounts stay). */
  async close(): Promise<void> {
    await this.mounts.close();
    await this.#lock.close();
    await this.#holds.close();
    await this.db.close();
  }

  // ---- read-only layers ----

  /** @throws ERR_LAYER_NOT_FOUND */
  async layer(chainID: Digest): Promise<LayerInfo> {
    const rec = await this.db.readLayer(chainID);
    if (!rec) throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot find layer: no layer "${chainID}"`);
    let depth = 1;
    for (let p = await this.#parentOf(rec); p; p = await this.#parentOf(p)) depth++;
    return { ...rec, depth };
  }

  async #parentOf(rec: LayerRecord): Promise<LayerRecord | null> {
    return rec.parent ? this.db.readLayer(rec.parent) : null;
  }

  /** Every stored layer. */
  async layers(): Promise<LayerInfo[]> {
    const recs = await this.db.listLayers();
    const byId = new Map(recs.map((r) => [r.chainID, r]));
    const depth = (r: LayerRecord): number => (r.parent && byId.has(r.parent) ? depth(byId.get(r.parent)!) + 1 : 1);
    return recs.map((r) => ({ ...r, depth: depth(r) }));
  }

  /** Takes an in-process handle on a layer (released with {@link release}). */
  async get(chainID: Digest): Promise<LayerInfo> {
    const info = await this.layer(chainID);
    this.#collector.takeHandle(chainID);
    return info;
  }

  /**
   * Drops a handle; the layer is deleted when nothing references it any more.
   * @throws ERR_LAYER_NOT_RETAINED when this process holds no handle on it
   */
  async release(chainID: Digest): Promise<Digest[]> {
    if (!this.#collector.dropHandle(chainID))
      throw new FailedPreconditionError("ERR_LAYER_NOT_RETAINED", `Cannot release layer: not retained "${chainID}"`);
    return this.#lock.with(() => this.#collector.deleteUnreferenced(chainID));
  }

  /** Adds a named reference (an image name, "user" for `layer apply`). */
  async addRef(chainID: Digest, name: string): Promise<void> {
    await this.#lock.with(async () => {
      await this.layer(chainID);
      await this.db.addRef(chainID, name);
    });
  }

  /** Removes a named reference and deletes what is no longer referenced. */
  async removeRef(chainID: Digest, name: string): Promise<Digest[]> {
    return this.#lock.with(async () => {
      if (!(await this.db.removeRef(chainID, name))) {
        throw new NotFoundError("ERR_REF_NOT_FOUND", `Cannot remove reference: "${name}" does not hold "${chainID}"`);
      }
      return this.#collector.deleteUnreferenced(chainID);
    });
  }

  /** Why a layer is kept: named refs, children, containers, handles. Empty when unreferenced. */
  referencesOf(chainID: Digest): Promise<string[]> {
    return this.#collector.referencesOf(chainID);
  }

  /**
   * Runs `fn` under the store lock with a {@link RefEditor}: named
   * references read and changed as one critical section. `fn` must not call
   * methods of the store that take the lock themselves (it does not nest).
   * @example
   * await store.withRefs(async (refs) => {
   *   for (const l of await refs.list()) if (l.refs.includes("old")) await refs.remove(l.chainID, "old");
   * });
   */
  withRefs<T>(fn: (refs: RefEditor) => Promise<T>): Promise<T> {
    return this.#lock.with(() => fn(refEditor(this.db, this.#collector)));
  }

  /**
   * Applies an uncompressed layer tar on `parent` ("" for none) and stores it.
   * The stream is hashed as it is applied (diffID). If a layer with the same
   * chainID exists already, the new copy is discarded and the existing one
   * returned. With `opts.diffID` the tar must hash to it (checked in the
   * same pass, before anything is committed).
   *
   * The new layer is held by the named reference `opts.ref` when given;
   * otherwise by an in-process handle (see {@link release}), as Docker's
   * Register returns a reference.
   * @returns the layer and the tar's byte count
   * @throws ERR_LAYER_NOT_FOUND for a missing parent, ERR_MAX_DEPTH beyond 125 layers,
   *   ERR_BREAKOUT / ERR_TAR_FORMAT for bad tars, ERR_DIGEST_MISMATCH when the
   *   tar is not `opts.diffID` (nothing is stored then)
   */
  async register(
    tar: Readable,
    parent: Digest | "",
    opts: { ref?: string; diffID?: Digest } = {},
  ): Promise<LayerInfo & { tarSize: number }> {
    const me = await currentProcess();
    const cacheID = randomID();
    let parentCache = "";
    await this.#lock.with(async () => {
      if (parent) {
        const p = await this.layer(parent);
        if (p.depth >= MAX_LAYER_DEPTH) {
          throw new FailedPreconditionError(
            "ERR_MAX_DEPTH",
            `Cannot register layer: max depth exceeded (${MAX_LAYER_DEPTH} layers) on "${parent}"`,
          );
        }
        parentCache = p.cacheID;
      }
      const driverIDs = this.driver.capabilities.sharedInit ? [cacheID, sharedInitID(cacheID)] : [cacheID];
      await this.db.writeIntent(cacheID, { kind: "register", driverIDs, owner: me });
    });
    let committed = false;
    let scratch: string | undefined;
    try {
      await this.driver.create(cacheID, parentCache);
      // The index goes to a file as it is made: its size does not count against memory.
      scratch = await this.db.scratchDir("tar-split");
      const tarSplit = join(scratch, "tar-split.gz");
      const recorder = new TarSplitRecorder(createWriteStream(tarSplit));
      let applied: Applied;
      try {
        applied = await this.differ.applyDiff(cacheID, parentCache, tar, { recorder });
        await recorder.finish();
      } catch (err) {
        recorder.abort();
        throw err;
      }
      if (this.driver.capabilities.sharedInit) await this.#makeSharedInit(cacheID);
      if (opts.diffID && applied.diffID !== opts.diffID) {
        throw new DigestMismatchError(
          `Cannot register layer: digest mismatch, want "${opts.diffID}" got "${applied.diffID}"`,
        );
      }
      const chainID = makeChainID(parent, applied.diffID);
      return await this.#lock.with(async () => {
        const existing = await this.db.readLayer(chainID);
        if (existing) {
          await this.#collector.removeDriverLayer(cacheID);
        } else {
          if (parent && !(await this.db.readLayer(parent))) {
            throw new NotFoundError(
              "ERR_LAYER_NOT_FOUND",
              `Cannot register layer: parent was removed meanwhile "${parent}"`,
            );
          }
          const { size, diffID } = applied;
          await this.db.writeLayer({ chainID, diffID, size, cacheID, parent }, tarSplit);
        }
        if (opts.ref) await this.db.addRef(chainID, opts.ref);
        else this.#collector.takeHandle(chainID);
        committed = true;
        await this.db.deleteIntent(cacheID);
        return { ...(await this.layer(chainID)), tarSize: applied.tarSize };
      });
    } finally {
      if (scratch) await rm(scratch, { recursive: true, force: true });
      if (!committed) {
        await this.#collector.removeDriverLayer(cacheID).catch(() => undefined);
        await this.db.deleteIntent(cacheID);
      }
    }
  }

  /**
   * devmapper: one init layer per image layer, shared by its containers, so a
   * container is one snapshot, and the image layer stays exactly the tar's tree.
   */
  async #makeSharedInit(cacheID: string): Promise<void> {
    const initID = sharedInitID(cacheID);
    await this.driver.create(initID, cacheID);
    const path = await this.mounts.acquire(initID);
    try {
      await setupInitLayer(path);
    } finally {
      await this.mounts.release(initID);
    }
  }

  /**
   * The layer's exact original tar, re-assembled from its pristine index and
   * verified against its diffID at the end. The layer stays mounted until the
   * stream is read to its end or destroyed.
   * @throws ERR_NO_PRISTINE when the layer was stored without an index
   */
  async tarStream(chainID: Digest): Promise<Readable> {
    return pristineTar(this.#parts, await this.layer(chainID));
  }

  // ---- read-write layers (containers) ----

  /** @throws ERR_CONTAINER_NOT_FOUND */
  container(name: string): Promise<ContainerRecord> {
    return this.#containers.get(name);
  }

  /** Every container that is ready (not being created or removed). */
  containers(): Promise<ContainerRecord[]> {
    return this.#containers.list();
  }

  /**
   * Creates a container layer `name` on image layer `parent` ("" for an empty one),
   * with the init layer unless `init: false`.
   * @throws ERR_CONTAINER_EXISTS, ERR_LAYER_NOT_FOUND, ERR_INVALID_NAME
   */
  createRWLayer(name: string, parent: Digest | "", opts: CreateRWOptions = {}): Promise<ContainerRecord> {
    return this.#containers.create(name, parent, opts);
  }

  /**
   * Removes a container layer (and its init layer), then releases its
   * parent. Releasing a container that is not there is a no-op (Docker).
   * @returns the chainIDs of layers deleted because nothing references them any more
   * @throws ERR_ACTIVE_MOUNT while mounted, unless `force` (which unmounts first)
   */
  releaseRWLayer(name: string, opts: { force?: boolean } = {}): Promise<Digest[]> {
    return this.#containers.release(name, opts);
  }

  /** Mounts a container's tree with a named hold; returns the path. */
  async mount(name: string, holder = "user"): Promise<string> {
    return this.mounts.acquire((await this.container(name)).mountID, holder);
  }

  /** Drops one named hold of a container's tree (unmounting with the last). */
  async unmount(name: string, holder = "user"): Promise<void> {
    await this.mounts.release((await this.container(name)).mountID, holder);
  }

  /** What the container changed (init files never show). */
  changes(name: string): Promise<Change[]> {
    return this.#containers.changes(name);
  }

  /** Bytes of what the container added or changed. */
  diffSize(name: string): Promise<number> {
    return this.#containers.diffSize(name);
  }

  /** The container's change as a layer tar (AUFS whiteouts). The caller consumes or destroys it. */
  diffTar(name: string): Promise<Readable> {
    return this.#containers.diffTar(name);
  }

  /** Registers the container's change as a new layer on its image layer (held as {@link register} holds). */
  async commit(name: string, opts: { ref?: string } = {}): Promise<LayerInfo> {
    const rec = await this.container(name);
    return this.register(await this.diffTar(name), rec.parent, opts);
  }

  // ---- consistency ----

  /**
   * Verifies the store and, with `repair`, fixes what is found in one pass
   * (see `check.ts`).
   */
  check(repair: boolean): Promise<CheckProblem[]> {
    return this.#lock.with(() => checkParts(this.#parts, repair));
  }

  /** Removes layers that nothing references (no ref, child, container); returns their chainIDs. */
  prune(): Promise<Digest[]> {
    return this.#lock.with(() => pruneParts(this.#parts));
  }
}

/** {@link LayerStore.check} as a function. */
export function check(store: LayerStore, repair: boolean): Promise<CheckProblem[]> {
  return store.check(repair);
}

/** {@link LayerStore.prune} as a function. */
export function prune(store: LayerStore): Promise<Digest[]> {
  return store.prune();
}

/** {@link LayerStore.withRefs} as a function (the image records' reference check uses it). */
export function withRefs<T>(store: LayerStore, fn: (refs: RefEditor) => Promise<T>): Promise<T> {
  return store.withRefs(fn);
}
