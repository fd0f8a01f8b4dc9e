/**
 * A directory tree reached only through openat2(RESOLVE_IN_ROOT): parents
 * of tar entries are resolved as if the root were `/`, so `..`, absolute
 * symlinks and symlink chains never lead outside it. Resolved directory fds
 * are cached by relative path (at most {@link MAX_CACHED}); any removal
 * clears the cache, because a removed directory's fd would still point at
 * the unlinked inode. Dropped fds are closed only at the next
 * {@link RootDir.settle}, so an fd a caller is still using stays valid until
 * the caller says it is done with its step.
 *
 * @module
 */
import { posix } from "node:path";
import { hasCode, InvalidArgumentError } from "../errors.js";
import { C, close, mkdirat, openat2 } from "../native.js";
import { removeTree } from "./remove-tree.js";

const DIR_FLAGS = C.O_PATH | C.O_DIRECTORY;
const RESOLVE = C.RESOLVE_IN_ROOT | C.RESOLVE_NO_MAGICLINKS;
const MAX_CACHED = 512;

/** A parent that exists but does not lead to a directory inside the root (file, loop, dangling link). */
function notADir(rel: string, cause: unknown): Error {
  if (!hasCode(cause, "ENOENT", "ENOTDIR", "ELOOP")) return cause as Error;
  const why = (cause as { code: string }).code;
  return new InvalidArgumentError(
    "ERR_PARENT_NOT_DIR",
    `Cannot apply the entry: parent "${rel}" is not a directory inside the layer root (${why})`,
    { cause },
  );
}

export class RootDir {
  readonly path: string;
  readonly fd: number;
  #dirs = new Map<string, number>();
  #dropped: number[] = [];

  private constructor(path: string, fd: number) {
    this.path = path;
    this.fd = fd;
  }

  /** Opens `path` (which must be a directory) as a root. Close it with {@link close}. */
  static async open(path: string): Promise<RootDir> {
    const fd = await openat2(C.AT_FDCWD, path, DIR_FLAGS);
    return new RootDir(path, fd);
  }

  /** A path through procfs that names the directory fd's target without re-walking its path. */
  static procPath(fd: number, name?: string): string {
    return name === undefined || name === "" ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
  }

  /**
   * Returns an O_PATH fd of the directory `rel` inside the root, resolved
   * in the root. With `create`, missing components are made 0755 (root-owned),
   * as Docker makes implied parent directories.
   * @throws ENOENT / ENOTDIR as SystemError when absent and not created; with `create`,
   *   ERR_PARENT_NOT_DIR when a component is a file, a symlink loop or a link to nothing
   *   inside the root
   */
  async dir(rel: string, create = false): Promise<number> {
    if (rel === "" || rel === ".") return this.fd;
    const cached = this.#dirs.get(rel);
    if (cached !== undefined) return cached;
    let fd: number;
    try {
      fd = await openat2(this.fd, rel, DIR_FLAGS, 0, RESOLVE);
    } catch (err) {
      if (!create) throw err;
      if (!hasCode(err, "ENOENT")) throw notADir(rel, err);
      const parent = await this.dir(posix.dirname(rel) === "." ? "" : posix.dirname(rel), true);
      const base = posix.basename(rel);
      try {
        await mkdirat(parent, base, 0o755);
      } catch (e) {
        if (!hasCode(e, "EEXIST")) throw e;
      }
      try {
        fd = await openat2(this.fd, rel, DIR_FLAGS, 0, RESOLVE);
      } catch (e) {
        throw notADir(rel, e); // e.g. a symlink whose target is missing inside the root
      }
    }
    if (this.#dirs.size >= MAX_CACHED) this.#dropAll();
    this.#dirs.set(rel, fd);
    return fd;
  }

  /** Removes `name` inside directory fd `parent`, recursively, never following symlinks. */
  async removeAll(parent: number, name: string): Promise<void> {
    if (name === "" || name === "." || name === ".." || name.includes("/")) {
      throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot remove: bad name "${name}"`);
    }
    try {
      await removeTree(parent, name);
    } finally {
      this.#dropAll();
    }
  }

  #dropAll(): void {
    this.#dropped.push(...this.#dirs.values());
    this.#dirs.clear();
  }

  /** Closes the fds dropped from the cache; call between steps, when no fd from {@link dir} is in use. */
  async settle(): Promise<void> {
    const fds = this.#dropped;
    this.#dropped = [];
    await Promise.all(fds.map((fd) => close(fd)));
  }

  async close(): Promise<void> {
    this.#dropAll();
    await this.settle();
    await close(this.fd);
  }
}
