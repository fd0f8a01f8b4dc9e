/**
 * Deleting thin devices (Docker's DeleteDevice and deferred deletion):
 * discard (dm.blkdiscard), deactivate, then `delete` inside a transaction.
 * A device the pool says is busy (a mount leaked into another namespace)
 * is, with deferred deletion on, marked `deleted` in its metadata (hidden
 * from lookups, counted in the status) and deleted later, by the 30 s
 * worker or {@link Deletion.cleanupDeleted}.
 *
 * @module
 */
import { PoolError } from "../../thinpool/index.js";
import { discard } from "./filesystem.js";
import type { DeviceLocks, GlobalLock } from "./locks.js";
import type { DeviceInfo, MetadataStore } from "./metadata.js";
import type { DeviceNamer } from "./names.js";
import { isBusy, type PoolTarget } from "./pool.js";
import type { Transactions } from "./transactions.js";

/** What deletion needs of the DeviceSet. */
export interface DeletionDeps {
  md: MetadataStore;
  tx: Transactions;
  target: PoolTarget;
  nameOf: DeviceNamer;
  deviceLocks: DeviceLocks;
  global: GlobalLock;
  /** dm.blkdiscard: discard a device's blocks before deleting it. */
  blkDiscard: boolean;
  /** Resolved at start from dm.use_deferred_deletion. */
  deferredDeletion: boolean;
}

/** Deletes devices, now or deferred. Takes the device lock, then the global lock. */
export class Deletion {
  readonly #d: DeletionDeps;

  constructor(deps: DeletionDeps) {
    this.#d = deps;
  }

  /**
   * Deletes device `hash` (none: nothing to do). Busy with deferred deletion
   * on (and not `sync`): marked deleted, retried later.
   * @throws ERR_POOL_BUSY when the device stays busy and is not deferred
   */
  async delete(hash: string, sync: boolean): Promise<void> {
    const d = this.#d;
    await d.deviceLocks.with([hash], () =>
      d.global.with(async () => {
        const info = await d.md.device(hash);
        if (info) await this.#delete(info, sync);
      }),
    );
  }

  async #delete(info: DeviceInfo, sync: boolean): Promise<void> {
    const { md, tx, target } = this.#d;
    const name = this.#d.nameOf(info.hash);
    const deferred = this.#d.deferredDeletion && !sync;
    if (this.#d.blkDiscard && !info.deleted) {
      const dev = await target.activate(name, info.device_id, info.size);
      await discard(dev).catch(() => {}); // a busy device (leaked mount) cannot be discarded; delete still frees it
    }
    await target.deactivate(name, info.device_id, { deferred }).catch((err) => {
      if (!isBusy(err)) throw err;
    });
    const open = await tx.open(info.hash, info.device_id);
    try {
      await target.message(`delete ${info.device_id}`);
    } catch (err) {
      if (isBusy(err) && deferred) {
        info.deleted = true;
        await md.saveDevice(info);
        await tx.close(open);
        return;
      }
      await md.clearTransaction();
      if (!isBusy(err)) throw err;
      throw new PoolError("ERR_POOL_BUSY", `Cannot remove layer: device busy "${info.hash}"`, undefined, {
        cause: err,
      });
    }
    await md.removeDevice(info.hash);
    await tx.close(open);
  }

  /** Retries the deletion of devices marked deleted; returns how many remain. */
  async cleanupDeleted(): Promise<number> {
    const d = this.#d;
    const doomed = await d.global.with(async () => (await d.md.devices()).filter((x) => x.deleted));
    // The global lock is dropped between devices (Docker's TestDevmapperLockReleasedDeviceDeletion).
    for (const x of doomed) {
      await d.deviceLocks.with([x.hash], () =>
        d.global.with(async () => {
          const cur = await d.md.device(x.hash);
          if (cur?.deleted) await this.#delete(cur, false);
        }),
      );
    }
    return (await d.md.devices()).filter((x) => x.deleted).length;
  }
}
