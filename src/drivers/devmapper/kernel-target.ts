/**
 * The `kernel` target: the kernel's dm-thin driven through `dmsetup`, as
 * containerd's devmapper snapshotter does. The pool is created over two loop
 * devices (sparse files) or dm.datadev/dm.metadatadev with the thin-pool
 * table Docker uses; thin devices are `thin` targets on it. dmsetup waits on
 * udev cookies itself when it was built with udev sync.
 *
 * Command lines are built by the exported pure functions below, so they are
 * unit-tested where the kernel target cannot run.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { open, stat } from "node:fs/promises";
import { promisify } from "node:util";
import { loopsBackedUnder } from "../../thinpool/index.js";
import { attachLoop, detachLoop, loopStatus, statfs } from "../../native.js";
import { type PoolSpec, type PoolTarget, TargetError, type TargetFiles, type TargetStatus } from "./pool.js";

const execFileP = promisify(execFile);

/** Runs dmsetup with `args`; resolves with stdout, rejects with a {@link TargetError}. */
export type Dmsetup = (args: string[]) => Promise<string>;

/** The real dmsetup; errors become TargetErrors with ERR_DM_BUSY / ERR_DM_EXISTS / ERR_DM_NOT_FOUND. */
export const dmsetup: Dmsetup = async (args) => {
  try {
    return (await execFileP("dmsetup", args, { maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
    throw dmError(args, stderr, err);
  }
};

/** Maps dmsetup's stderr to a stable code. */
export function dmError(args: string[], stderr: string, cause?: unknown): TargetError {
  const code = /busy/i.test(stderr)
    ? "ERR_DM_BUSY"
    : /File exists/i.test(stderr)
      ? "ERR_DM_EXISTS"
      : /No data available|No such device|does not exist/i.test(stderr)
        ? "ERR_DM_NOT_FOUND"
        : /No space left/i.test(stderr)
          ? "ERR_POOL_NO_SPACE"
          : "ERR_DM_TARGET";
  return new TargetError(code, `Cannot dmsetup ${args.join(" ")}: ${stderr.split("\n").pop()}`, undefined, { cause });
}

/** Docker's pool table: `0 <sectors> thin-pool <meta> <data> <blockSectors> 32768 1 skip_block_zeroing`. */
export function poolTable(dataBytes: number, metadataDev: string, dataDev: string, blockSize: number): string {
  return `0 ${Math.floor(dataBytes / 512)} thin-pool ${metadataDev} ${dataDev} ${blockSize / 512} 32768 1 skip_block_zeroing`;
}

/** A thin device's table: `0 <sectors> thin /dev/mapper/<pool> <id>`. */
export function thinTable(pool: string, deviceId: number, size: number): string {
  return `0 ${Math.floor(size / 512)} thin /dev/mapper/${pool} ${deviceId}`;
}

/** `dmsetup create` with a table (dmsetup handles the udev cookie). */
export function createArgs(name: string, table: string): string[] {
  return ["create", name, "--table", table];
}

/** `dmsetup remove`, `--deferred` when asked, `--retry` otherwise (EBUSY from udev probes). */
export function removeArgs(name: string, deferred: boolean): string[] {
  return deferred ? ["remove", "--deferred", name] : ["remove", "--retry", name];
}

/** `dmsetup message <pool> 0 <msg>`. */
export function messageArgs(pool: string, msg: string): string[] {
  return ["message", pool, "0", msg];
}

/**
 * Parses `dmsetup status <pool>`: `0 <sectors> thin-pool <txid> <um>/<tm> <ud>/<td> …`.
 * @param blockSectors the pool's data block size in sectors (from its table)
 */
export function parsePoolStatus(line: string, blockSectors: number): TargetStatus {
  const m = /^\d+ \d+ thin-pool (\d+) (\d+)\/(\d+) (\d+)\/(\d+) \S+ (\S+)/.exec(line.trim());
  if (!m) {
    if (/thin-pool Fail/.test(line)) throw new TargetError("ERR_DM_TARGET", "Cannot read the thin pool: it failed");
    throw new TargetError("ERR_DM_TARGET", `Cannot parse the thin-pool status "${line.trim()}"`);
  }
  return {
    transactionId: Number(m[1]),
    usedMetadataBlocks: Number(m[2]),
    totalMetadataBlocks: Number(m[3]),
    usedDataBlocks: Number(m[4]),
    totalDataBlocks: Number(m[5]),
    dataBlockSize: blockSectors * 512,
    mode: m[6]!,
  };
}

/** Parses `dmsetup table <pool>` for the data block size (sectors), and the devices as maj:min. */
export function parsePoolTable(line: string): { metadataDev: string; dataDev: string; blockSectors: number } {
  const m = /^\d+ \d+ thin-pool (\S+) (\S+) (\d+)/.exec(line.trim());
  if (!m) throw new TargetError("ERR_DM_TARGET", `Cannot use the pool: not a thin pool "${line.trim()}"`);
  return { metadataDev: m[1]!, dataDev: m[2]!, blockSectors: Number(m[3]) };
}

/** Parses `dmsetup version`: library and kernel driver versions. */
export function parseVersion(out: string): { library: string; driver: [number, number, number] } {
  const lib = /Library version:\s*(.+)/.exec(out)?.[1]?.trim() ?? "unknown";
  const d = /Driver version:\s*(\d+)\.(\d+)\.(\d+)/.exec(out);
  return { library: lib, driver: d ? [Number(d[1]), Number(d[2]), Number(d[3])] : [0, 0, 0] };
}

/** Deferred removal needs dm driver ≥ 4.27.0 (Docker's check). */
export function driverSupportsDeferred(v: [number, number, number]): boolean {
  return v[0] > 4 || (v[0] === 4 && v[1] >= 27);
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
  #spec: PoolSpec | undefined;
  #blockSectors = 128;
  #loops: { data: string; metadata: string; dataFile: string; metadataFile: string } | undefined;

  /**
   * @param run how dmsetup is run
   * @param logLevel dm.libdm_log_level (2 fatal … 7 debug): levels above 4 (notice) add
   *   one `-v` each to every dmsetup call, so libdm logs that much more to stderr
   */
  constructor(run: Dmsetup = dmsetup, logLevel = 2) {
    const verbose = Array.from({ length: Math.max(0, logLevel - 4) }, () => "-v");
    this.#run = verbose.length ? (args) => run([...verbose, ...args]) : run;
  }

  get #pool(): string {
    if (!this.#spec) throw new TargetError("ERR_DM_TARGET", "Cannot use the thin pool: not open");
    return this.#spec.name;
  }

  async open(spec: PoolSpec): Promise<void> {
    this.#spec = spec;
    let table: string | null = null;
    try {
      table = await this.#run(["table", spec.name]);
    } catch (err) {
      if (!(err instanceof TargetError) || err.code !== "ERR_DM_NOT_FOUND") throw err;
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
        }
      }
      return;
    }
    if (spec.external)
      throw new TargetError("ERR_DM_NOT_FOUND", `Cannot open the thin pool "${spec.name}" (dm.thinpooldev)`);
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

  async message(msg: string): Promise<void> {
    await this.#run(messageArgs(this.#pool, msg));
  }

  async status(): Promise<TargetStatus> {
    return parsePoolStatus(await this.#run(["status", this.#pool]), this.#blockSectors);
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
      if (err instanceof TargetError && err.code === "ERR_DM_NOT_FOUND") return; // ENXIO: already gone
      throw err;
    }
  }

  async activeDevice(name: string, _deviceId?: number): Promise<string | null> {
    try {
      await this.#run(["info", name]);
      return `/dev/mapper/${name}`;
    } catch (err) {
      if (err instanceof TargetError && err.code === "ERR_DM_NOT_FOUND") return null;
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

async function sparse(path: string, size: number): Promise<void> {
  const fh = await open(path, "a", 0o600);
  try {
    if ((await fh.stat()).size < size) await fh.truncate(size); // grow, never shrink
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
    const st = await execFileP("blockdev", ["--getsize64", dev]);
    return Number(st.stdout.trim());
  } finally {
    await fh.close();
  }
}
