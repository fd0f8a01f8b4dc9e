/**
 * dmsetup and losetup for the kernel target: how each is run, how their
 * failures map to the pool error family, and the command lines and tables
 * (pure functions, unit-tested where the kernel target cannot run).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { PoolError } from "../../thinpool/index.js";

const execFileP = promisify(execFile);

/** Runs dmsetup with `args`; resolves with stdout, rejects with a {@link PoolError}. */
export type Dmsetup = (args: string[]) => Promise<string>;

/** Re-reads the size of a loop device's backing file (`losetup -c`, LOOP_SET_CAPACITY). */
export type SetLoopCapacity = (loopDevice: string) => Promise<void>;

/** The real `losetup -c`. */
export const losetupCapacity: SetLoopCapacity = async (dev) => {
  try {
    await execFileP("losetup", ["-c", dev]);
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
    throw new PoolError("ERR_POOL_TARGET", `Cannot losetup -c ${dev}: ${stderr}`, undefined, { cause: err });
  }
};

/** The real dmsetup; errors become PoolErrors with ERR_POOL_BUSY / ERR_POOL_DEVICE_EXISTS / ERR_POOL_DEVICE_NOT_FOUND. */
export const dmsetup: Dmsetup = async (args) => {
  try {
    return (await execFileP("dmsetup", args, { maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim();
    throw dmError(args, stderr, err);
  }
};

/** Maps dmsetup's stderr to a stable code. */
export function dmError(args: string[], stderr: string, cause?: unknown): PoolError {
  const code = /busy/i.test(stderr)
    ? "ERR_POOL_BUSY"
    : /File exists/i.test(stderr)
      ? "ERR_POOL_DEVICE_EXISTS"
      : /No data available|No such device|does not exist/i.test(stderr)
        ? "ERR_POOL_DEVICE_NOT_FOUND"
        : /No space left/i.test(stderr)
          ? "ERR_POOL_NO_SPACE"
          : "ERR_POOL_TARGET";
  return new PoolError(code, `Cannot dmsetup ${args.join(" ")}: ${stderr.split("\n").pop()}`, undefined, { cause });
}

/** `dmsetup reload` of a device with a new table (takes effect at the next resume). */
export function reloadArgs(name: string, table: string): string[] {
  return ["reload", name, "--table", table];
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

/** Parses `dmsetup table <pool>` for the data block size (sectors), and the devices as maj:min. */
export function parsePoolTable(line: string): { metadataDev: string; dataDev: string; blockSectors: number } {
  const m = /^\d+ \d+ thin-pool (\S+) (\S+) (\d+)/.exec(line.trim());
  if (!m) throw new PoolError("ERR_POOL_TARGET", `Cannot use the pool: not a thin pool "${line.trim()}"`);
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
