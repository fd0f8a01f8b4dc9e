/**
 * DeviceSet: Docker's devicemapper device management on a thin pool. Every
 * layer is a thin device: a layer without parent is a snapshot of the base
 * device (formatted once), every other layer a snapshot of its parent.
 * Devices are activated only while mounted.
 *
 * State lives on disk (see `metadata.ts`) and is read under the global lock
 * each time, so several strata processes can share one DeviceSet. The parts
 * get what they need passed in: transactions (`transactions.ts`), device
 * creation (`provisioning.ts`), the base device (`base-device.ts`), mounts
 * (`device-mounts.ts`) and deletion (`deletion.ts`); none of them knows the
 * DeviceSet.
 *
 * @module
 */
import { mkdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { AlreadyExistsError, InvalidArgumentError, NotSupportedError } from "../../errors.js";
import type { PoolStatus } from "../../thinpool/index.js";
import { mountedAt, mountPoints, readMountinfo } from "../../util/mountinfo.js";
import { setupBaseDevice } from "./base-device.js";
import { DeviceMounts } from "./device-mounts.js";
import { Deletion } from "./deletion.js";
import { freeze, growFilesystem, mountOptions, probeFs } from "./filesystem.js";
import { DeviceLocks, GlobalLock } from "./locks.js";
import { type DeviceInfo, MetadataStore } from "./metadata.js";
import { devicePrefix, type DeviceNamer, deviceNamer } from "./names.js";
import type { DmConfig } from "./options.js";
import type { PoolTarget, TargetFiles } from "./pool.js";
import { Provisioner } from "./provisioning.js";
import { Transactions } from "./transactions.js";

/** Paths of a DeviceSet home. */
export interface DeviceSetPaths {
  home: string;
  metadataDir: string;
  loopDir: string;
  mntDir: string;
}

/** What `status()` reports (Docker's DeviceSet Status, raw numbers). */
export interface DeviceSetStatus {
  poolName: string;
  pool: PoolStatus;
  dataBlockSize: number;
  baseDeviceSize: number;
  backingFilesystem: string;
  udevSyncSupported: boolean;
  files: TargetFiles;
  /** Free bytes on the filesystem under the loop files, or null without loop files. */
  backingFree: number | null;
  minFreeSpacePercent: number;
  deferredRemoval: boolean;
  deferredDeletion: boolean;
  deferredDeletedDevices: number;
  libraryVersion: string;
}

/** A mounted device that no longer works (its block device lost the pool). */
export interface StaleMount {
  hash: string;
  mountPoint: string;
  reason: string;
}

/** The DeviceSet. Create with {@link DeviceSet.open}. */
export class DeviceSet {
  readonly paths: DeviceSetPaths;
  /** The persisted device metadata (read it; the DeviceSet writes it). */
  readonly md: MetadataStore;
  readonly #config: DmConfig;
  readonly #target: PoolTarget;
  readonly #poolName: string;
  readonly #nameOf: DeviceNamer;
  readonly #tx: Transactions;
  readonly #provisioner: Provisioner;
  readonly #global: GlobalLock;
  readonly #deviceLocks = new DeviceLocks();
  #mounts: DeviceMounts | undefined;
  #deletions: Deletion | undefined;
  #deferredRemoval = false;
  #deferredDeletion = false;
  #udevSync = false;
  #deletionTimer: NodeJS.Timeout | undefined;

  private constructor(config: DmConfig, target: PoolTarget, paths: DeviceSetPaths, prefix: string) {
    this.#config = config;
    this.#target = target;
    this.paths = paths;
    this.#poolName = config.thinPoolDev || `${prefix}-pool`;
    this.#nameOf = deviceNamer(prefix);
    this.md = new MetadataStore(paths.metadataDir);
    this.#tx = new Transactions(this.md, target);
    this.#provisioner = new Provisioner(this.md, this.#tx, target);
    this.#global = new GlobalLock(join(paths.home, "lock"));
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
    await ds.#global.with(async () => {
      await target.open(ds.#spec());
      try {
        await ds.#start();
      } catch (err) {
        // Nothing half open: stop the pool again (it stays when a device of it is in use).
        await target.close({ removePool: config.thinPoolDev === "" }).catch(() => {});
        throw err;
      }
    });
    if (ds.#deferredDeletion) {
      ds.#deletionTimer = setInterval(() => void ds.cleanupDeleted().catch(() => {}), 30_000);
      ds.#deletionTimer.unref();
    }
    return ds;
  }

  /** Start-up under the global lock: udev sync, deferred removal/deletion, rollback, base device. */
  async #start(): Promise<void> {
    const target = this.#target;
    const config = this.#config;
    this.#udevSync = await target.udevSyncSupported();
    if (!this.#udevSync && !config.overrideUdevSyncCheck) {
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
    this.#deferredRemoval = config.deferredRemoval ?? deferredOk;
    this.#deferredDeletion = this.#deferredRemoval && (config.deferredDeletion ?? deferredOk);
    this.#mounts = new DeviceMounts({
      md: this.md,
      target,
      nameOf: this.#nameOf,
      deviceLocks: this.#deviceLocks,
      global: this.#global,
      mntDir: this.paths.mntDir,
      mountOpts: config.mountOpts,
      xfsNospaceMaxRetries: config.xfsNospaceMaxRetries,
      deferredRemoval: this.#deferredRemoval,
    });
    this.#deletions = new Deletion({
      md: this.md,
      tx: this.#tx,
      target,
      nameOf: this.#nameOf,
      deviceLocks: this.#deviceLocks,
      global: this.#global,
      blkDiscard: config.blkDiscard,
      deferredDeletion: this.#deferredDeletion,
    });
    await this.#tx.recover();
    await setupBaseDevice({
      md: this.md,
      tx: this.#tx,
      provisioner: this.#provisioner,
      target,
      nameOf: this.#nameOf,
      poolName: this.#poolName,
      externalPool: config.thinPoolDev !== "",
      baseSize: config.baseSize,
      fs: config.fs,
      mkfsArgs: config.mkfsArgs,
      mountOpts: config.mountOpts,
      growMountPoint: this.#growMountPoint,
    });
  }

  get #growMountPoint(): string {
    return join(this.paths.home, "grow-mnt");
  }

  #spec() {
    const c = this.#config;
    return {
      name: this.#poolName,
      loopDir: c.thinPoolDev && this.#target.kind === "userspace" ? c.thinPoolDev : this.paths.loopDir,
      dataSize: c.loopDataSize,
      metadataSize: c.loopMetadataSize,
      blockSize: c.blockSize,
      dataDev: c.dataDev,
      metadataDev: c.metadataDev,
      external: c.thinPoolDev !== "",
    };
  }

  get #m(): DeviceMounts {
    return this.#mounts!; // set by #start, before open() returns
  }

  get #deletion(): Deletion {
    return this.#deletions!; // set by #start, before open() returns
  }

  /** Thin device name of `hash` (`<prefix>-<hash>`, `<prefix>-base` for ""). */
  nameOf(hash: string): string {
    return this.#nameOf(hash);
  }

  /** Where device `hash` is mounted while in use. */
  mountPoint(hash: string): string {
    return this.#m.mountPoint(hash);
  }

  /**
   * Docker's AddDevice: a snapshot of `baseHash` ("" = the base device) named
   * `hash`, of `size` bytes (default: the origin's; never smaller).
   * @throws ERR_LAYER_EXISTS, ERR_LAYER_NOT_FOUND, ERR_INVALID_ARGUMENT, ERR_POOL_NO_SPACE
   */
  async addDevice(hash: string, baseHash: string, size?: number): Promise<void> {
    await this.#deviceLocks.with([baseHash, hash], () =>
      this.#global.with(async () => {
        const origin = await this.md.live(baseHash);
        if (await this.md.device(hash))
          throw new AlreadyExistsError("ERR_LAYER_EXISTS", `Cannot create layer: exists "${hash}"`);
        const newSize = size ?? origin.size;
        if (newSize < origin.size) {
          throw new InvalidArgumentError(
            "ERR_INVALID_ARGUMENT",
            `Cannot create layer: size ${newSize} is smaller than the base device size ${origin.size} "${hash}"`,
          );
        }
        await this.#provisioner.assertFreeSpace(this.#config.minFreeSpacePercent);
        const info = await this.#snapshot(hash, origin, newSize);
        if (newSize > origin.size) await this.#growNew(info);
        info.initialized = true;
        await this.md.saveDevice(info);
      }),
    );
  }

  /** create_snap of an origin, suspending it (and freezing its filesystem) when it is active. */
  async #snapshot(hash: string, origin: DeviceInfo, size: number): Promise<DeviceInfo> {
    const target = this.#target;
    const originName = this.#nameOf(origin.hash);
    const active = await target.activeDevice(originName, origin.device_id);
    // The base device is never mounted under mnt/ (only briefly, to grow it).
    const mp = active && origin.hash ? await mountedAt(this.mountPoint(origin.hash)) : null;
    // The kernel's suspend freezes the filesystem itself; the userspace target only flushes.
    const freezes = mp !== null && target.kind === "userspace";
    if (freezes) await freeze(mp, true);
    try {
      if (active) await target.suspend(originName, origin.device_id);
      try {
        return await this.#provisioner.create(hash, size, (id) =>
          target.message(`create_snap ${id} ${origin.device_id}`),
        );
      } finally {
        if (active) await target.resume(originName, origin.device_id);
      }
    } finally {
      if (freezes) await freeze(mp, false);
    }
  }

  /** Grows the filesystem of a new device made larger than its origin (storage-opt size). */
  async #growNew(info: DeviceInfo): Promise<void> {
    const name = this.#nameOf(info.hash);
    const dev = await this.#target.activate(name, info.device_id, info.size);
    try {
      await growFilesystem(await probeFs(dev), dev, this.#growMountPoint, this.#config.mountOpts);
    } finally {
      await this.#target.deactivate(name, info.device_id, { deferred: false });
    }
  }

  /**
   * Docker's DeleteDevice (see `deletion.ts`).
   * @throws ERR_POOL_BUSY when the device stays busy and is not deferred
   */
  deleteDevice(hash: string, sync = false): Promise<void> {
    return this.#deletion.delete(hash, sync);
  }

  /** Retries the deletion of devices marked deleted; returns how many remain. */
  cleanupDeleted(): Promise<number> {
    return this.#deletion.cleanupDeleted();
  }

  /** Activates and mounts device `hash` at {@link mountPoint}; returns its `rootfs/`. @throws ERR_LAYER_NOT_FOUND */
  mount(hash: string): Promise<string> {
    return this.#m.mount(hash);
  }

  /**
   * Activates device `hash` for a client that mounts it itself (containerd):
   * its block device, filesystem type and mount options. `close` leaves it
   * active when its hash is in `keep`.
   * @throws ERR_LAYER_NOT_FOUND
   */
  async activateForClient(hash: string): Promise<{ device: string; fs: string; options: string[] }> {
    return this.#deviceLocks.with([hash], () =>
      this.#global.with(async () => {
        const info = await this.md.live(hash);
        const device = await this.#target.activate(this.#nameOf(hash), info.device_id, info.size);
        const fs = (await probeFs(device)) || (await this.md.deviceSet()).BaseDeviceFilesystem;
        return { device, fs, options: mountOptions(fs, this.#config.mountOpts).split(",").filter(Boolean) };
      }),
    );
  }

  /** Unmounts device `hash` (lazily) and deactivates it. Not mounted: only deactivates. */
  unmount(hash: string): Promise<void> {
    return this.#m.unmount(hash);
  }

  /**
   * Mounted devices whose block device no longer reaches the pool (the
   * userspace pool's daemon died under them): every I/O in them fails until
   * they are unmounted and mounted again. Read from the mount table, so a
   * mount by any process counts.
   */
  async staleMounts(): Promise<StaleMount[]> {
    const out: StaleMount[] = [];
    const prefix = `${this.paths.mntDir}/`;
    for (const m of await readMountinfo()) {
      if (!m.mountPoint.startsWith(prefix)) continue;
      const hash = m.mountPoint.slice(prefix.length);
      if (hash.includes("/")) continue;
      const dev = await blockDeviceOf(m.device);
      const reason = dev ? await this.#target.lostDevice(dev) : null;
      if (reason) out.push({ hash, mountPoint: m.mountPoint, reason });
    }
    return out;
  }

  /** Docker's DeviceSet Status, as numbers. */
  async status(): Promise<DeviceSetStatus> {
    const t = this.#target;
    const [pool, files, meta, devices, lib, backingFree] = await Promise.all([
      t.status(),
      t.files(),
      this.md.deviceSet(),
      this.md.devices(),
      t.libraryVersion(),
      t.backingFree(),
    ]);
    return {
      poolName: this.#poolName,
      pool,
      dataBlockSize: t.dataBlockSize(),
      baseDeviceSize: devices.find((d) => d.hash === "")?.size ?? 0,
      backingFilesystem: meta.BaseDeviceFilesystem,
      udevSyncSupported: this.#udevSync,
      files,
      backingFree,
      minFreeSpacePercent: this.#config.minFreeSpacePercent,
      deferredRemoval: this.#deferredRemoval,
      deferredDeletion: this.#deferredDeletion,
      deferredDeletedDevices: devices.filter((d) => d.deleted).length,
      libraryVersion: lib,
    };
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
    const target = this.#target;
    await this.#global.with(async () => {
      await this.md.saveDeviceSet(await this.md.deviceSet());
      const table = await mountPoints();
      for (const d of await this.md.devices()) {
        if (d.hash && (keep.has(d.hash) || table.has(this.mountPoint(d.hash)))) continue;
        if (await target.activeDevice(this.#nameOf(d.hash), d.device_id)) {
          await target.deactivate(this.#nameOf(d.hash), d.device_id, { deferred: this.#deferredRemoval });
        }
      }
      await target.close({ removePool: this.#config.thinPoolDev === "" });
    });
  }
}

/** `/dev/<name>` of a block device given as `major:minor` (from /sys/dev/block), or null. */
async function blockDeviceOf(majorMinor: string): Promise<string | null> {
  const link = await readlink(`/sys/dev/block/${majorMinor}`).catch(() => null);
  return link ? `/dev/${link.split("/").pop()}` : null;
}
