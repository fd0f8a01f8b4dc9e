/**
 * A freshly made filesystem for one timed run.
 *
 * Why: a filesystem's history changes what creating files costs. On a
 * journal-less ext4 that has just deleted a large tree, the inode allocator
 * skips recently freed inodes and file creation costs seconds of kernel
 * time; a timing taken there measures the filesystem's state, not the
 * program. So every timed run of every benchmark gets a new filesystem, made
 * the same way for strata and for the tool it is compared with:
 *
 * 1. a sparse loop file under `/var/tmp` in a directory of its own
 *    (`strata-freshfs-<pid>-<random>/fs.img`, so concurrent runs never
 *    collide and a leftover names the process that made it),
 * 2. `mkfs.ext4` with its defaults (journal on, as on every real
 *    `/var/lib/docker`) or `mkfs.xfs`,
 * 3. a loop device (direct I/O, so the data is not cached twice and a
 *    `sync` reaches the disk) mounted at `<dir>/mnt`,
 * 4. after the run: everything mounted below the mount point is unmounted
 *    (deepest first), then the filesystem, the loop device is detached and
 *    the directory removed, also when the run failed.
 *
 * {@link dropCaches} empties the page, dentry and inode caches, so that a run
 * starts cold (the input files are read from disk, too).
 *
 * @example
 * await withFreshFs({ type: "ext4" }, async (fs) => {
 *   await dropCaches();
 *   await timeCommand("tar", ["-xf", layer, "-C", fs.path], { syncPath: fs.path });
 * });
 *
 * @module
 */
import { mkdir, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../errors.js";
import { attachLoop, detachLoop, mount, umount2 } from "../native.js";
import { sh, unmountUnder } from "./exec.js";

/** The filesystems a fresh filesystem can be made with. */
export const FS_TYPES = ["ext4", "xfs"] as const;
/** One of {@link FS_TYPES}. */
export type FsType = (typeof FS_TYPES)[number];

/** How to make the filesystem. */
export interface FreshFsOptions {
  /** Filesystem type. @default "ext4" */
  type?: FsType;
  /** Size of the (sparse) loop file in bytes. @default 12 GiB */
  size?: number;
  /** Where the loop file and mount point live (a directory on a real disk). @default "/var/tmp" */
  parent?: string;
}

/** The default size: room for two copies of the largest corpus layer and a store beside them. */
export const DEFAULT_FS_SIZE = 12 * 2 ** 30;

const MKFS: Record<FsType, [string, string[]]> = {
  ext4: ["mkfs.ext4", ["-q", "-F"]],
  xfs: ["mkfs.xfs", ["-q", "-f"]],
};

/** A mounted fresh filesystem; {@link FreshFs.dispose} removes every trace of it. */
export class FreshFs {
  /** The mount point: what a run works in. */
  readonly path: string;
  /** Filesystem type. */
  readonly type: FsType;
  /** Size of the loop file in bytes. */
  readonly size: number;
  /** The loop device it is mounted from. */
  readonly device: string;
  readonly #dir: string;
  #disposed = false;

  private constructor(dir: string, type: FsType, size: number, device: string) {
    this.#dir = dir;
    this.path = join(dir, "mnt");
    this.type = type;
    this.size = size;
    this.device = device;
  }

  /**
   * Makes, attaches and mounts a new filesystem. Needs root. Nothing is left
   * behind when a step fails.
   * @throws ERR_INVALID_OPTION for an unknown type or a size below 256 MiB
   * @throws ERR_FRESH_FS when mkfs, the loop device or the mount fails
   */
  static async create(opts: FreshFsOptions = {}): Promise<FreshFs> {
    const type = opts.type ?? "ext4";
    const size = opts.size ?? DEFAULT_FS_SIZE;
    if (!FS_TYPES.includes(type))
      throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot make a fresh filesystem: unknown type "${type}"`);
    if (!Number.isSafeInteger(size) || size < 256 * 2 ** 20)
      throw new InvalidArgumentError(
        "ERR_INVALID_OPTION",
        `Cannot make a fresh filesystem: the size must be at least 256 MiB "${size}"`,
      );
    const dir = await mkdtemp(join(opts.parent ?? "/var/tmp", `strata-freshfs-${process.pid}-`));
    const image = join(dir, "fs.img");
    let device: string | undefined;
    let mounted = false;
    try {
      await writeFile(image, "");
      await truncate(image, size);
      const [mkfs, args] = MKFS[type];
      await sh(mkfs, [...args, image]);
      device = (await attachLoop(image, { directIO: true, autoclear: false })).device;
      await mkdir(join(dir, "mnt"));
      await mount(device, join(dir, "mnt"), type, 0, null);
      mounted = true;
      return new FreshFs(dir, type, size, device);
    } catch (err) {
      if (mounted) await umount2(join(dir, "mnt"), 0).catch(() => undefined);
      if (device) await detachLoop(device).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      throw new FailedPreconditionError(
        "ERR_FRESH_FS",
        `Cannot make a fresh filesystem: ${(err as Error).message.split("\n")[0]} "${dir}"`,
        { cause: err },
      );
    }
  }

  /** One line for reports, e.g. `ext4 (mkfs.ext4 defaults), fresh per run on a 12 GiB loop file`. */
  describe(): string {
    return describeFreshFs(this.type, this.size);
  }

  /**
   * Unmounts whatever a run left mounted below the mount point (deepest
   * first, lazily when busy), then the filesystem; detaches the loop device
   * and removes the directory. Every step is tried; the first failure is
   * thrown after the others. Calling it twice is harmless.
   */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    let first: unknown;
    const attempt = async (step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (err) {
        first ??= err;
      }
    };
    await attempt(() => unmountUnder(this.path));
    await attempt(() => detachLoop(this.device));
    await attempt(() => rm(this.#dir, { recursive: true, force: true }));
    if (first) throw first;
  }
}

/** The report line for fresh filesystems of `type` and `size` (see {@link FreshFs.describe}). */
export function describeFreshFs(type: FsType, size = DEFAULT_FS_SIZE): string {
  const how = type === "ext4" ? "mkfs.ext4 defaults, journal on" : "mkfs.xfs defaults";
  return `${type} (${how}), made fresh for every timed run on a ${Math.round(size / 2 ** 30)} GiB loop file (direct I/O), caches dropped before each run`;
}

/** Runs `fn` on a new filesystem and removes the filesystem afterwards, whether `fn` succeeded or not. */
export async function withFreshFs<T>(opts: FreshFsOptions, fn: (fs: FreshFs) => Promise<T>): Promise<T> {
  const fs = await FreshFs.create(opts);
  let result: T;
  try {
    result = await fn(fs);
  } catch (err) {
    await fs.dispose().catch(() => undefined); // the run's own failure is the one to report
    throw err;
  }
  await fs.dispose();
  return result;
}

/**
 * Writes dirty data back and empties the page, dentry and inode caches
 * (`sync; echo 3 > /proc/sys/vm/drop_caches`), so the next run starts cold.
 * @throws ERR_FRESH_FS when the kernel refuses (not root)
 */
export async function dropCaches(): Promise<void> {
  await sh("sync", []);
  try {
    await writeFile("/proc/sys/vm/drop_caches", "3");
  } catch (err) {
    throw new FailedPreconditionError(
      "ERR_FRESH_FS",
      `Cannot drop the caches: ${(err as Error).message} "/proc/sys/vm/drop_caches"`,
      { cause: err },
    );
  }
}
