/**
 * DeviceSet: Docker's devicemapper device management on a thin pool. Every
 * layer is a thin device: a layer without parent is a snapshot of the base
 * device (formatted once), every other layer a snapshot of its parent.
 * Devices are activated only while mounted.
 *
 * State lives on disk (see `metadata.ts`) and is read under the global lock
 * each time, so several strata processes can share one DeviceSet.
 *
 * @module
 */
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  NotSupportedError,
  StrataError,
} from "../../errors.js";
import { C, mount, umount2 } from "../../native.js";
import { BaseDevice } from "./base-device.js";
import { DeviceMounts } from "./device-mounts.js";
import { discard, freeze, growFs, growsOnline, mountOptions, probeFs } from "./filesystem.js";
import { DeviceLocks, GlobalLock } from "./locks.js";
import { type DeviceInfo, fileOf, MAX_DEVICE_ID, MetadataStore } from "./metadata.js";
import type { DmConfig } from "./options.js";
import { isBusy, isExists, type PoolSpec, type PoolTarget } from "./pool.js";
import { Transactions } from "./transactions.js";
import { mountedAt, mountPoints } from "../../util/mountinfo.js";

/** Docker's default base device size: 10 GiB. */
export const DEFAULT_BASE_SIZE = 10 * 1024 ** 3;

/** Paths of a DeviceSet home. */
export interface DeviceSetPaths {
  home: string;
  metadataDir: string;
  loopDir: string;
  mntDir: string;
}

/** Docker's device prefix from the home's dev:inode, old 12/20-bit major/minor encoding. */
export async function devicePrefix(home: string): Promise<string> {
  const st = await stat(home);
  const dev = st.dev;
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00);
  return `strata-${major}:${minor}-${st.ino}`;
}

/** The DeviceSet. Create with {@link DeviceSet.open}. */
export class DeviceSet {
  readonly config: DmConfig;
  readonly target: PoolTarget;
  readonly paths: DeviceSetPaths;
  readonly prefix: string;
  readonly poolName: string;
  readonly md: MetadataStore;
  readonly tx: Transactions;
  readonly global: GlobalLock;
  readonly deviceLocks = new DeviceLocks();
  readonly base: BaseDevice;
  /** get/put: activation with mount, unmount with deactivation. */
  readonly mounts: DeviceMounts;
  /** Resolved at open: dm.use_deferred_removal / dm.use_deferred_deletion (auto = supported). */
  deferredRemoval = false;
  deferredDeletion = false;
  udevSync = false;
  #deletionTimer: NodeJS.Timeout | undefined;

  private constructor(config: DmConfig, target: PoolTarget, paths: DeviceSetPaths, prefix: string) {
    this.config = config;
    this.target = target;
    this.paths = paths;
    this.prefix = prefix;
    this.poolName = config.thinPoolDev || `${prefix}-pool`;
    this.md = new MetadataStore(paths.metadataDir);
    this.tx = new Transactions(this.md, target);
    this.global = new GlobalLock(join(paths.home, "lock"));
    this.base = new BaseDevice(this);
    this.mounts = new DeviceMounts(this);
  }

  /**
   * Opens (creating when needed) the DeviceSet in `home`: the pool, rollback
   * of an open transaction, the base device.
   * @throws NotSupportedError without udev sync (unless dm.override_udev_sync_check)
   */
  static async open(home: string, config: DmConfig, target: PoolTarget): Promise<DeviceSet> {
    const paths: DeviceSetPaths = {
      home,
      metadataDir: join(home, "metadata"),
      loopDir: join(home, "devicemapper"),
      mntDir: join(home, "mnt"),
    };
    for (const d of [home, paths.metadataDir, paths.loopDir, paths.mntDir])
      await mkdir(d, { recursive: true, mode: 0o700 });
    const ds = new DeviceSet(config, target, paths, await devicePrefix(home));
    await ds.global.with(async () => {
      await target.open(ds.#spec());
      try {
        await ds.#start();
      } catch (err) {
        // Nothing half open: stop the pool again (it stays when a device of it is in use).
        await target.close({ removePool: config.thinPoolDev === "" }).catch(() => {});
        throw err;
      }
    });
    if (ds.deferredDeletion) {
      ds.#deletionTimer = setInterval(() => void ds.cleanupDeleted().catch(() => {}), 30_000);
      ds.#deletionTimer.unref();
    }
    return ds;
  }

  /** Start-up checks under the global lock: udev sync, deferred removal/deletion, rollback, base device. */
  async #start(): Promise<void> {
    const { target, config } = this;
    this.udevSync = await target.udevSyncSupported();
    if (!this.udevSync && !config.overrideUdevSyncCheck) {
      throw new NotSupportedError(
        "ERR_NOT_SUPPORTED",
        "Cannot start devmapper: udev sync is not supported; set dm.override_udev_sync_check=true to run anyway",
      );
    }
    const deferredOk = await target.deferredRemovalSupported();
    if (config.deferredRemoval === true && !deferredOk) {
      throw new InvalidArgumentError(
        "ERR_INVALID_OPTION",
        "Cannot start devmapper: dm.use_deferred_removal is not supported by the target",
      );
    }
    this.deferredRemoval = config.deferredRemoval ?? deferredOk;
    this.deferredDeletion = this.deferredRemoval && (config.deferredDeletion ?? deferredOk);
    await this.tx.recover();
    await this.base.setup();
  }

  #spec(): PoolSpec {
    return {
      name: this.poolName,
      loopDir:
        this.config.thinPoolDev && this.target.kind === "userspace" ? this.config.thinPoolDev : this.paths.loopDir,
      dataSize: this.config.loopDataSize,
      metadataSize: this.config.loopMetadataSize,
      blockSize: this.config.blockSize,
      dataDev: this.config.dataDev,
      metadataDev: this.config.metadataDev,
      external: this.config.thinPoolDev !== "",
    };
  }

  /** Thin device name: `<prefix>-<hash>`, `<prefix>-base` for the base device. */
  nameOf(hash: string): string {
    return `${this.prefix}-${fileOf(hash)}`;
  }

  /** Takes the next free 24-bit id after `next_device_id` (wrapping), and persists the new cursor. */
  async allocateId(): Promise<number> {
    const meta = await this.md.deviceSet();
    const used = new Set((await this.md.devices()).map((d) => d.device_id));
    let id = meta.next_device_id;
    for (let i = 0; i <= MAX_DEVICE_ID; i++) {
      id = (id + 1) & MAX_DEVICE_ID;
      if (id !== 0 && !used.has(id)) {
        await this.md.saveDeviceSet({ ...meta, next_device_id: id });
        return id;
      }
    }
    throw new StrataError("ERR_POOL_NO_SPACE", "Cannot create device: all 2^24 thin device ids are in use");
  }

  /** Creates thin device metadata through `send(id)` inside a transaction, retrying ids the pool has taken. */
  async createRegistered(hash: string, size: number, send: (id: number) => Promise<void>): Promise<DeviceInfo> {
    for (;;) {
      const id = await this.allocateId();
      try {
        return await this.tx.run(hash, id, async () => {
          await send(id);
          const info: DeviceInfo = { hash, device_id: id, size, transaction_id: 0, initialized: false, deleted: false };
          info.transaction_id = (await this.md.transaction())?.open_transaction_id ?? 0;
          await this.md.saveDevice(info);
          return info;
        });
      } catch (err) {
        if (isExists(err)) continue; // Docker: the pool already has that id; take the next one
        throw err;
      }
    }
  }

  /** Refuses new devices when free data or metadata blocks fall below dm.min_free_space (Docker's message). */
  async checkFreeSpace(): Promise<void> {
    const pct = this.config.minFreeSpacePercent;
    if (pct === 0) return;
    const s = await this.target.status();
    const minData = Math.floor((s.totalDataBlocks * pct) / 100);
    const freeData = s.totalDataBlocks - s.usedDataBlocks;
    if (freeData < minData) {
      throw new StrataError(
        "ERR_POOL_NO_SPACE",
        `devmapper: Thin Pool has ${freeData} free data blocks which is less than minimum required ${minData} free data blocks. Create more free space in thin pool or use dm.min_free_space option to change behavior`,
      );
    }
    const minMeta = Math.floor((s.totalMetadataBlocks * pct) / 100);
    const freeMeta = s.totalMetadataBlocks - s.usedMetadataBlocks;
    if (freeMeta < minMeta) {
      throw new StrataError(
        "ERR_POOL_NO_SPACE",
        `devmapper: Thin Pool has ${freeMeta} free metadata blocks which is less than minimum required ${minMeta} free metadata blocks. Create more free metadata space in thin pool or use dm.min_free_space option to change behavior`,
      );
    }
  }

  /** A device that exists and is not marked deleted. @throws ERR_LAYER_NOT_FOUND */
  async lookup(hash: string): Promise<DeviceInfo> {
    const d = await this.md.device(hash);
    if (!d) throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot find device: unknown layer "${hash || "base"}"`);
    if (d.deleted)
      throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot use device: marked for deferred deletion "${hash}"`);
    return d;
  }

  /**
   * Docker's AddDevice: a snapshot of `baseHash` ("" = the base device) named
   * `hash`, of `size` bytes (default: the origin's; never smaller).
   */
  async addDevice(hash: string, baseHash: string, size?: number): Promise<void> {
    await this.deviceLocks.with([baseHash, hash], () =>
      this.global.with(async () => {
        const origin = await this.lookup(baseHash);
        if (await this.md.device(hash))
          throw new AlreadyExistsError("ERR_LAYER_EXISTS", `Cannot create layer: exists "${hash}"`);
        const newSize = size ?? origin.size;
        if (newSize < origin.size) {
          throw new InvalidArgumentError(
            "ERR_INVALID_ARGUMENT",
            `Cannot create layer: size ${newSize} is smaller than the base device size ${origin.size} "${hash}"`,
          );
        }
        await this.checkFreeSpace();
        const info = await this.#snapshot(hash, origin, newSize);
        if (newSize > origin.size) await this.#growNew(info);
        info.initialized = true;
        await this.md.saveDevice(info);
      }),
    );
  }

  /** create_snap of an origin, suspending it (and freezing its filesystem) when it is active. */
  async #snapshot(hash: string, origin: DeviceInfo, size: number): Promise<DeviceInfo> {
    const originName = this.nameOf(origin.hash);
    const active = await this.target.activeDevice(originName, origin.device_id);
    // The base device is never mounted under mnt/ (only briefly, to grow it).
    const mp = active && origin.hash ? await mountedAt(join(this.paths.mntDir, origin.hash)) : null;
    // The kernel's suspend freezes the filesystem itself; the userspace target only flushes.
    if (mp && this.target.kind === "userspace") await freeze(mp, true);
    try {
      if (active) await this.target.suspend(originName, origin.device_id);
      try {
        return await this.createRegistered(hash, size, (id) =>
          this.target.message(`create_snap ${id} ${origin.device_id}`),
        );
      } finally {
        if (active) await this.target.resume(originName, origin.device_id);
      }
    } finally {
      if (mp && this.target.kind === "userspace") await freeze(mp, false);
    }
  }

  /** Grows the filesystem of a new device made larger than its origin (storage-opt size). */
  async #growNew(info: DeviceInfo): Promise<void> {
    const name = this.nameOf(info.hash);
    const dev = await this.target.activate(name, info.device_id, info.size);
    const mp = join(this.paths.home, "grow-mnt");
    await mkdir(mp, { recursive: true });
    const fs = await probeFs(dev);
    try {
      if (!growsOnline(fs)) {
        await growFs(fs, dev, mp);
        return;
      }
      await mount(dev, mp, fs, 0, mountOptions(fs, this.config.mountOpts) || null);
      try {
        await growFs(fs, dev, mp);
      } finally {
        await umount2(mp, C.MNT_DETACH);
      }
    } finally {
      await this.target.deactivate(name, info.device_id, { deferred: false });
    }
  }

  /**
   * Docker's DeleteDevice: discard (dm.blkdiscard), deactivate, `delete`. When
   * the pool says busy and deferred deletion is on (and not `sync`), the device
   * is marked deleted and retried later.
   */
  async deleteDevice(hash: string, sync = false): Promise<void> {
    await this.deviceLocks.with([hash], () =>
      this.global.with(async () => {
        const info = await this.md.device(hash);
        if (!info) return;
        await this.#delete(info, sync);
      }),
    );
  }

  async #delete(info: DeviceInfo, sync: boolean): Promise<void> {
    const name = this.nameOf(info.hash);
    if (this.config.blkDiscard && !info.deleted) {
      const dev = await this.target.activate(name, info.device_id, info.size);
      await discard(dev).catch(() => {}); // a busy device (leaked mount) cannot be discarded; delete still frees it
    }
    await this.target.deactivate(name, info.device_id, { deferred: this.deferredDeletion && !sync }).catch((err) => {
      if (!isBusy(err)) throw err;
    });
    const tx = await this.tx.open(info.hash, info.device_id);
    try {
      await this.target.message(`delete ${info.device_id}`);
    } catch (err) {
      if (isBusy(err) && this.deferredDeletion && !sync) {
        info.deleted = true;
        await this.md.saveDevice(info);
        await this.tx.close(tx);
        return;
      }
      await this.md.clearTransaction();
      throw new FailedPreconditionError("ERR_DM_BUSY", `Cannot remove layer: device busy "${info.hash}"`, {
        cause: err,
      });
    }
    await this.md.removeDevice(info.hash);
    await this.tx.close(tx);
  }

  /** Retries the deletion of devices marked deleted; returns how many remain. */
  async cleanupDeleted(): Promise<number> {
    const doomed = await this.global.with(async () => (await this.md.devices()).filter((d) => d.deleted));
    // The global lock is dropped between devices (Docker's TestDevmapperLockReleasedDeviceDeletion).
    for (const d of doomed) {
      await this.deviceLocks.with([d.hash], () =>
        this.global.with(async () => {
          const cur = await this.md.device(d.hash);
          if (cur?.deleted) await this.#delete(cur, false);
        }),
      );
    }
    return (await this.md.devices()).filter((d) => d.deleted).length;
  }

  /** Number of devices marked for deferred deletion. */
  async deletedCount(): Promise<number> {
    return (await this.md.devices()).filter((d) => d.deleted).length;
  }

  /**
   * Docker's Shutdown, for one process: saves the DeviceSet metadata first,
   * deactivates every device that is active but not mounted (a mounted one is
   * in use: the layer store's holds, such as `strata mount`, outlive the
   * process), the base included, and closes the pool when strata created it
   * and nothing of it stays active. Devices named in `keep` (handed to a
   * client that mounts them itself) stay active too.
   */
  async close(keep: ReadonlySet<string> = new Set()): Promise<void> {
    if (this.#deletionTimer) clearInterval(this.#deletionTimer);
    this.#deletionTimer = undefined;
    await this.global.with(async () => {
      await this.md.saveDeviceSet(await this.md.deviceSet());
      const table = await mountPoints();
      for (const d of await this.md.devices()) {
        if (d.hash && (keep.has(d.hash) || table.has(join(this.paths.mntDir, d.hash)))) continue;
        if (await this.target.activeDevice(this.nameOf(d.hash), d.device_id)) {
          await this.target.deactivate(this.nameOf(d.hash), d.device_id, { deferred: this.deferredRemoval });
        }
      }
      await this.target.close({ removePool: this.config.thinPoolDev === "" });
    });
  }
}
