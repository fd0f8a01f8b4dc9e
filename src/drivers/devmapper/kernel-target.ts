/**
 * The `kernel` target: the kernel's dm-thin driven through `dmsetup`, as
 * containerd's devmapper snapshotter does. The pool is created over two loop
 * devices (sparse files) or dm.datadev/dm.metadatadev with the thin-pool
 * table Docker uses; thin devices are `thin` targets on it. dmsetup waits on
 * udev cookies itself when it was built with udev sync. After a restart,
 * loop files smaller than the options ask are grown: the file, the loop
 * device's capacity, then the pool's table is reloaded (the kernel extends
 * its metadata space map when it resumes on a larger metadata device).
 *
 * Command lines come from `dmsetup.ts`; dmsetup and losetup are passed in,
 * so the call sequences are unit-tested where the kernel target cannot run.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { open, stat } from "node:fs/promises";
import { loopsBackedUnder, parseStatus, PoolError, type PoolStatus } from "../../thinpool/index.js";
import { attachLoop, detachLoop, loopStatus, statfs } from "../../native.js";
import {
  createArgs,
  type Dmsetup,
  dmsetup,
  driverSupportsDeferred,
  losetupCapacity,
  messageArgs,
  parsePoolTable,
  parseVersion,
  poolTable,
  reloadArgs,
  removeArgs,
  type SetLoopCapacity,
  thinTable,
} from "./dmsetup.js";
import type { PoolSpec, PoolTarget, TargetFiles } from "./pool.js";

interface PoolLoops {
  data: string;
  metadata: string;
  dataFile: string;
  metadataFile: string;
}

/** Whether /dev/mapper/control exists and answers the version query. */
export async function kernelTargetAvailable(run: Dmsetup = dmsetup): Promise<{ ok: boolean; reason: string }> {
  try {
    await stat("/dev/mapper/control");
  } catch {
    return { ok: false, reason: "/dev/mapper/control does not exist" };
  }
  try {
    const v = parseVersion(await run(["version"]));
    if (v.driver[0] === 0) return { ok: false, reason: "the dm driver version query got no answer" };
    return { ok: true, reason: "" };
  } catch (err) {
    return { ok: false, reason: `dmsetup version failed: ${(err as Error).message}` };
  }
}

/** The kernel dm-thin target. */
export class KernelTarget implements PoolTarget {
  readonly kind = "kernel";
  readonly #run: Dmsetup;
  readonly #setCapacity: SetLoopCapacity;
  #spec: PoolSpec | undefined;
  #blockSectors = 128;
  #loops: PoolLoops | undefined;

  /**
   * @param run how dmsetup is run
   * @param logLevel dm.libdm_log_level (2 fatal … 7 debug): levels above 4 (notice) add
   *   one `-v` each to every dmsetup call, so libdm logs that much more to stderr
   * @param setCapacity how a loop device learns that its file grew
   */
  constructor(run: Dmsetup = dmsetup, logLevel = 2, setCapacity: SetLoopCapacity = losetupCapacity) {
    const verbose = Array.from({ length: Math.max(0, logLevel - 4) }, () => "-v");
    this.#run = verbose.length ? (args) => run([...verbose, ...args]) : run;
    this.#setCapacity = setCapacity;
  }

  get #pool(): string {
    if (!this.#spec) throw new PoolError("ERR_POOL_TARGET", "Cannot use the thin pool: not open");
    return this.#spec.name;
  }

  async open(spec: PoolSpec): Promise<void> {
    this.#spec = spec;
    let table: string | null = null;
    try {
      table = await this.#run(["table", spec.name]);
    } catch (err) {
      if (!(err instanceof PoolError) || err.code !== "ERR_POOL_DEVICE_NOT_FOUND") throw err;
    }
    if (table !== null) {
      this.#blockSectors = parsePoolTable(table).blockSectors;
      if (!spec.external && !spec.dataDev) {
        // After a restart: find the loop devices backing our sparse files (Docker's loadThinPoolLoopBackInfo).
        const loops = await loopsBackedUnder(spec.loopDir);
        const data = loops.find((l) => l.backingFile.endsWith("/data"));
        const meta = loops.find((l) => l.backingFile.endsWith("/metadata"));
        if (data && meta) {
          this.#loops = {
            data: data.device,
            metadata: meta.device,
            dataFile: data.backingFile,
            metadataFile: meta.backingFile,
          };
          await this.#growLoopFiles(spec, table, this.#loops);
        }
      }
      return;
    }
    if (spec.external)
      throw new PoolError("ERR_POOL_NOT_FOUND", `Cannot open the thin pool "${spec.name}" (dm.thinpooldev)`);
    let dataDev = spec.dataDev;
    let metaDev = spec.metadataDev;
    let dataBytes = spec.dataSize;
    if (!dataDev) {
      const dataFile = `${spec.loopDir}/data`;
      const metadataFile = `${spec.loopDir}/metadata`;
      await sparse(dataFile, spec.dataSize);
      await sparse(metadataFile, spec.metadataSize);
      dataDev = (await attachLoop(dataFile, { directIO: false, autoclear: true })).device;
      metaDev = (await attachLoop(metadataFile, { directIO: false, autoclear: true })).device;
      this.#loops = { data: dataDev, metadata: metaDev, dataFile, metadataFile };
    } else {
      dataBytes = await blockDeviceSize(dataDev);
    }
    // The first metadata block must be zero for dm-thin to format it.
    const fh = await open(metaDev, "r+");
    try {
      await fh.write(Buffer.alloc(4096), 0, 4096, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.#blockSectors = spec.blockSize / 512;
    await this.#run(createArgs(spec.name, poolTable(dataBytes, metaDev, dataDev, spec.blockSize)));
  }

  /**
   * Grows the data and metadata loop files to the spec's sizes (never
   * shrinks them), tells their loop devices, and reloads the pool with its
   * table at the new data length: the kernel picks up both on resume.
   */
  async #growLoopFiles(spec: PoolSpec, table: string, loops: PoolLoops): Promise<void> {
    const grewData = await sparse(loops.dataFile, spec.dataSize);
    const grewMeta = await sparse(loops.metadataFile, spec.metadataSize);
    if (!grewData && !grewMeta) return;
    if (grewData) await this.#setCapacity(loops.data);
    if (grewMeta) await this.#setCapacity(loops.metadata);
    const t = parsePoolTable(table);
    const dataBytes = (await stat(loops.dataFile)).size;
    await this.#run(["suspend", spec.name]);
    try {
      await this.#run(reloadArgs(spec.name, poolTable(dataBytes, t.metadataDev, t.dataDev, t.blockSectors * 512)));
    } finally {
      await this.#run(["resume", spec.name]);
    }
  }

  async message(msg: string): Promise<void> {
    await this.#run(messageArgs(this.#pool, msg));
  }

  async status(): Promise<PoolStatus> {
    return parseStatus(await this.#run(["status", this.#pool]));
  }

  dataBlockSize(): number {
    return this.#blockSectors * 512;
  }

  async files(): Promise<TargetFiles> {
    if (this.#loops) {
      return {
        dataDevice: this.#loops.data,
        metadataDevice: this.#loops.metadata,
        dataLoopFile: (await loopStatus(this.#loops.data)).backingFile,
        metadataLoopFile: (await loopStatus(this.#loops.metadata)).backingFile,
      };
    }
    return {
      dataDevice: this.#spec?.dataDev ?? "",
      metadataDevice: this.#spec?.metadataDev ?? "",
      dataLoopFile: "",
      metadataLoopFile: "",
    };
  }

  async activate(name: string, deviceId: number, size: number): Promise<string> {
    if (!(await this.activeDevice(name, deviceId)))
      await this.#run(createArgs(name, thinTable(this.#pool, deviceId, size)));
    return `/dev/mapper/${name}`;
  }

  async deactivate(name: string, _deviceId: number, opts: { deferred: boolean }): Promise<void> {
    try {
      await this.#run(removeArgs(name, opts.deferred));
    } catch (err) {
      if (err instanceof PoolError && err.code === "ERR_POOL_DEVICE_NOT_FOUND") return; // ENXIO: already gone
      throw err;
    }
  }

  async activeDevice(name: string, _deviceId?: number): Promise<string | null> {
    try {
      await this.#run(["info", name]);
      return `/dev/mapper/${name}`;
    } catch (err) {
      if (err instanceof PoolError && err.code === "ERR_POOL_DEVICE_NOT_FOUND") return null;
      throw err;
    }
  }

  async activeDevices(): Promise<string[]> {
    const out = await this.#run(["ls", "--target", "thin"]);
    const prefix = this.#pool.replace(/-pool$/, "-");
    return out
      .split("\n")
      .map((l) => l.split(/\s+/)[0] ?? "")
      .filter((n) => n.startsWith(prefix));
  }

  /** The kernel serves its thin devices itself: none is ever lost. */
  async lostDevice(): Promise<string | null> {
    return null;
  }

  async suspend(name: string): Promise<void> {
    if (await this.activeDevice(name)) await this.#run(["suspend", name]);
  }

  async resume(name: string): Promise<void> {
    if (await this.activeDevice(name)) await this.#run(["resume", name]);
  }

  async deferredRemovalSupported(): Promise<boolean> {
    return driverSupportsDeferred(parseVersion(await this.#run(["version"])).driver);
  }

  async udevSyncSupported(): Promise<boolean> {
    try {
      await this.#run(["udevcookies"]);
      return true;
    } catch {
      return false;
    }
  }

  async libraryVersion(): Promise<string> {
    const v = parseVersion(await this.#run(["version"]));
    return `kernel dm-thin via dmsetup, library ${v.library}, driver ${v.driver.join(".")}`;
  }

  async backingFree(): Promise<number | null> {
    if (!this.#loops) return null;
    const s = await statfs(this.#spec!.loopDir);
    return s.bavail * s.frsize;
  }

  async close(opts: { removePool: boolean }): Promise<void> {
    if (!this.#spec) return;
    if (opts.removePool && !this.#spec.external && (await this.activeDevices()).length === 0) {
      await this.#run(removeArgs(this.#spec.name, false));
      if (this.#loops) {
        await detachLoop(this.#loops.data).catch(() => {});
        await detachLoop(this.#loops.metadata).catch(() => {});
      }
    }
    this.#spec = undefined;
  }
}

/** Makes `path` a sparse file of at least `size` bytes (grows, never shrinks); true when it grew. */
async function sparse(path: string, size: number): Promise<boolean> {
  const fh = await open(path, "a", 0o600);
  try {
    if ((await fh.stat()).size >= size) return false;
    await fh.truncate(size);
    return true;
  } finally {
    await fh.close();
  }
}

async function blockDeviceSize(dev: string): Promise<number> {
  const fh = await open(dev, "r");
  try {
    // lseek to the end gives a block device's size.
    const { size } = await fh.stat();
    if (size > 0) return size;
    const out = await new Promise<string>((res, rej) =>
      execFile("blockdev", ["--getsize64", dev], (err, stdout) => (err ? rej(err) : res(stdout))),
    );
    return Number(out.trim());
  } finally {
    await fh.close();
  }
}
