/**
 * Store directories that are never left through a symlink. A store's own
 * contents are as hostile as any input: a `tmp` directory replaced by a
 * symlink to `/etc` must not get `/etc` emptied by the next sweep, a
 * `merged` symlink must not put a mount outside the store.
 *
 * A {@link StoreDir} is a directory opened once, by file descriptor
 * (O_PATH). Every path below it is resolved with
 * `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)` from that fd, so no
 * component, the last one included, may be a symlink or climb out with
 * `..`; operations act on one name inside an already resolved parent
 * (`mkdirat`, `renameat2`, `unlinkat`, the native tree removal). A planted
 * symlink makes the operation fail with ERR_STORE_SYMLINK, naming the path;
 * nothing is followed.
 *
 * Node's path-based APIs are used only on `/proc/self/fd/<fd>` of a
 * resolved directory (the kernel reaches the open directory itself, not the
 * path it was opened by).
 *
 * @module
 */
import { readFile as readFd, write as writeFd, fsync as fsyncFd } from "node:fs";
import { readdir as readdirPath } from "node:fs/promises";
import { posix } from "node:path";
import { promisify } from "node:util";
import { FailedPreconditionError, hasCode } from "../errors.js";
import {
  C,
  close,
  fstatat,
  mkdirat,
  openat2,
  readlinkat,
  removeTreeAt,
  renameat2,
  symlinkat,
  unlinkat,
} from "../native.js";
import { tmpName } from "./tmp-names.js";

const readWholeFd = promisify(readFd) as (fd: number) => Promise<Buffer>;
const fsync = promisify(fsyncFd);
const BENEATH = C.RESOLVE_NO_SYMLINKS | C.RESOLVE_BENEATH | C.RESOLVE_NO_MAGICLINKS;

/** Metadata of one entry, not following a symlink (fstatat with AT_SYMLINK_NOFOLLOW). */
export interface EntryStat {
  mode: number;
  uid: number;
  size: number;
  isDirectory: boolean;
  isFile: boolean;
  isSymlink: boolean;
}

/** Writes all of `data` to `fd` from offset 0. */
async function writeAll(fd: number, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) {
    off += await new Promise<number>((res, rej) =>
      writeFd(fd, data, off, data.length - off, off, (err, n) => (err ? rej(err) : res(n))),
    );
  }
}

/** A directory of the store, opened by fd (see the module doc). */
export class StoreDir {
  /** The directory's path, for messages and for callers that need a path (mount sources, tools). */
  readonly path: string;
  readonly #fd: number;
  #closed = false;

  private constructor(fd: number, path: string) {
    this.#fd = fd;
    this.path = path;
  }

  /**
   * Opens `path` (a trusted, absolute directory such as a validated store
   * root; symlinks in `path` itself are followed once, here).
   * @throws a SystemError (ENOENT, ENOTDIR)
   */
  static async open(path: string): Promise<StoreDir> {
    return new StoreDir(await openat2(C.AT_FDCWD, path, C.O_PATH | C.O_DIRECTORY), path);
  }

  /** `rel` made absolute, for messages. */
  pathOf(rel: string): string {
    return rel === "" || rel === "." ? this.path : posix.join(this.path, rel);
  }

  /** The ELOOP/EXDEV of a refused resolution as a StrataError naming the path. */
  #refused(err: unknown, rel: string): unknown {
    return hasCode(err, "ELOOP", "EXDEV") ? this.#symlinkError(rel, err) : err;
  }

  #symlinkError(rel: string, cause?: unknown): FailedPreconditionError {
    return new FailedPreconditionError(
      "ERR_STORE_SYMLINK",
      `Cannot use the store: a symlink or a foreign entry where strata keeps its own data "${this.pathOf(rel)}"`,
      { cause },
    );
  }

  /** openat2 below this directory; never follows a symlink. The caller closes the fd. */
  async openFd(rel: string, flags: number, mode = 0): Promise<number> {
    if (this.#closed) throw new Error(`StoreDir used after close: ${this.path}`);
    try {
      return await openat2(this.#fd, rel === "" ? "." : rel, flags, mode, BENEATH);
    } catch (err) {
      throw this.#refused(err, rel);
    }
  }

  /** Runs `fn` with an fd of `rel`'s parent directory and `rel`'s last name. */
  async #inParent<T>(rel: string, fn: (dirfd: number, name: string) => Promise<T>): Promise<T> {
    const dir = posix.dirname(rel);
    const name = posix.basename(rel);
    if (dir === ".") return fn(this.#fd, name);
    const fd = await this.openFd(dir, C.O_PATH | C.O_DIRECTORY);
    try {
      return await fn(fd, name);
    } finally {
      await close(fd);
    }
  }

  /**
   * The directory `rel` below this one, opened by fd (close it with
   * {@link close}). With `create`, missing components are made (`mode`).
   * @throws ERR_STORE_SYMLINK; ENOENT without `create`
   */
  async sub(rel: string, opts: { create?: boolean; mode?: number } = {}): Promise<StoreDir> {
    if (opts.create) await this.mkdirs(rel, opts.mode);
    return new StoreDir(await this.openFd(rel, C.O_PATH | C.O_DIRECTORY), this.pathOf(rel));
  }

  /** Makes `rel` and its missing parents (each `mode`, default 0700); existing directories are fine. */
  async mkdirs(rel: string, mode = 0o700): Promise<void> {
    let at = "";
    for (const part of rel.split("/").filter((p) => p && p !== ".")) {
      at = at ? `${at}/${part}` : part;
      await this.mkdir(at, mode);
    }
  }

  /**
   * mkdirat of `rel` (parent must exist). An existing directory is fine.
   * @returns whether it was created
   * @throws ERR_STORE_SYMLINK when `rel` (or a parent) is a symlink
   */
  async mkdir(rel: string, mode = 0o700): Promise<boolean> {
    try {
      await this.#inParent(rel, (fd, name) => mkdirat(fd, name, mode));
      return true;
    } catch (err) {
      if (!hasCode(err, "EEXIST")) throw err;
    }
    const st = await this.lstat(rel);
    if (st?.isDirectory) return false;
    throw this.#symlinkError(rel);
  }

  /** Metadata of `rel` itself ("" for this directory; a symlink is reported, not followed), or null when missing. */
  async lstat(rel: string): Promise<EntryStat | null> {
    try {
      const st =
        rel === ""
          ? await fstatat(this.#fd, "", C.AT_EMPTY_PATH)
          : await this.#inParent(rel, (fd, name) => fstatat(fd, name, C.AT_SYMLINK_NOFOLLOW));
      const type = st.mode & C.S_IFMT;
      return {
        mode: st.mode,
        uid: st.uid,
        size: st.size,
        isDirectory: type === C.S_IFDIR,
        isFile: type === C.S_IFREG,
        isSymlink: type === C.S_IFLNK,
      };
    } catch (err) {
      if (hasCode(err, "ENOENT")) return null;
      throw err;
    }
  }

  /** The bytes of file `rel`. @throws ENOENT, ERR_STORE_SYMLINK */
  async readFile(rel: string): Promise<Buffer> {
    const fd = await this.openFd(rel, C.O_RDONLY);
    try {
      return await readWholeFd(fd);
    } finally {
      await close(fd);
    }
  }

  /** File `rel` as UTF-8, or null when it (or its directory) does not exist. */
  async readOptional(rel: string): Promise<string | null> {
    try {
      return (await this.readFile(rel)).toString("utf8");
    } catch (err) {
      if (hasCode(err, "ENOENT", "ENOTDIR")) return null;
      throw err;
    }
  }

  /** Names in directory `rel` ("" for this one). @throws ENOENT, ERR_STORE_SYMLINK */
  async readdir(rel = ""): Promise<string[]> {
    const fd = await this.openFd(rel, C.O_RDONLY | C.O_DIRECTORY);
    try {
      return await readdirPath(`/proc/self/fd/${fd}`);
    } finally {
      await close(fd);
    }
  }

  /** Like {@link readdir}, but [] when `rel` does not exist. */
  async readdirOptional(rel = ""): Promise<string[]> {
    try {
      return await this.readdir(rel);
    } catch (err) {
      if (hasCode(err, "ENOENT")) return [];
      throw err;
    }
  }

  /** Creates or truncates file `rel` with `data` (not atomic; for markers and scratch files). */
  async writeFile(rel: string, data: string | Buffer, mode = 0o600): Promise<void> {
    const fd = await this.openFd(rel, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, mode);
    try {
      await writeAll(fd, Buffer.from(data));
    } finally {
      await close(fd);
    }
  }

  /**
   * Writes file `rel` atomically: a temporary file named for this process
   * (so a sweep can tell a dead writer's leftover), fsync unless `durable`
   * is false, renameat2 over `rel`, fsync of the directory.
   */
  async writeAtomic(
    rel: string,
    data: string | Buffer,
    { mode = 0o600, durable = true }: { mode?: number; durable?: boolean } = {},
  ): Promise<void> {
    const dir = posix.dirname(rel);
    const tmp = posix.join(dir, await tmpName(`.${posix.basename(rel)}`));
    const fd = await this.openFd(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, mode);
    try {
      await writeAll(fd, Buffer.from(data));
      if (durable) await fsync(fd);
    } catch (err) {
      await close(fd);
      await this.unlink(tmp).catch(() => undefined);
      throw err;
    }
    await close(fd);
    try {
      await this.rename(tmp, rel);
    } catch (err) {
      await this.unlink(tmp).catch(() => undefined);
      throw err;
    }
    if (durable) await this.sync(dir);
  }

  /** JSON variant of {@link writeAtomic}. */
  writeJsonAtomic(rel: string, value: unknown, opts: { durable?: boolean } = {}): Promise<void> {
    return this.writeAtomic(rel, `${JSON.stringify(value, null, 2)}\n`, opts);
  }

  /** fsync of directory `rel` ("" for this one), so creates and renames in it are durable. */
  async sync(rel = ""): Promise<void> {
    const fd = await this.openFd(rel, C.O_RDONLY | C.O_DIRECTORY);
    try {
      await fsync(fd);
    } finally {
      await close(fd);
    }
  }

  /**
   * renameat2 of `from` to `to`, both below this directory (replacing `to`
   * as rename(2) does, unless `flags` has RENAME_NOREPLACE, 1).
   */
  async rename(from: string, to: string, flags = 0): Promise<void> {
    await this.#inParent(from, (fromFd, fromName) =>
      this.#inParent(to, (toFd, toName) => renameat2(fromFd, fromName, toFd, toName, flags)),
    );
  }

  /** Creates symlink `rel` with the text `target` (symlinkat; the target is not resolved). */
  async symlink(target: string, rel: string): Promise<void> {
    await this.#inParent(rel, (fd, name) => symlinkat(target, fd, name));
  }

  /** The text of symlink `rel` (readlinkat; the link is not followed). */
  async readlink(rel: string): Promise<string> {
    return this.#inParent(rel, (fd, name) => readlinkat(fd, name));
  }

  /** Unlinks file (or symlink) `rel`. @returns false when it did not exist */
  async unlink(rel: string): Promise<boolean> {
    try {
      await this.#inParent(rel, (fd, name) => unlinkat(fd, name, 0));
      return true;
    } catch (err) {
      if (hasCode(err, "ENOENT")) return false;
      throw err;
    }
  }

  /**
   * Removes `rel` and everything below it by file descriptor (any depth; a
   * symlink is removed, never followed; a mount inside is refused with
   * EXDEV). A missing `rel` is fine.
   */
  async removeTree(rel: string): Promise<void> {
    try {
      await this.#inParent(rel, (fd, name) => removeTreeAt(fd, name));
    } catch (err) {
      if (hasCode(err, "ENOENT")) return;
      throw err;
    }
  }

  /** Closes the directory's fd. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await close(this.#fd);
  }
}
