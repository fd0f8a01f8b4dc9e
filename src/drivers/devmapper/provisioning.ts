/**
 * Making thin devices known to both the pool and the DeviceSet's metadata:
 * a free 24-bit device id after `next_device_id` (wrapping, skipping ids
 * in use), the pool message and the device's metadata file inside one
 * transaction, and Docker's dm.min_free_space rule before a snapshot.
 *
 * @module
 */
import { PoolError } from "../../thinpool/index.js";
import { type DeviceInfo, MAX_DEVICE_ID, type MetadataStore } from "./metadata.js";
import { isExists, type PoolTarget } from "./pool.js";
import type { Transactions } from "./transactions.js";

/** Creates registered devices. Callers hold the DeviceSet's global lock. */
export class Provisioner {
  readonly #md: MetadataStore;
  readonly #tx: Transactions;
  readonly #target: PoolTarget;

  constructor(md: MetadataStore, tx: Transactions, target: PoolTarget) {
    this.#md = md;
    this.#tx = tx;
    this.#target = target;
  }

  /**
   * Takes the next free 24-bit id after `next_device_id` (wrapping), and persists the new cursor.
   * @throws ERR_POOL_NO_SPACE when all 2^24 - 1 ids are in use
   */
  async allocateId(): Promise<number> {
    const meta = await this.#md.deviceSet();
    const used = new Set((await this.#md.devices()).map((d) => d.device_id));
    let id = meta.next_device_id;
    for (let i = 0; i <= MAX_DEVICE_ID; i++) {
      id = (id + 1) & MAX_DEVICE_ID;
      if (id !== 0 && !used.has(id)) {
        await this.#md.saveDeviceSet({ ...meta, next_device_id: id });
        return id;
      }
    }
    throw new PoolError("ERR_POOL_NO_SPACE", "Cannot create device: all 2^24 thin device ids are in use");
  }

  /**
   * Creates the device `hash` of `size` bytes: `send(id)` sends the pool
   * message for a fresh id, inside a transaction that also writes the
   * device's metadata (not yet `initialized`). Ids the pool has taken
   * (ERR_POOL_DEVICE_EXISTS) are skipped, as Docker does.
   */
  async create(hash: string, size: number, send: (id: number) => Promise<void>): Promise<DeviceInfo> {
    for (;;) {
      const id = await this.allocateId();
      try {
        return await this.#tx.run(hash, id, async () => {
          await send(id);
          const info: DeviceInfo = { hash, device_id: id, size, transaction_id: 0, initialized: false, deleted: false };
          info.transaction_id = (await this.#md.transaction())?.open_transaction_id ?? 0;
          await this.#md.saveDevice(info);
          return info;
        });
      } catch (err) {
        if (isExists(err)) continue;
        throw err;
      }
    }
  }

  /**
   * Docker's dm.min_free_space: refuses a new device when free data or
   * metadata blocks fall below `percent` of the pool (0 disables the check).
   * @throws ERR_POOL_NO_SPACE with Docker's message
   */
  async assertFreeSpace(percent: number): Promise<void> {
    if (percent === 0) return;
    const s = await this.#target.status();
    const minData = Math.floor((s.totalDataBlocks * percent) / 100);
    const freeData = s.totalDataBlocks - s.usedDataBlocks;
    if (freeData < minData) {
      throw new PoolError(
        "ERR_POOL_NO_SPACE",
        `devmapper: Thin Pool has ${freeData} free data blocks which is less than minimum required ${minData} free data blocks. Create more free space in thin pool or use dm.min_free_space option to change behavior`,
      );
    }
    const minMeta = Math.floor((s.totalMetadataBlocks * percent) / 100);
    const freeMeta = s.totalMetadataBlocks - s.usedMetadataBlocks;
    if (freeMeta < minMeta) {
      throw new PoolError(
        "ERR_POOL_NO_SPACE",
        `devmapper: Thin Pool has ${freeMeta} free metadata blocks which is less than minimum required ${minMeta} free metadata blocks. Create more free metadata space in thin pool or use dm.min_free_space option to change behavior`,
      );
    }
  }
}
