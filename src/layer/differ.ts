/**
 * The Differ: what a layer changed, as a list, a tar or a size, and the
 * applying of a layer tar, for any driver. It sits above the drivers, as
 * containerd's differ sits above its snapshotters: drivers store layers and
 * mount them; the Differ mounts through the store's {@link Mounts} (the one
 * place mounts are counted) and compares the trees with the diff engine.
 * Nothing calls back up: a driver is never handed a way to mount.
 *
 * A driver that keeps a layer's own changes apart says where
 * (`Driver.diffDir`, overlay's upper dir): diff and size then read that
 * directory without mounting anything (when the driver's `nativeDiff`
 * capability holds), and changes walks only into directories present there.
 * Likewise `Driver.applyDir` names where a tar can be applied without
 * mounting. Otherwise both trees are mounted and compared, Docker's naive diff.
 *
 * @example
 * const differ = new Differ(driver, mounts);
 * const list = await differ.changes(containerID, imageCacheID);
 *
 * @module
 */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { TarRecorder } from "../archive/tar-split.js";
import { applyLayer, type Change, changes, changesSize, exportChanges, exportTree } from "../diff/index.js";
import { hasCode, StrataError } from "../errors.js";
import type { Driver } from "../graphdriver/driver.js";
import type { Digest } from "./ids.js";
import type { Mounts } from "./mounts.js";

/** What {@link Differ.applyDiff} applied. */
export interface Applied {
  /** Σ of entry sizes from the tar headers (Docker's ApplyDiff result). */
  size: number;
  /** sha256 of the tar as read: the layer's diffID. */
  diffID: Digest;
  /** Bytes of the tar as read. */
  tarSize: number;
}

/** Apply and diff for one driver, mounting through one {@link Mounts}. */
export class Differ {
  readonly #driver: Driver;
  readonly #mounts: Mounts;

  constructor(driver: Driver, mounts: Mounts) {
    this.#driver = driver;
    this.#mounts = mounts;
  }

  /** Runs `fn` with `id` (and `parent`, when not "") held, releasing both afterwards. */
  async #withLayers<T>(id: string, parent: string, fn: (layer: string, parentPath: string | null) => Promise<T>) {
    const layer = await this.#mounts.acquire(id);
    try {
      if (!parent) return await fn(layer, null);
      const parentPath = await this.#mounts.acquire(parent);
      try {
        return await fn(layer, parentPath);
      } finally {
        await this.#mounts.release(parent);
      }
    } finally {
      await this.#mounts.release(id);
    }
  }

  /** The driver's own record of `id`'s changes, when it is exact enough for diff and size. */
  async #exactDiffDir(id: string, parent: string) {
    if (!this.#driver.capabilities.nativeDiff) return null;
    return this.#driver.diffDir(id, parent);
  }

  /**
   * What `id` changed relative to `parent` ("" for none), with `docker diff`'s rules.
   * @throws ERR_LAYER_NOT_FOUND
   */
  async changes(id: string, parent: string): Promise<Change[]> {
    const own = parent ? await this.#driver.diffDir(id, parent) : null;
    if (!own) return this.#withLayers(id, parent, (layer, parentPath) => changes(layer, parentPath));
    // A change anywhere below a directory copies that directory up: walk only into those.
    const descend = async (path: string) => {
      try {
        return (await lstat(join(own.path, path))).isDirectory();
      } catch (err) {
        if (hasCode(err, "ENOENT", "ENOTDIR")) return false;
        throw err;
      }
    };
    return this.#withLayers(id, parent, (layer, parentPath) => changes(layer, parentPath, { descend }));
  }

  /**
   * Tar (AUFS whiteouts) of what `id` changed relative to `parent`; with
   * parent "" the whole layer. The caller consumes or destroys the stream;
   * `id` stays held until then.
   */
  async diff(id: string, parent: string): Promise<Readable> {
    const own = await this.#exactDiffDir(id, parent);
    if (own) return exportTree(own.path, { whiteouts: own.whiteouts });
    const layer = await this.#mounts.acquire(id);
    let stream: Readable;
    try {
      if (!parent) {
        stream = exportTree(layer);
      } else {
        const parentPath = await this.#mounts.acquire(parent);
        let list: Change[];
        try {
          list = await changes(layer, parentPath);
        } finally {
          await this.#mounts.release(parent);
        }
        stream = exportChanges(layer, list);
      }
    } catch (err) {
      await this.#mounts.release(id);
      throw err;
    }
    // `id` stays held until the stream is read to its end or destroyed, and is
    // released before the end is seen.
    const release = () => this.#mounts.release(id);
    async function* held(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of stream) yield chunk as Buffer;
      } finally {
        stream.destroy();
        await release();
      }
    }
    return Readable.from(held(), { objectMode: false });
  }

  /** Bytes of the files `id` added or changed relative to `parent` (hardlinks counted once). */
  async diffSize(id: string, parent: string): Promise<number> {
    const own = await this.#exactDiffDir(id, parent);
    if (own) return ownDirSize(own.path);
    return this.#withLayers(id, parent, async (layer, parentPath) =>
      changesSize(layer, await changes(layer, parentPath)),
    );
  }

  /**
   * Applies an uncompressed layer tar onto the empty layer `id`, created on
   * `parent`, hashing it in the same pass.
   * @throws ERR_BREAKOUT, ERR_TAR_FORMAT for bad tars; ERR_APPLY for a failed filesystem operation
   */
  async applyDiff(id: string, parent: string, tar: Readable, opts: { recorder?: TarRecorder } = {}): Promise<Applied> {
    const into = await this.#driver.applyDir(id, parent);
    const apply = async (dir: string, whiteouts?: "aufs" | "overlay") => {
      try {
        const r = await applyLayer(dir, tar, { whiteouts, recorder: opts.recorder, digest: true });
        return { size: r.size, diffID: r.digest as Digest, tarSize: r.tarSize ?? 0 };
      } catch (err) {
        if (err instanceof StrataError) throw err;
        throw new StrataError("ERR_APPLY", `Cannot apply layer: ${(err as Error).message} "${id}"`, { cause: err });
      }
    };
    if (into) return apply(into.path, into.whiteouts);
    const path = await this.#mounts.acquire(id);
    try {
      return await apply(path);
    } finally {
      await this.#mounts.release(id);
    }
  }
}

/**
 * Bytes of the non-directory entries of a driver's own diff directory, each
 * inode once (Docker's directory.Size). Whiteouts are zero-size and add nothing.
 */
async function ownDirSize(dir: string): Promise<number> {
  const seen = new Set<number>();
  let total = 0;
  async function walk(d: string): Promise<void> {
    for (const ent of await readdir(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) {
        await walk(p);
        continue;
      }
      const st = await lstat(p);
      if (st.size === 0) continue;
      if (st.nlink > 1) {
        if (seen.has(st.ino)) continue;
        seen.add(st.ino);
      }
      total += st.size;
    }
  }
  await walk(dir);
  return total;
}
