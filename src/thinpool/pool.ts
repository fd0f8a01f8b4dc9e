/**
 * ThinPool: strata's userspace dm-thin pool, driven the way the kernel's
 * thin-pool target is (messages, status line, activation of thin devices as
 * block devices). The devmapper driver's `userspace` target uses it.
 *
 * A pool lives in a directory (`dir`): `pool.json` (where the data and
 * metadata files are), the daemon's control socket, FUSE mount, log and pid.
 * The first call that needs the daemon starts it; it keeps running after the
 * calling process exits, until {@link ThinPool.close}.
 *
 * @example
 * const pool = await ThinPool.create({ dir: "/var/lib/strata/pool", dataSize: 10 << 30 });
 * await pool.createThin(1);
 * const dev = await pool.activate(1, 1 << 30); // "/dev/loopN"
 * // mkfs, mount, use …
 * await pool.deactivate(1);
 * await pool.close();
 *
 * @module
 */
import { existsSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hasCode } from "../errors.js";
import { attachLoop, detachLoop, type LoopStatus, loopStatus } from "../native.js";
import { request } from "./client.js";
import { ensureDaemon, loopsBackedUnder, poolLayout, readPidFile, runDaemonTool, type PoolLayout } from "./daemon.js";
import { PoolError } from "./errors.js";
import { parseStatus, type PoolStatus } from "./status.js";

/** Options of {@link ThinPool.create}. */
export interface CreatePoolOptions {
  /** The pool's directory (created when missing). */
  dir: string;
  /** Data file; default `<dir>/data`. Created sparse with `dataSize` bytes. */
  dataFile?: string;
  /** Metadata file; default `<dir>/metadata`. */
  metadataFile?: string;
  /** Size of the data file in bytes (rounded down to whole blocks). */
  dataSize: number;
  /** Size of the metadata file in bytes. @default 128 MiB */
  metadataSize?: number;
  /** Data block size in bytes, a multiple of 64 KiB (`dm.blocksize`). @default 65536 */
  blockSize?: number;
}

/** One thin device as the engine sees it. */
export interface ThinDeviceInfo {
  id: number;
  mappedBlocks: number;
  /** Mapped blocks not shared with any other device. */
  exclusiveBlocks: number;
  transaction: number;
  creationTime: number;
  snapTime: number;
}

/** The engine's own view of the pool (for tests and `status` output). */
export interface PoolInfo {
  transaction: number;
  time: number;
  dataBlockSize: number;
  nrDataBlocks: number;
  usedDataBlocks: number;
  nrMetadataBlocks: number;
  usedMetadataBlocks: number;
  devices: ThinDeviceInfo[];
}

interface PoolConfig {
  dataFile: string;
  metadataFile: string;
}

/** A handle on a userspace thin pool and its daemon. */
export class ThinPool {
  readonly layout: PoolLayout;
  #pid = 0;

  private constructor(layout: PoolLayout) {
    this.layout = layout;
  }

  /**
   * Pid of the daemon serving the pool (as of the last start or check): the
   * process that serves, which its keeper restarts if it dies (see
   * `daemon.ts`); its keeper's pid is in `layout.keeperPidFile`.
   */
  get pid(): number {
    return this.#pid;
  }

  /**
   * Creates a pool: the data file, empty dm-thin metadata, `pool.json`, then
   * starts its daemon. Fails with ERR_POOL_EXISTS when `dir` already holds one.
   */
  static async create(opts: CreatePoolOptions): Promise<ThinPool> {
    const layout = poolLayout(opts.dir, opts.dataFile, opts.metadataFile);
    const blockSize = opts.blockSize ?? 65536;
    if (!Number.isSafeInteger(blockSize) || blockSize < 65536 || blockSize % 65536)
      throw new PoolError(
        "ERR_POOL_INVALID",
        `Cannot create the pool: block size ${blockSize} is not a multiple of 64 KiB`,
      );
    if (!Number.isSafeInteger(opts.dataSize) || opts.dataSize < blockSize)
      throw new PoolError("ERR_POOL_INVALID", `Cannot create the pool: data size ${opts.dataSize} is below one block`);
    await mkdir(layout.dir, { recursive: true });
    const configPath = join(layout.dir, "pool.json");
    if (existsSync(configPath))
      throw new PoolError("ERR_POOL_EXISTS", `Cannot create the pool: "${layout.dir}" has one`);
    const meta = await open(layout.metadataFile, "a");
    await meta.truncate(opts.metadataSize ?? 128 << 20);
    await meta.close();
    await runDaemonTool([
      "format",
      "--metadata",
      layout.metadataFile,
      "--data",
      layout.dataFile,
      "--block-size",
      String(blockSize),
      "--data-size",
      String(opts.dataSize),
    ]);
    const config: PoolConfig = { dataFile: layout.dataFile, metadataFile: layout.metadataFile };
    await writeFile(`${configPath}.tmp`, JSON.stringify(config));
    await rename(`${configPath}.tmp`, configPath);
    return ThinPool.open(layout.dir);
  }

  /**
   * Opens the pool in `dir`, or adopts existing files when `files` is given
   * (for example metadata made by `thin_restore`): starts or reaches its
   * daemon, recovering from a crashed one first.
   */
  static async open(dir: string, files?: { dataFile: string; metadataFile: string }): Promise<ThinPool> {
    const configPath = join(dir, "pool.json");
    let config: PoolConfig;
    if (files) {
      config = files;
      await mkdir(dir, { recursive: true });
      await writeFile(configPath, JSON.stringify({ dataFile: files.dataFile, metadataFile: files.metadataFile }));
    } else {
      try {
        config = JSON.parse(await readFile(configPath, "utf8")) as PoolConfig;
      } catch {
        throw new PoolError("ERR_POOL_NOT_FOUND", `Cannot open the pool: no pool in "${dir}"`);
      }
    }
    const pool = new ThinPool(poolLayout(dir, config.dataFile, config.metadataFile));
    pool.#pid = await ensureDaemon(pool.layout);
    return pool;
  }

  async #call(line: string): Promise<string> {
    this.#pid = await ensureDaemon(this.layout);
    return request(this.layout.socket, line);
  }

  /** Sends a thin-pool target message (`create_thin 1`, `delete 3`, …). */
  async message(msg: string): Promise<void> {
    await this.#call(`message ${msg}`);
  }
  /** `create_thin ID`: a new, empty thin device. ERR_POOL_DEVICE_EXISTS if the id is taken. */
  createThin(id: number): Promise<void> {
    return this.message(`create_thin ${id}`);
  }
  /** `create_snap ID ORIGIN`: a snapshot sharing all of ORIGIN's blocks. */
  createSnap(id: number, origin: number): Promise<void> {
    return this.message(`create_snap ${id} ${origin}`);
  }
  /** `delete ID`: removes a device and frees its unshared blocks. ERR_POOL_BUSY while active. */
  deleteDevice(id: number): Promise<void> {
    return this.message(`delete ${id}`);
  }
  /** `set_transaction_id OLD NEW`: ERR_POOL_INVALID when OLD is not the current id. */
  setTransactionId(oldId: number, newId: number): Promise<void> {
    return this.message(`set_transaction_id ${oldId} ${newId}`);
  }

  /** The pool's status, parsed from the kernel-style status line the daemon prints. */
  async status(): Promise<PoolStatus> {
    return parseStatus(await this.#call("status"));
  }
  /** The engine's view of the pool and its devices. */
  async info(): Promise<PoolInfo> {
    return JSON.parse(await this.#call("info")) as PoolInfo;
  }
  /** Commits the metadata now (the daemon also commits on flush and every second). */
  async commit(): Promise<void> {
    await this.#call("commit");
  }
  /** Grows the data file to `dataSize` bytes (whole blocks); pools never shrink. */
  async grow(dataSize: number): Promise<void> {
    const info = await this.info();
    await this.#call(`grow ${Math.floor(dataSize / info.dataBlockSize)}`);
  }
  /**
   * Grows the metadata file to `metadataSize` bytes (whole 4 KiB blocks, up
   * to the format's limit of about 16 GiB): the next commit's space map
   * describes the new blocks. Never shrinks.
   */
  async growMetadata(metadataSize: number): Promise<void> {
    await this.#call(`grow-metadata ${Math.floor(metadataSize / 4096)}`);
  }

  /**
   * Activates thin device `id` with `sizeBytes` bytes and returns its block
   * device (a loop device with direct I/O over the device's FUSE file).
   * Activating an active device again returns the same block device.
   */
  async activate(id: number, sizeBytes: number): Promise<string> {
    const file = await this.#call(`activate ${id} ${sizeBytes}`);
    const existing = (await loopsBackedUnder(this.layout.mountPoint)).find((l) => l.backingFile === file);
    if (existing) return existing.device;
    try {
      const loop = await attachLoop(file, { directIO: true, autoclear: false });
      await alignRequestsToFuse(loop.device);
      return loop.device;
    } catch (err) {
      await this.#call(`deactivate ${id}`).catch(() => {});
      throw err;
    }
  }

  /** The block device of an active thin device, or null. */
  async deviceOf(id: number): Promise<string | null> {
    const file = join(this.layout.mountPoint, String(id));
    return (await loopsBackedUnder(this.layout.mountPoint)).find((l) => l.backingFile === file)?.device ?? null;
  }

  /**
   * Why loop device `device` no longer reaches the pool, or null when it
   * does (or is no loop device): it reads a device file of a FUSE mount that
   * is not the live one, because the daemon that served it died (recovery
   * unmounts the dead FUSE mount lazily, so the file's path no longer says
   * where it was; its filesystem's device does). Every I/O on such a loop
   * fails; it goes away when its last user (a mounted filesystem) lets go,
   * and a new activation of the thin device gets a new loop.
   */
  async lostLoop(device: string): Promise<string | null> {
    let st: LoopStatus;
    try {
      st = await loopStatus(device);
    } catch (err) {
      if (hasCode(err, "ENXIO", "ENOENT")) return null; // not bound, or no such device
      // The loop driver stats its backing file: a dead FUSE connection answers ENOTCONN.
      return `${device} reads a device file of a pool daemon that is gone (${(err as { code?: string }).code})`;
    }
    if (st.backingDevice === (await this.#liveDevice())) return null;
    return `${device} reads "${st.backingFile}" of a pool daemon that is gone`;
  }

  /** st_dev of the live FUSE mount, -1 when the daemon serving it is gone. */
  async #liveDevice(): Promise<number> {
    return stat(this.layout.mountPoint).then(
      (s) => s.dev,
      () => -1,
    );
  }

  /**
   * Detaches the device's loop and deactivates it. ERR_POOL_BUSY after a
   * second when the loop stays open (a mounted filesystem): the loop then
   * goes away by itself once its last user closes it (autoclear), and a later
   * deactivate completes.
   */
  async deactivate(id: number): Promise<void> {
    const file = join(this.layout.mountPoint, String(id));
    for (const l of await loopsBackedUnder(this.layout.mountPoint)) {
      if (l.backingFile !== file) continue;
      await detachLoop(l.device);
      // A user that is letting go (an unmount just returned) closes it within moments.
      for (let i = 0; (await autoclearPending(l.device)) && i < 20; i++) await new Promise((r) => setTimeout(r, 50));
      if (await autoclearPending(l.device))
        throw new PoolError("ERR_POOL_BUSY", `Cannot deactivate thin device ${id}: ${l.device} is still open`);
    }
    for (let i = 0; ; i++) {
      try {
        await this.#call(`deactivate ${id}`);
        return;
      } catch (err) {
        // The loop driver releases the file asynchronously after LOOP_CLR_FD.
        if (!(err instanceof PoolError) || err.code !== "ERR_POOL_BUSY" || i >= 100) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Deactivates every device, commits and stops the daemon. */
  async close(): Promise<void> {
    for (const l of await loopsBackedUnder(this.layout.mountPoint)) await detachLoop(l.device).catch(() => {});
    const info = await this.info();
    for (const d of info.devices) {
      if (existsSync(join(this.layout.mountPoint, String(d.id)))) await this.deactivate(d.id);
    }
    const pids = [this.#pid, await readPidFile(this.layout.keeperPidFile)];
    await request(this.layout.socket, "close");
    for (const pid of pids)
      for (let i = 0; i < 200 && pid && (await running(pid)); i++) await new Promise((r) => setTimeout(r, 25));
    await rm(this.layout.pidFile, { force: true });
    await rm(this.layout.keeperPidFile, { force: true });
  }
}

/** The daemon's FUSE `max_write`/`max_read` in KiB (kMaxRequest in native/thinpool/fuse_ops.cc). */
const FUSE_MAX_REQUEST_KIB = 1024;

/**
 * Caps the loop device's requests at FUSE's request size. The loop default
 * (1280 KiB) made FUSE split every large request into 1 MiB + 256 KiB: 38 %
 * more round trips to the daemon for a sequential write (measured: 1,693 vs
 * 1,046 data writes per GiB). Best effort: without a writable sysfs the
 * device works the same, only slower.
 */
async function alignRequestsToFuse(device: string): Promise<void> {
  const name = device.replace(/^\/dev\//, "");
  await writeFile(`/sys/block/${name}/queue/max_sectors_kb`, String(FUSE_MAX_REQUEST_KIB)).catch(() => {});
}

/** True when a detached loop device is still bound, waiting for its last user to close it. */
async function autoclearPending(device: string): Promise<boolean> {
  const name = device.replace(/^\/dev\//, "");
  return (await readFile(`/sys/block/${name}/loop/autoclear`, "utf8").catch(() => "0")).trim() === "1";
}

async function running(pid: number): Promise<boolean> {
  const st = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return st !== "" && !/\) Z /.test(st);
}
