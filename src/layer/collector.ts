/**
 * What keeps a layer, and the deletion of layers nothing keeps (Docker's
 * reference rules). A layer is kept by each named ref (`refs/` in its
 * layerdb directory), each child layer, each container on it and each
 * in-process handle; when the last goes it is deleted, and the walk goes on
 * with its parent. A mounted layer is never deleted (ERR_ACTIVE_MOUNT).
 *
 * The store, recovery and the ref editor share one Collector; every method
 * that changes the layerdb runs under the store lock, taken by its caller.
 *
 * @module
 */
import { FailedPreconditionError, hasCode } from "../errors.js";
import type { Driver } from "../graphdriver/driver.js";
import type { Digest } from "./ids.js";
import { sharedInitID } from "./init-layer.js";
import type { LayerDB } from "./layerdb.js";
import type { Mounts } from "./mounts.js";

/** References and deletion for one layer store (see the module doc). */
export class Collector {
  readonly #db: LayerDB;
  readonly #driver: Driver;
  readonly #mounts: Mounts;
  readonly #handles = new Map<Digest, number>();

  constructor(db: LayerDB, driver: Driver, mounts: Mounts) {
    this.#db = db;
    this.#driver = driver;
    this.#mounts = mounts;
  }

  /** Takes an in-process handle on `chainID`. */
  takeHandle(chainID: Digest): void {
    this.#handles.set(chainID, (this.#handles.get(chainID) ?? 0) + 1);
  }

  /** Drops one in-process handle. @returns false when this process holds none */
  dropHandle(chainID: Digest): boolean {
    const n = this.#handles.get(chainID) ?? 0;
    if (n === 0) return false;
    if (n === 1) this.#handles.delete(chainID);
    else this.#handles.set(chainID, n - 1);
    return true;
  }

  /** Why a layer is kept: named refs, children, containers, handles. Empty when unreferenced. */
  async referencesOf(chainID: Digest): Promise<string[]> {
    const out = (await this.#db.refs(chainID)).map((r) => `ref:${r}`);
    for (const l of await this.#db.listLayers()) if (l.parent === chainID) out.push(`child:${l.chainID}`);
    for (const c of await this.#db.listContainers()) if (c.parent === chainID) out.push(`container:${c.name}`);
    if (this.#handles.has(chainID)) out.push("handle");
    return out;
  }

  /**
   * Deletes `chainID` if nothing references it, then its parent, and so on
   * (under the store lock).
   * @returns the chainIDs deleted
   * @throws ERR_ACTIVE_MOUNT when an unreferenced layer is still mounted
   */
  async deleteUnreferenced(chainID: Digest): Promise<Digest[]> {
    const deleted: Digest[] = [];
    let id: Digest | "" = chainID;
    while (id) {
      const rec = await this.#db.readLayer(id);
      if (!rec || (await this.referencesOf(id)).length > 0) break;
      if ((await this.#mounts.count(rec.cacheID)) > 0) {
        throw new FailedPreconditionError("ERR_ACTIVE_MOUNT", `Cannot remove layer: it is mounted "${id}"`);
      }
      // Metadata first: from here on the layer is gone, whatever the removal of its data does.
      const removing = await this.#db.markRemoving(id);
      await this.removeDriverLayer(rec.cacheID);
      await this.#db.removeTree(removing);
      deleted.push(id);
      id = rec.parent;
    }
    return deleted;
  }

  /**
   * Removes a driver layer and what the store keeps beside it (saved init
   * originals), unmounting it first when `unmount` (a crashed process's
   * mount). A driver layer that is already gone is fine.
   */
  async removeDriverLayer(id: string, opts: { unmount?: boolean } = {}): Promise<void> {
    // An image layer's shared init layer is its child: it goes first.
    if (this.#driver.capabilities.sharedInit) await this.#removeOne(sharedInitID(id), opts);
    await this.#removeOne(id, opts);
    await this.#db.removeInitOriginals(id);
  }

  async #removeOne(id: string, opts: { unmount?: boolean }): Promise<void> {
    if (opts.unmount) {
      try {
        await this.#driver.put(id);
      } catch (err) {
        if (!hasCode(err, "ERR_LAYER_NOT_FOUND", "ENOENT", "EINVAL")) throw err;
      }
    }
    await this.#driver.remove(id);
  }
}
