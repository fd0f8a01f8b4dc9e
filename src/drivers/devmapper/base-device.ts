/**
 * The base device (Docker's setupBaseImage): the thin device every layer
 * without parent snapshots. Created once and formatted (dm.fs, dm.mkfsarg);
 * on each start its filesystem UUID is checked against the saved one (a
 * different pool is refused) and it is grown when dm.basesize asks for more
 * (never shrunk).
 *
 * @module
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../../errors.js";
import { C, mount, umount2 } from "../../native.js";
import type { DeviceSet } from "./device-set.js";
import { DEFAULT_BASE_SIZE } from "./device-set.js";
import { defaultFs, fsUUID, growFs, growsOnline, makeFs, mountOptions, probeFs } from "./filesystem.js";
import type { DeviceInfo } from "./metadata.js";
import { isMissing } from "./pool.js";

/** Base device management for one DeviceSet. Every method runs under the DeviceSet's global lock. */
export class BaseDevice {
  readonly #ds: DeviceSet;

  constructor(ds: DeviceSet) {
    this.#ds = ds;
  }

  /** Verifies, grows, or (re)creates the base device. */
  async setup(): Promise<void> {
    const ds = this.#ds;
    const base = await ds.md.device("");
    if (base && base.initialized && !base.deleted) {
      await this.#verify(base);
      return;
    }
    if (base) {
      // A base that never finished initializing: delete it and start again (Docker does the same).
      await ds.tx.run("", base.device_id, async () => {
        await ds.target.deactivate(ds.nameOf(""), base.device_id, { deferred: false }).catch(() => {});
        await ds.target.message(`delete ${base.device_id}`).catch((err) => {
          if (!isMissing(err)) throw err;
        });
        await ds.md.removeDevice("");
      });
    }
    if (ds.config.thinPoolDev) await this.#checkEmptyPool();
    await this.#create();
  }

  /** Docker's checkThinPool: a user's pool must start empty (no used data blocks, transaction 0). */
  async #checkEmptyPool(): Promise<void> {
    const s = await this.#ds.target.status();
    if (s.usedDataBlocks !== 0 || s.transactionId !== 0) {
      throw new FailedPreconditionError(
        "ERR_DM_POOL_NOT_EMPTY",
        `Cannot use thin pool "${this.#ds.poolName}": it is not empty (${s.usedDataBlocks} data blocks used, transaction ${s.transactionId})`,
      );
    }
  }

  async #create(): Promise<void> {
    const ds = this.#ds;
    const size = ds.config.baseSize ?? DEFAULT_BASE_SIZE;
    const info = await ds.createRegistered("", size, (id) => ds.target.message(`create_thin ${id}`));
    const name = ds.nameOf("");
    const dev = await ds.target.activate(name, info.device_id, size);
    try {
      const fs = ds.config.fs || (await defaultFs());
      await makeFs(fs, dev, ds.config.mkfsArgs);
      const meta = await ds.md.deviceSet();
      await ds.md.saveDeviceSet({ ...meta, BaseDeviceFilesystem: fs, BaseDeviceUUID: await fsUUID(dev) });
      info.initialized = true;
      await ds.md.saveDevice(info);
    } finally {
      await ds.target.deactivate(name, info.device_id, { deferred: false });
    }
  }

  async #verify(base: DeviceInfo): Promise<void> {
    const ds = this.#ds;
    const name = ds.nameOf("");
    const meta = await ds.md.deviceSet();
    const want = ds.config.baseSize;
    if (want !== undefined && want < base.size) {
      throw new InvalidArgumentError(
        "ERR_INVALID_OPTION",
        `Cannot start devmapper: Base device size cannot be smaller than ${base.size} bytes "dm.basesize=${want}"`,
      );
    }
    const dev = await ds.target.activate(name, base.device_id, Math.max(base.size, want ?? 0));
    try {
      const uuid = await fsUUID(dev);
      if (meta.BaseDeviceUUID && uuid !== meta.BaseDeviceUUID) {
        throw new FailedPreconditionError(
          "ERR_DM_BASE_UUID",
          `Cannot start devmapper: Base Device UUID and Filesystem verification failed: current UUID "${uuid}" does not match the saved "${meta.BaseDeviceUUID}"; possibly using a different thin pool than last invocation`,
        );
      }
      const fs = meta.BaseDeviceFilesystem || (await probeFs(dev));
      if (ds.config.fs && fs && ds.config.fs !== fs) {
        // Docker ignores dm.fs (with a warning) once the base exists with another filesystem.
        process.emitWarning(`devmapper: base device already uses ${fs}; ignoring dm.fs=${ds.config.fs}`);
      }
      if (!meta.BaseDeviceUUID || !meta.BaseDeviceFilesystem) {
        await ds.md.saveDeviceSet({ ...meta, BaseDeviceUUID: uuid, BaseDeviceFilesystem: fs });
      }
      if (want !== undefined && want > base.size) {
        await this.#grow(dev, fs);
        base.size = want;
        await ds.md.saveDevice(base);
      }
    } finally {
      await ds.target.deactivate(name, base.device_id, { deferred: false });
    }
  }

  /** Mounts the (already larger) base device and grows its filesystem. */
  async #grow(dev: string, fs: string): Promise<void> {
    const mp = join(this.#ds.paths.home, "grow-mnt");
    if (!growsOnline(fs)) return growFs(fs, dev, mp);
    await mkdir(mp, { recursive: true });
    await mount(dev, mp, fs, 0, mountOptions(fs, this.#ds.config.mountOpts) || null);
    try {
      await growFs(fs, dev, mp);
    } finally {
      await umount2(mp, C.MNT_DETACH);
    }
  }
}
