/**
 * What each call of Docker's graphdriver plugin protocol does to strata's
 * store (the HTTP side is `http.ts`).
 *
 * dockerd keeps its own layer store above the plugin and names every layer
 * itself: a random 64-hex cache id per image layer, a mount id per container
 * and `<mount id>-init` for the container's init layer, which dockerd fills
 * itself. So this side passes ids straight to the driver, and the driver's
 * view of an image layer is exactly that layer (the shared init layers of
 * `sharedInit` drivers are made by strata's LayerStore, not used here:
 * dockerd's per-container `-init` layers are ordinary layers to the driver).
 *
 * Mounts: every `Get` takes one hold named {@link DOCKER_HOLDER} through the
 * store's `Mounts` and every `Put` drops one, so the count is persisted and
 * survives a restart of `strata serve`: a `Put` after a restart releases a
 * `Get` made before it, and a running container's mount is never touched by
 * a restart. A `Put` with no hold left is answered with success: dockerd
 * puts again what it put before it restarted. Diff, Changes, DiffSize and
 * ApplyDiff go through the store's `Differ`, which mounts (when it must)
 * through the same `Mounts` with holds of this process: they die with it,
 * and `Remove` tells them from dockerd's.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { FailedPreconditionError, hasCode, InvalidArgumentError, NotFoundError } from "../../errors.js";
import type { Change } from "../../diff/index.js";
import { KeyedLock } from "../../util/keyed-lock.js";
import type { ServeContext } from "../context.js";
import type { PendingLayers } from "./pending.js";

/** The named holder of every mount dockerd asked for. */
export const DOCKER_HOLDER = "docker";

/** dockerd's ids: a random 64-hex id, or a container's `<id>-init`. */
const DOCKER_ID = /^[a-f0-9]{64}(-init)?$/;

/** @throws ERR_INVALID_ID unless `id` has the form dockerd gives its layers */
export function assertDockerID(id: string, what = "id"): void {
  if (!DOCKER_ID.test(id)) {
    throw new InvalidArgumentError("ERR_INVALID_ID", `Cannot use layer ${what}: not a dockerd layer id "${id}"`);
  }
}

function assertParent(parent: string): void {
  if (parent !== "") assertDockerID(parent, "parent");
}

/** The `GraphDriver.Init` request. */
export interface InitRequest {
  home: string;
  opts: string[];
  uidMaps: unknown[];
  gidMaps: unknown[];
}

/** The protocol's calls over one store. */
export class DockerPlugin {
  readonly #ctx: ServeContext;
  readonly #pending: PendingLayers;
  /** Create, Remove and ApplyDiff of one id never interleave. */
  readonly #ids = new KeyedLock();
  /** Ids whose ApplyDiff runs now (Init leaves them to finish). */
  readonly #applying = new Set<string>();

  constructor(ctx: ServeContext, pending: PendingLayers) {
    this.#ctx = ctx;
    this.#pending = pending;
  }

  /**
   * dockerd starts. Its options belong to `strata serve` (given there, the
   * driver is already open), and layers a previous dockerd created but never
   * filled are removed: no dockerd will ever name them again.
   * @throws ERR_INVALID_ARGUMENT for storage options or user-namespace maps
   */
  async init(req: InitRequest): Promise<void> {
    const { log } = this.#ctx;
    log.info("dockerd initialises the plugin", { home: req.home, opts: req.opts.join(",") });
    if (req.opts.length > 0) {
      throw new InvalidArgumentError(
        "ERR_INVALID_ARGUMENT",
        `Cannot init: give storage options to strata serve (--storage-opt), not to dockerd "${req.opts.join(",")}"`,
      );
    }
    if (req.uidMaps.length > 0 || req.gidMaps.length > 0) {
      throw new InvalidArgumentError(
        "ERR_INVALID_ARGUMENT",
        "Cannot init: user namespace remapping (userns-remap) is not supported by strata serve",
      );
    }
    let removed = 0;
    for (const id of await this.#pending.list()) {
      if (this.#applying.has(id)) continue;
      await this.#ids.run(id, async () => {
        await this.#ctx.driver.remove(id);
        await this.#pending.remove(id);
      });
      removed++;
    }
    if (removed > 0) log.info("removed layers a previous dockerd created but never filled", { count: removed });
  }

  /** An empty image layer on `parent`, to be filled by {@link applyDiff}. */
  async create(id: string, parent: string, storageOpt: Record<string, string>): Promise<void> {
    assertDockerID(id);
    assertParent(parent);
    const { driver } = this.#ctx;
    await this.#ids.run(id, async () => {
      if (await driver.exists(id)) {
        throw new FailedPreconditionError("ERR_LAYER_EXISTS", `Cannot create layer: exists "${id}"`);
      }
      await this.#pending.add(id); // before the driver: a crash leaves a record, not an orphan
      try {
        await driver.create(id, parent, { storageOpt });
      } catch (err) {
        await this.#pending.remove(id);
        throw err;
      }
    });
  }

  /** A container's layer (or its init layer) on `parent`. */
  async createReadWrite(id: string, parent: string, storageOpt: Record<string, string>): Promise<void> {
    assertDockerID(id);
    assertParent(parent);
    await this.#ids.run(id, () => this.#ctx.driver.createReadWrite(id, parent, { storageOpt }));
  }

  /**
   * Removes a layer. dockerd removes a layer only when it is done with it,
   * so holds it took and never put (a dockerd killed while it had the layer
   * mounted) are dropped with it; a hold of this process (a Diff still being
   * read) makes it fail.
   * @throws ERR_ACTIVE_MOUNT while this daemon itself reads the layer
   */
  async remove(id: string): Promise<void> {
    assertDockerID(id);
    const { driver, store, log } = this.#ctx;
    await this.#ids.run(id, async () => {
      const holders = await store.mounts.holders(id);
      if (holders.some((h) => h.kind === "process")) {
        throw new FailedPreconditionError("ERR_ACTIVE_MOUNT", `Cannot remove layer: it is being read "${id}"`);
      }
      if (holders.length > 0) {
        log.warn("removing a layer dockerd did not put", { id, holds: holders.reduce((s, h) => s + h.n, 0) });
        await store.mounts.releaseAll(id);
      }
      await driver.remove(id);
      await this.#pending.remove(id);
    });
  }

  /** Mounts the layer (one more hold) and returns its path. @throws ERR_LAYER_NOT_FOUND */
  async get(id: string): Promise<string> {
    assertDockerID(id);
    return this.#ctx.store.mounts.acquire(id, DOCKER_HOLDER);
  }

  /** Drops one hold; unmounts at the last. A layer dockerd holds nothing of is left alone. */
  async put(id: string): Promise<void> {
    assertDockerID(id);
    try {
      await this.#ctx.store.mounts.release(id, DOCKER_HOLDER);
    } catch (err) {
      if (!hasCode(err, "ERR_NOT_MOUNTED")) throw err;
      this.#ctx.log.debug("put without a hold (dockerd restarted since its get)", { id });
    }
  }

  exists(id: string): Promise<boolean> {
    assertDockerID(id);
    return this.#ctx.driver.exists(id);
  }

  /** The driver's status, after which store and driver. */
  async status(): Promise<Array<[string, string]>> {
    const { driver, root } = this.#ctx;
    return [["Strata Driver", driver.name], ["Strata Root", root], ...(await driver.status())];
  }

  async metadata(id: string): Promise<Record<string, string>> {
    assertDockerID(id);
    return this.#ctx.driver.metadata(id);
  }

  /**
   * dockerd shuts down. It has put what it stopped; what it still holds is
   * a container it leaves running (live-restore), so nothing is unmounted.
   */
  async cleanup(): Promise<void> {
    this.#ctx.log.info("dockerd shuts down");
  }

  /** The tar of what `id` changed against `parent`; the caller consumes or destroys it. */
  async diff(id: string, parent: string): Promise<Readable> {
    assertDockerID(id);
    assertParent(parent);
    return this.#ctx.store.differ.diff(id, parent);
  }

  async changes(id: string, parent: string): Promise<Change[]> {
    assertDockerID(id);
    assertParent(parent);
    return this.#ctx.store.differ.changes(id, parent);
  }

  async diffSize(id: string, parent: string): Promise<number> {
    assertDockerID(id);
    assertParent(parent);
    return this.#ctx.store.differ.diffSize(id, parent);
  }

  /**
   * Fills the layer `Create` made with an uncompressed layer tar; returns
   * the sum of its entry sizes. A layer is filled once: a failed apply
   * removes the half-filled layer (dockerd removes it too, which then finds
   * nothing), a successful one ends its pending record.
   * @throws ERR_NOT_PENDING for a layer that was not created by Create or is filled already
   */
  async applyDiff(id: string, parent: string, tar: Readable): Promise<number> {
    assertDockerID(id);
    assertParent(parent);
    const { driver, store, log } = this.#ctx;
    return this.#ids.run(id, async () => {
      if (!(await this.#pending.has(id))) {
        const exists = await driver.exists(id);
        throw exists
          ? new FailedPreconditionError("ERR_NOT_PENDING", `Cannot apply layer: it is filled already "${id}"`)
          : new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot apply layer: not found "${id}"`);
      }
      this.#applying.add(id);
      try {
        const { size } = await store.differ.applyDiff(id, parent, tar);
        await this.#pending.remove(id);
        return size;
      } catch (err) {
        tar.destroy();
        try {
          await driver.remove(id);
          await this.#pending.remove(id);
        } catch (cleanupErr) {
          log.warn("cannot remove a layer whose apply failed; dockerd's next start removes it", {
            id,
            error: (cleanupErr as Error).message,
          });
        }
        throw err;
      } finally {
        this.#applying.delete(id);
      }
    });
  }
}
