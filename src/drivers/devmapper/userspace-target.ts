/**
 * The `userspace` target: strata's own dm-thin-format pool (`src/thinpool`),
 * served by `strata-poold`. Thin devices become loop devices over the
 * daemon's FUSE files. The daemon outlives the process; {@link close} stops
 * it only when no thin device of the pool is active (another strata process
 * may be using one). After a restart, data and metadata files smaller than
 * the options ask are grown (never shrunk), as Docker grows its loop files.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { PoolError, type PoolStatus, ThinPool, loopsBackedUnder } from "../../thinpool/index.js";
import { statfs } from "../../native.js";
import type { PoolSpec, PoolTarget, TargetFiles } from "./pool.js";

/** The userspace thin-pool target. */
export class UserspaceTarget implements PoolTarget {
  readonly kind = "userspace";
  #pool: ThinPool | undefined;
  #spec: PoolSpec | undefined;
  #blockSize = 0;

  get #p(): ThinPool {
    if (!this.#pool) throw new PoolError("ERR_POOL_TARGET", "Cannot use the thin pool: not open");
    return this.#pool;
  }

  /** The pool directory: dm.thinpooldev, or `<loopDir>` holding the sparse data/metadata files. */
  static dirOf(spec: PoolSpec): string {
    return spec.external ? spec.name : spec.loopDir;
  }

  async open(spec: PoolSpec): Promise<void> {
    this.#spec = spec;
    const dir = UserspaceTarget.dirOf(spec);
    if (existsSync(join(dir, "pool.json"))) {
      this.#pool = await ThinPool.open(dir);
      if (!spec.external && !spec.dataDev) await this.#grow(this.#pool, spec);
    } else if (spec.external) {
      throw new PoolError(
        "ERR_POOL_NOT_FOUND",
        `Cannot open the thin pool: no userspace pool in "${dir}" (dm.thinpooldev)`,
      );
    } else {
      this.#pool = await ThinPool.create({
        dir,
        dataSize: spec.dataSize,
        metadataSize: spec.metadataSize,
        blockSize: spec.blockSize,
        ...(spec.dataDev ? { dataFile: spec.dataDev, metadataFile: spec.metadataDev } : {}),
      });
    }
    this.#blockSize = (await this.#pool.info()).dataBlockSize;
  }

  /** Docker grows existing loop files when asked for more, data and metadata alike; it never shrinks them. */
  async #grow(pool: ThinPool, spec: PoolSpec): Promise<void> {
    const info = await pool.info();
    if (spec.dataSize > info.nrDataBlocks * info.dataBlockSize) await pool.grow(spec.dataSize);
    if (spec.metadataSize > info.nrMetadataBlocks * 4096) await pool.growMetadata(spec.metadataSize);
  }

  async message(msg: string): Promise<void> {
    await this.#p.message(msg);
  }

  status(): Promise<PoolStatus> {
    return this.#p.status();
  }

  dataBlockSize(): number {
    return this.#blockSize;
  }

  async files(): Promise<TargetFiles> {
    const l = this.#p.layout;
    const loop = !this.#spec?.dataDev && !this.#spec?.external;
    return {
      dataDevice: l.dataFile,
      metadataDevice: l.metadataFile,
      dataLoopFile: loop ? l.dataFile : "",
      metadataLoopFile: loop ? l.metadataFile : "",
    };
  }

  activate(_name: string, deviceId: number, size: number): Promise<string> {
    return this.#p.activate(deviceId, size);
  }

  async deactivate(_name: string, deviceId: number, opts: { deferred: boolean }): Promise<void> {
    try {
      await this.#p.deactivate(deviceId);
    } catch (err) {
      // The loop device was detached with autoclear semantics (LOOP_CLR_FD on a busy
      // loop): it goes away when its last user closes it. That is deferred removal.
      if (opts.deferred && err instanceof PoolError && err.code === "ERR_POOL_BUSY") return;
      throw err;
    }
  }

  activeDevice(_name: string, deviceId: number): Promise<string | null> {
    return this.#p.deviceOf(deviceId);
  }

  async activeDevices(): Promise<string[]> {
    const mnt = this.#p.layout.mountPoint;
    return (await loopsBackedUnder(mnt)).map((l) => l.backingFile.slice(mnt.length + 1));
  }

  lostDevice(blockDevice: string): Promise<string | null> {
    return this.#p.lostLoop(blockDevice);
  }

  /** Flushes the device and commits the pool, so the snapshot sees everything written so far. */
  async suspend(name: string, deviceId: number): Promise<void> {
    const dev = await this.activeDevice(name, deviceId);
    if (!dev) return;
    const fh = await open(dev, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.#p.commit();
  }

  async resume(): Promise<void> {}

  async deferredRemovalSupported(): Promise<boolean> {
    return true;
  }

  /** No udev is involved: loop device nodes exist (devtmpfs) when the ioctl returns. */
  async udevSyncSupported(): Promise<boolean> {
    return true;
  }

  async libraryVersion(): Promise<string> {
    return `strata userspace dm-thin (strata-poold, pid ${this.#p.pid})`;
  }

  async close(opts: { removePool: boolean }): Promise<void> {
    if (!this.#pool) return;
    if (opts.removePool && (await this.activeDevices()).length === 0) await this.#pool.close();
    this.#pool = undefined;
  }

  /** Free bytes on the filesystem holding the data file (caps "Available" for loop files). */
  async backingFree(): Promise<number> {
    const s = await statfs(this.#p.layout.dir);
    return s.bavail * s.frsize;
  }
}
