/**
 * Read-write (container) layers of the layer store: a container `name` is
 * a driver layer `mountID` on its image layer, with an `<mountID>-init`
 * layer between them unless the driver keeps the init content inside image
 * layers (devmapper). The record lives in `mounts/<name>/record.json`; its
 * state goes "creating" → "ready" → "removing", and an intent record covers
 * the driver work of a create, so a crash at any point is rolled back or
 * finished by recovery. `LayerStore` exposes these as its container methods.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.js";
import type { Change } from "../diff/index.js";
import type { CreateOpts } from "../graphdriver/driver.js";
import { currentProcess } from "../util/process.js";
import type { Differ } from "./differ.js";
import { type Digest, randomID } from "./ids.js";
import { setupInitLayer, sharedInitID } from "./init-layer.js";
import type { ContainerRecord } from "./layerdb.js";
import type { StoreLock } from "./lock.js";
import type { StoreParts } from "./recovery.js";

/** Options of `createRWLayer`. */
export interface CreateRWOptions {
  /** Add the init layer (default true). */
  init?: boolean;
  storageOpt?: Record<string, string>;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** The container half of a `LayerStore` (see the module doc). */
export class Containers {
  readonly #parts: StoreParts;
  readonly #lock: StoreLock;
  readonly #differ: Differ;

  constructor(parts: StoreParts, lock: StoreLock, differ: Differ) {
    this.#parts = parts;
    this.#lock = lock;
    this.#differ = differ;
  }

  /** @throws ERR_CONTAINER_NOT_FOUND */
  async get(name: string): Promise<ContainerRecord> {
    const rec = await this.#parts.db.readContainer(name);
    if (!rec || rec.state !== "ready") {
      throw new NotFoundError("ERR_CONTAINER_NOT_FOUND", `Cannot find container: no container "${name}"`);
    }
    return rec;
  }

  async list(): Promise<ContainerRecord[]> {
    return (await this.#parts.db.listContainers()).filter((c) => c.state === "ready");
  }

  /** @throws ERR_CONTAINER_EXISTS, ERR_LAYER_NOT_FOUND, ERR_INVALID_NAME */
  async create(name: string, parent: Digest | "", opts: CreateRWOptions): Promise<ContainerRecord> {
    if (!NAME_RE.test(name)) {
      throw new InvalidArgumentError("ERR_INVALID_NAME", `Cannot create container: invalid name "${name}"`);
    }
    const { db, driver, mounts } = this.#parts;
    const me = await currentProcess();
    const mountID = randomID();
    const withInit = opts.init ?? true;
    let initID = withInit ? `${mountID}-init` : "";
    let initShared = false;
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
    await this.#lock.with(async () => {
      if (await db.readContainer(name)) {
        throw new AlreadyExistsError("ERR_CONTAINER_EXISTS", `Cannot create container: name in use "${name}"`);
      }
      if (parent) {
        const p = await db.readLayer(parent);
        if (!p) throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot find layer: no layer "${parent}"`);
        parentCache = p.cacheID;
      }
      // The image layer's shared init layer (sharedInit drivers); a layer registered
      // before shared init layers existed has none: the container gets one of its own.
      if (withInit && parentCache && driver.capabilities.sharedInit) {
        initShared = await driver.exists(sharedInitID(parentCache));
        if (initShared) initID = sharedInitID(parentCache);
      }
      rec.initID = initID;
      if (initShared) rec.initShared = true;
      await db.writeIntent(mountID, {
        kind: "create",
        driverIDs: [mountID, initShared ? "" : initID].filter(Boolean),
        owner: me,
        container: name,
      });
      await db.writeContainer(rec);
    });
    try {
      const createOpts: CreateOpts = { storageOpt: rec.storageOpt };
      let below = initShared ? initID : parentCache;
      if (initID && !initShared) {
        await driver.createReadWrite(initID, parentCache, createOpts);
        const path = await mounts.acquire(initID);
        try {
          await setupInitLayer(path);
        } finally {
          await mounts.release(initID);
        }
        below = initID;
      }
      await driver.createReadWrite(mountID, below, createOpts);
      rec.state = "ready";
      await this.#lock.with(async () => {
        await db.writeContainer(rec);
        await db.deleteIntent(mountID);
      });
      return rec;
    } catch (err) {
      await driver.remove(mountID).catch(() => {});
      if (initID && !initShared) await driver.remove(initID).catch(() => {});
      await this.#lock.with(async () => {
        await db.deleteContainer(name);
        await db.deleteIntent(mountID);
      });
      throw err;
    }
  }

  /**
   * Removes a container layer and its init layer, then releases its parent.
   * A container that is not there (released already) is a no-op, as Docker's
   * ReleaseRWLayer.
   * @throws ERR_ACTIVE_MOUNT while mounted, unless `force` (which unmounts first)
   */
  async release(name: string, opts: { force?: boolean }): Promise<Digest[]> {
    const { db, mounts, collector } = this.#parts;
    const rec = await db.readContainer(name);
    if (!rec || rec.state === "creating") return [];
    // A shared init layer belongs to the image layer: its holds are not this container's.
    for (const id of [rec.mountID, rec.initShared ? "" : rec.initID].filter(Boolean)) {
      const held = await mounts.count(id);
      if (held === 0) continue;
      if (!opts.force) {
        throw new FailedPreconditionError(
          "ERR_ACTIVE_MOUNT",
          `Cannot remove container: it is mounted (${held} holds) "${name}"`,
        );
      }
      await mounts.releaseAll(id);
    }
    return this.#lock.with(async () => {
      if (!(await db.readContainer(name))) return []; // released meanwhile by another process
      rec.state = "removing";
      await db.writeContainer(rec);
      await collector.removeDriverLayer(rec.mountID);
      if (rec.initID && !rec.initShared) await collector.removeDriverLayer(rec.initID);
      await db.deleteContainer(name);
      return rec.parent ? collector.deleteUnreferenced(rec.parent) : [];
    });
  }

  /** The driver id a container's changes are measured against: its init layer, else its image layer. */
  async #base(rec: ContainerRecord): Promise<string> {
    if (rec.initID) return rec.initID;
    if (!rec.parent) return "";
    const p = await this.#parts.db.readLayer(rec.parent);
    if (!p) throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot find layer: no layer "${rec.parent}"`);
    return p.cacheID;
  }

  /** What the container changed (init files never show). */
  async changes(name: string): Promise<Change[]> {
    const rec = await this.get(name);
    return this.#differ.changes(rec.mountID, await this.#base(rec));
  }

  /** Bytes of what the container added or changed. */
  async diffSize(name: string): Promise<number> {
    const rec = await this.get(name);
    return this.#differ.diffSize(rec.mountID, await this.#base(rec));
  }

  /** The container's change as a layer tar (AUFS whiteouts). The caller consumes or destroys it. */
  async diffTar(name: string): Promise<Readable> {
    const rec = await this.get(name);
    return this.#differ.diff(rec.mountID, await this.#base(rec));
  }
}
