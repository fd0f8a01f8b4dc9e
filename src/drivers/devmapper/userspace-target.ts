/**
 * The `userspace` target: strata's own dm-thin-format pool (`src/thinpool`),
 * served by `strata-poold`. Thin devices become loop devices over the
 * daemon's FUSE files. The daemon outlives the process; {@link close} stops
 * it only when no thin device of the pool is active (another strata process
 * may be using one).
 *
 * @module
 */
import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { PoolError, ThinPool, loopsBackedUnder } from "../../thinpool/index.js";
import { statfs } from "../../native.js";
import { type PoolSpec, type PoolTarget, TargetError, type TargetFiles, type TargetStatus } from "./pool.js";

function wrap(err: unknown): never {
  if (err instanceof PoolError) {
    const code =
      err.code === "ERR_POOL_BUSY"
        ? "ERR_DM_BUSY"
        : err.code === "ERR_POOL_DEVICE_EXISTS"
          ? "ERR_DM_EXISTS"
          : err.code === "ERR_POOL_DEVICE_NOT_FOUND"
            ? "ERR_DM_NOT_FOUND"
            : err.code === "ERR_POOL_NO_SPACE"
              ? "ERR_POOL_NO_SPACE"
              : "ERR_DM_TARGET";
    throw new TargetError(code, err.message, err.errno, { cause: err });
  }
  throw err;
}

/** The userspace thin-pool target. */
export class UserspaceTarget implements PoolTarget {
  readonly kind = "userspace";
  #pool: ThinPool | undefined;
  #spec: PoolSpec | undefined;
  #blockSize = 0;

  get #p(): ThinPool {
    if (!this.#pool) throw new TargetError("ERR_DM_TARGET", "Cannot use the thin pool: not open");
    return this.#pool;
  }

  /** The pool directory: dm.thinpooldev, or `<loopDir>` holding the sparse data/metadata files. */
  static dirOf(spec: PoolSpec): string {
    return spec.external ? spec.name : spec.loopDir;
  }

  async open(spec: PoolSpec): Promise<void> {
    this.#spec = spec;
    const dir = UserspaceTarget.dirOf(spec);
    try {
      if (existsSync(join(dir, "pool.json"))) {
        this.#pool = await ThinPool.open(dir);
        const info = await this.#pool.info();
        // Docker grows an existing loop data file when asked for more; it never shrinks it.
        if (!spec.external && !spec.dataDev && spec.dataSize > info.nrDataBlocks * info.dataBlockSize) {
          await this.#pool.grow(spec.dataSize);
        }
      } else if (spec.external) {
        throw new TargetError(
          "ERR_DM_NOT_FOUND",
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
    } catch (err) {
      wrap(err);
    }
  }

  async message(msg: string): Promise<void> {
    await this.#p.message(msg).catch(wrap);
  }

  async status(): Promise<TargetStatus> {
    const s = await this.#p.status().catch(wrap);
    return {
      transactionId: s.transactionId,
      usedMetadataBlocks: s.usedMetadataBlocks,
      totalMetadataBlocks: s.totalMetadataBlocks,
      usedDataBlocks: s.usedDataBlocks,
      totalDataBlocks: s.totalDataBlocks,
      dataBlockSize: this.#blockSize,
      mode: s.mode,
    };
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

  async activate(_name: string, deviceId: number, size: number): Promise<string> {
    return this.#p.activate(deviceId, size).catch(wrap);
  }

  async deactivate(_name: string, deviceId: number, opts: { deferred: boolean }): Promise<void> {
    try {
      await this.#p.deactivate(deviceId);
    } catch (err) {
      // The loop device was detached with autoclear semantics (LOOP_CLR_FD on a busy
      // loop): it goes away when its last user closes it. That is deferred removal.
      if (opts.deferred && err instanceof PoolError && err.code === "ERR_POOL_BUSY") return;
      wrap(err);
    }
  }

  activeDevice(_name: string, deviceId: number): Promise<string | null> {
    return this.#p.deviceOf(deviceId).catch(wrap);
  }

  async activeDevices(): Promise<string[]> {
    const mnt = this.#p.layout.mountPoint;
    return (await loopsBackedUnder(mnt)).map((l) => l.backingFile.slice(mnt.length + 1));
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
    await this.#p.commit().catch(wrap);
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
    if (opts.removePool && (await this.activeDevices()).length === 0) {
      await this.#pool.close().catch(wrap);
    }
    this.#pool = undefined;
  }

  /** Free bytes on the filesystem holding the data file (caps "Available" for loop files). */
  async backingFree(): Promise<number> {
    const s = await statfs(this.#p.layout.dir);
    return s.bavail * s.frsize;
  }
}
