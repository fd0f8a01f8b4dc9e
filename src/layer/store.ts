/**
 * LayerStore: read-only image layers identified by chainID, read-write
 * container layers identified by name, and every mount count (through
 * {@link Mounts}) — on top of one graphdriver.
 *
 * References (Docker's rules, persisted so they hold across processes): a
 * layer is held by each child layer, by each container on it, by each named
 * ref ("image", an import in progress, `strata layer apply`; see
 * `refs.ts` for changing them under the lock), and by in-process handles from
 * `get`/`register`. When the last goes, the layer is deleted and the walk
 * continues with its parent. A layer or container that is mounted is never
 * deleted (ERR_ACTIVE_MOUNT).
 *
 * Concurrency: metadata changes run under the store's file lock; applying a
 * tar runs outside it, announced by an intent record so that a crash mid-way
 * is cleaned up by the next process that opens the store.
 *
 * @example
 * const store = await LayerStore.open("/var/lib/strata", driver);
 * const base = await store.register(fs.createReadStream("layer.tar"), "");
 * await store.createRWLayer("web", base.chainID);
 * console.log(await store.changes("web"));
 * await store.close();
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join, relative } from "node:path";
import { pipeline, Readable, Transform } from "node:stream";
import { assembleTar, openInLayer, TarSplitRecorder } from "../archive/tar-split.js";
import { cleanEntryPath } from "../archive/paths.js";
import {
  AlreadyExistsError,
  DigestMismatchError,
  FailedPreconditionError,
  hasCode,
  InvalidArgumentError,
  NotFoundError,
} from "../errors.js";
import type { Change, CreateOpts, Driver } from "../graphdriver/driver.js";
import { chainID as makeChainID, type Digest, randomID } from "./ids.js";
import { type ContainerRecord, LayerDB, type LayerRecord } from "./layerdb.js";
import { StoreLock } from "./lock.js";
import { Mounts } from "./mounts.js";
import { currentProcess } from "../util/process.js";
import { saveInitOriginals, setupInitLayer } from "./init-layer.js";
import { recover } from "./recovery.js";
import { assertOwner, STRATA_OWNER } from "./owner.js";

/** Docker's limit: room is left for `-init` and the container layer within overlay's 128 lowers. */
export const MAX_LAYER_DEPTH = 125;

export interface LayerInfo extends LayerRecord {
  depth: number;
}

export interface CreateRWOptions {
  /** Add the init layer (default true). */
  init?: boolean;
  storageOpt?: Record<string, string>;
}

export class LayerStore {
  readonly driver: Driver;
  readonly db: LayerDB;
  readonly mounts: Mounts;
  readonly lock: StoreLock;
  #handles = new Map<Digest, number>();

  private constructor(driver: Driver, dir: string) {
    this.driver = driver;
    this.db = new LayerDB(dir);
    this.mounts = new Mounts(driver, join(dir, "holds"));
    this.lock = new StoreLock(join(dir, "lock"));
  }

  /**
   * Opens (creating if needed) the store of `driver` under `root`, and
   * finishes or rolls back whatever a crashed process left half done.
   * @param opts.owner who the store's layers belong to (see `owner.ts`):
   *   strata's own layer store by default; an engine served by `strata serve`
   *   claims an empty store with its own name
   * @throws ERR_STORE_OWNED when the store belongs to another owner
   */
  static async open(root: string, driver: Driver, opts: { owner?: string } = {}): Promise<LayerStore> {
    const store = new LayerStore(driver, join(root, "layerdb", driver.name));
    await store.db.init();
    await store.mounts.init();
    try {
      await store.lock.with(async () => {
        // Before recovery: a store of another owner is not this process's to repair.
        await assertOwner(store.db.dir, opts.owner ?? STRATA_OWNER, () => store.#isEmpty());
        await recover(store);
      });
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
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

  async close(): Promise<void> {
    await this.mounts.close();
    await this.lock.close();
  }

  /** Where the originals of init-replaced files of an initInImage layer are kept. */
  #initOriginals(cacheID: string): string {
    return join(this.db.dir, "init-originals", cacheID);
  }

  // ---- read-only layers ----

  /** @throws ERR_LAYER_NOT_FOUND */
  async layer(chainID: Digest): Promise<LayerInfo> {
    const rec = await this.db.readLayer(chainID);
    if (!rec) throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot find layer: no layer "${chainID}"`);
    return { ...rec, depth: await this.#depth(rec) };
  }

  async #depth(rec: LayerRecord): Promise<number> {
    let depth = 1;
    let parent = rec.parent;
    while (parent) {
      const p = await this.db.readLayer(parent);
      if (!p) break;
      depth++;
      parent = p.parent;
    }
    return depth;
  }

  async layers(): Promise<LayerInfo[]> {
    const recs = await this.db.listLayers();
    const byId = new Map(recs.map((r) => [r.chainID, r]));
    const depth = (r: LayerRecord): number => (r.parent && byId.has(r.parent) ? depth(byId.get(r.parent)!) + 1 : 1);
    return recs.map((r) => ({ ...r, depth: depth(r) }));
  }

  /** Takes an in-process handle on a layer (released with {@link release}). */
  async get(chainID: Digest): Promise<LayerInfo> {
    const info = await this.layer(chainID);
    this.#handles.set(chainID, (this.#handles.get(chainID) ?? 0) + 1);
    return info;
  }

  /**
   * Drops a handle; the layer is deleted when nothing references it any more.
   * @throws ERR_LAYER_NOT_RETAINED when this process holds no handle on it
   */
  async release(chainID: Digest): Promise<Digest[]> {
    const n = this.#handles.get(chainID) ?? 0;
    if (n === 0)
      throw new FailedPreconditionError("ERR_LAYER_NOT_RETAINED", `Cannot release layer: not retained "${chainID}"`);
    if (n === 1) this.#handles.delete(chainID);
    else this.#handles.set(chainID, n - 1);
    return this.lock.with(() => this.deleteUnreferencedLocked(chainID));
  }

  /** Adds a named reference (an image name, "user" for `layer apply`). */
  async addRef(chainID: Digest, name: string): Promise<void> {
    await this.lock.with(async () => {
      await this.layer(chainID);
      await this.db.addRef(chainID, name);
    });
  }

  /** Removes a named reference and deletes what is no longer referenced. */
  async removeRef(chainID: Digest, name: string): Promise<Digest[]> {
    return this.lock.with(async () => {
      if (!(await this.db.removeRef(chainID, name))) {
        throw new NotFoundError("ERR_REF_NOT_FOUND", `Cannot remove reference: "${name}" does not hold "${chainID}"`);
      }
      return this.deleteUnreferencedLocked(chainID);
    });
  }

  /** Why a layer is kept: named refs, children, containers, handles. Empty when unreferenced. */
  async referencesOf(chainID: Digest): Promise<string[]> {
    const out = (await this.db.refs(chainID)).map((r) => `ref:${r}`);
    for (const l of await this.db.listLayers()) if (l.parent === chainID) out.push(`child:${l.chainID}`);
    for (const c of await this.db.listContainers()) if (c.parent === chainID) out.push(`container:${c.name}`);
    if (this.#handles.has(chainID)) out.push("handle");
    return out;
  }

  /** Deletes `chainID` if unreferenced, then its parent, and so on (call under the lock). */
  async deleteUnreferencedLocked(chainID: Digest): Promise<Digest[]> {
    const deleted: Digest[] = [];
    let id: Digest | "" = chainID;
    while (id) {
      const rec = await this.db.readLayer(id);
      if (!rec || (await this.referencesOf(id)).length > 0) break;
      if ((await this.mounts.count(rec.cacheID)) > 0) {
        throw new FailedPreconditionError("ERR_ACTIVE_MOUNT", `Cannot remove layer: it is mounted "${id}"`);
      }
      const removing = await this.db.markRemoving(id);
      await this.driver.remove(rec.cacheID);
      await rm(this.#initOriginals(rec.cacheID), { recursive: true, force: true });
      await rm(removing, { recursive: true, force: true });
      deleted.push(id);
      id = rec.parent;
    }
    return deleted;
  }

  /**
   * Applies an uncompressed layer tar on `parent` ("" for none) and stores it.
   * The stream is hashed as it is applied (diffID). If a layer with the same
   * chainID exists already, the new copy is discarded and the existing one
   * returned. With `opts.diffID` the tar must hash to it (checked in the
   * same pass, before anything is committed). Returns with an in-process
   * handle taken (see {@link release}), and the tar's byte count.
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
    await this.lock.with(async () => {
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
      await this.db.writeIntent(cacheID, { kind: "register", driverIDs: [cacheID], owner: me });
    });
    let committed = false;
    try {
      await this.driver.create(cacheID, parentCache);
      const hash = createHash("sha256");
      let tarSize = 0;
      const hashing = new Transform({
        // 1 MiB: the applier takes big reads; the default 16 KiB would split them.
        writableHighWaterMark: 1 << 20,
        // Chunks as they come, up to 8 buffered: a byte-mode read() would join all it
        // holds into one new Buffer (a copy of every byte of the layer on this thread).
        readableObjectMode: true,
        readableHighWaterMark: 8,
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          tarSize += chunk.length;
          cb(null, chunk);
        },
      });
      // pipeline, not pipe: it also fails `hashing` when `tar` errored or closed early
      // before this point (a digest check upstream), which pipe would leave open forever.
      pipeline(tar, hashing, () => {});
      const recorder = new TarSplitRecorder();
      const size = await this.driver.applyDiff(cacheID, parentCache, hashing, this.mounts.access(), {
        recorder,
      });
      const tarSplit = await recorder.finish();
      if (this.driver.capabilities.initInImage) {
        // devmapper: the init content goes into each image device, so a container is one
        // snapshot of it and the container's changes are measured against image + init.
        const path = await this.mounts.acquire(cacheID);
        try {
          // Pristine export needs the bytes the tar gave the files init replaces.
          await saveInitOriginals(path, this.#initOriginals(cacheID));
          await setupInitLayer(path);
        } finally {
          await this.mounts.release(cacheID);
        }
      }
      const diffID: Digest = `sha256:${hash.digest("hex")}`;
      if (opts.diffID && diffID !== opts.diffID) {
        throw new DigestMismatchError(`Cannot register layer: digest mismatch, want "${opts.diffID}" got "${diffID}"`);
      }
      const chainID = makeChainID(parent, diffID);
      return await this.lock.with(async () => {
        const existing = await this.db.readLayer(chainID);
        if (existing) {
          await this.driver.remove(cacheID);
          await rm(this.#initOriginals(cacheID), { recursive: true, force: true });
        } else {
          if (parent && !(await this.db.readLayer(parent))) {
            throw new NotFoundError(
              "ERR_LAYER_NOT_FOUND",
              `Cannot register layer: parent was removed meanwhile "${parent}"`,
            );
          }
          await this.db.writeLayer({ chainID, diffID, size, cacheID, parent }, tarSplit);
        }
        if (opts.ref) await this.db.addRef(chainID, opts.ref);
        committed = true;
        await this.db.deleteIntent(cacheID);
        this.#handles.set(chainID, (this.#handles.get(chainID) ?? 0) + 1);
        return { ...(await this.layer(chainID)), tarSize };
      });
    } finally {
      if (!committed) {
        await this.driver.remove(cacheID).catch(() => {});
        await rm(this.#initOriginals(cacheID), { recursive: true, force: true });
        await this.db.deleteIntent(cacheID);
      }
    }
  }

  /**
   * The layer's exact original tar, re-assembled from its pristine index and
   * verified against its diffID at the end.
   * @throws ERR_NO_PRISTINE when the layer was stored without an index
   */
  async tarStream(chainID: Digest): Promise<Readable> {
    const rec = await this.layer(chainID);
    const index = await this.db.readTarSplit(chainID);
    if (!index) {
      throw new FailedPreconditionError(
        "ERR_NO_PRISTINE",
        `Cannot export layer: no pristine index stored for "${chainID}"`,
      );
    }
    const path = await this.mounts.acquire(rec.cacheID);
    let files: Awaited<ReturnType<typeof openInLayer>>;
    try {
      files = await openInLayer(path);
    } catch (err) {
      await this.mounts.release(rec.cacheID);
      throw err;
    }
    const originals = this.#initOriginals(rec.cacheID);
    const saved = this.driver.capabilities.initInImage ? new Set(await readdirRecursive(originals)) : new Set();
    // initInImage layers: files the init content replaced are read from their saved originals.
    const open: typeof files.open = (name, size) =>
      saved.has(cleanEntryPath(name))
        ? Promise.resolve(createReadStream(join(originals, cleanEntryPath(name))))
        : files.open(name, size);
    const assembled = assembleTar(index, open, { digest: rec.diffID });
    const release = async () => {
      await files.close();
      await this.mounts.release(rec.cacheID);
    };
    // The layer stays held until the stream is read to its end or destroyed.
    async function* held(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of assembled) yield chunk as Buffer;
      } finally {
        assembled.destroy();
        await release();
      }
    }
    return Readable.from(held(), { objectMode: false });
  }

  // ---- read-write layers (containers) ----

  /** @throws ERR_CONTAINER_NOT_FOUND */
  async container(name: string): Promise<ContainerRecord> {
    const rec = await this.db.readContainer(name);
    if (!rec || rec.state !== "ready") {
      throw new NotFoundError("ERR_CONTAINER_NOT_FOUND", `Cannot find container: no container "${name}"`);
    }
    return rec;
  }

  async containers(): Promise<ContainerRecord[]> {
    return (await this.db.listContainers()).filter((c) => c.state === "ready");
  }

  /**
   * Creates a container layer `name` on image layer `parent` ("" for an empty one),
   * with the init layer unless `init: false`.
   * @throws ERR_CONTAINER_EXISTS, ERR_LAYER_NOT_FOUND
   */
  async createRWLayer(name: string, parent: Digest | "", opts: CreateRWOptions = {}): Promise<ContainerRecord> {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name)) {
      throw new InvalidArgumentError("ERR_INVALID_NAME", `Cannot create container: invalid name "${name}"`);
    }
    const me = await currentProcess();
    const mountID = randomID();
    const withInit = (opts.init ?? true) && !this.driver.capabilities.initInImage;
    const initID = withInit ? `${mountID}-init` : "";
    let parentCache = "";
    const rec: ContainerRecord = {
      name,
      mountID,
      initID,
      parent,
      state: "creating",
      created: new Date().toISOString(),
      storageOpt: opts.storageOpt ?? {},
    };
    await this.lock.with(async () => {
      if (await this.db.readContainer(name)) {
        throw new AlreadyExistsError("ERR_CONTAINER_EXISTS", `Cannot create container: name in use "${name}"`);
      }
      if (parent) parentCache = (await this.layer(parent)).cacheID;
      await this.db.writeIntent(mountID, {
        kind: "create",
        driverIDs: [mountID, initID].filter(Boolean),
        owner: me,
        container: name,
      });
      await this.db.writeContainer(rec);
    });
    try {
      const createOpts: CreateOpts = { storageOpt: rec.storageOpt };
      let below = parentCache;
      if (initID) {
        await this.driver.createReadWrite(initID, parentCache, createOpts);
        const path = await this.mounts.acquire(initID);
        try {
          await setupInitLayer(path);
        } finally {
          await this.mounts.release(initID);
        }
        below = initID;
      }
      await this.driver.createReadWrite(mountID, below, createOpts);
      rec.state = "ready";
      await this.lock.with(async () => {
        await this.db.writeContainer(rec);
        await this.db.deleteIntent(mountID);
      });
      return rec;
    } catch (err) {
      await this.driver.remove(mountID).catch(() => {});
      if (initID) await this.driver.remove(initID).catch(() => {});
      await this.lock.with(async () => {
        await this.db.deleteContainer(name);
        await this.db.deleteIntent(mountID);
      });
      throw err;
    }
  }

  /**
   * Removes a container layer (and its init layer), then releases its parent.
   * @throws ERR_ACTIVE_MOUNT while mounted, unless `force` (which unmounts first)
   */
  async releaseRWLayer(name: string, opts: { force?: boolean } = {}): Promise<Digest[]> {
    const rec = await this.container(name);
    const held = await this.mounts.count(rec.mountID);
    if (held > 0) {
      if (!opts.force) {
        throw new FailedPreconditionError(
          "ERR_ACTIVE_MOUNT",
          `Cannot remove container: it is mounted (${held} holds) "${name}"`,
        );
      }
      await this.mounts.releaseAll(rec.mountID);
    }
    return this.lock.with(async () => {
      rec.state = "removing";
      await this.db.writeContainer(rec);
      await this.driver.remove(rec.mountID);
      if (rec.initID) await this.driver.remove(rec.initID);
      await this.db.deleteContainer(name);
      return rec.parent ? this.deleteUnreferencedLocked(rec.parent) : [];
    });
  }

  /** Mounts a container's tree with a named hold; returns the path. */
  async mount(name: string, holder = "user"): Promise<string> {
    return this.mounts.acquire((await this.container(name)).mountID, holder);
  }

  async unmount(name: string, holder = "user"): Promise<void> {
    await this.mounts.release((await this.container(name)).mountID, holder);
  }

  /** The driver id a container's changes are measured against: its init layer, else its image layer. */
  async #base(rec: ContainerRecord): Promise<string> {
    if (rec.initID) return rec.initID;
    return rec.parent ? (await this.layer(rec.parent)).cacheID : "";
  }

  /** What the container changed (init files never show). */
  async changes(name: string): Promise<Change[]> {
    const rec = await this.container(name);
    return this.driver.changes(rec.mountID, await this.#base(rec), this.mounts.access());
  }

  /** Bytes of what the container added or changed. */
  async diffSize(name: string): Promise<number> {
    const rec = await this.container(name);
    return this.driver.diffSize(rec.mountID, await this.#base(rec), this.mounts.access());
  }

  /** The container's change as a layer tar (AUFS whiteouts). The caller consumes or destroys it. */
  async diffTar(name: string): Promise<Readable> {
    const rec = await this.container(name);
    return this.driver.diff(rec.mountID, await this.#base(rec), this.mounts.access());
  }

  /** Registers the container's change as a new layer on its image layer. */
  async commit(name: string, opts: { ref?: string } = {}): Promise<LayerInfo> {
    const rec = await this.container(name);
    return this.register(await this.diffTar(name), rec.parent, opts);
  }
}

/** Relative paths of the regular files under `dir` ([] when it does not exist). */
async function readdirRecursive(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true });
    return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
  } catch (err) {
    if (hasCode(err, "ENOENT")) return [];
    throw err;
  }
}
