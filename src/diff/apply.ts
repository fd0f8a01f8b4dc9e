/**
 * applyLayer: Docker's UnpackLayer. Applies an uncompressed layer tar onto a
 * directory tree: AUFS whiteouts delete (or, in the overlay form, become
 * char 0/0 devices and opaque xattrs), a non-directory replaces a directory
 * and vice versa, parents are implied, ownership/mode/xattrs/times are set
 * in Docker's order, and directory times are restored at the end.
 *
 * Containment: names are cleaned and refused when they climb out
 * (ERR_BREAKOUT); every parent is resolved with openat2(RESOLVE_IN_ROOT) and
 * every operation acts on one name inside an already-contained directory.
 *
 * @module
 */
import { createWriteStream } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { assertSafeSymlink, cleanEntryPath } from "../archive/paths.js";
import type { TarHeader } from "../archive/tar-header.js";
import { readTar, type TarEntry, type TarRecorder } from "../archive/tar-reader.js";
import {
  OVERLAY_OPAQUE_XATTR,
  WHITEOUT_LINK_DIR,
  WHITEOUT_META_PREFIX,
  WHITEOUT_OPAQUE,
  WHITEOUT_PREFIX,
  type WhiteoutFormat,
} from "../archive/whiteouts.js";
import { BreakoutError, hasCode, InvalidArgumentError, StrataError } from "../errors.js";
import * as n from "../native.js";
import { C } from "../native.js";
import { RootDir } from "./root-dir.js";
import { writeBody } from "./write-body.js";

/** One contiguous range of an id map: container ids [containerId, containerId+size) ↦ host ids. */
export interface IdMapping {
  containerId: number;
  hostId: number;
  size: number;
}

export interface ApplyOptions {
  /** "aufs" (default) deletes whited-out paths; "overlay" writes the kernel's whiteout form. */
  whiteouts?: WhiteoutFormat;
  uidMap?: IdMapping[];
  gidMap?: IdMapping[];
  /** Sees the archive's raw non-content bytes, for pristine re-assembly. */
  recorder?: TarRecorder;
}

export interface ApplyResult {
  /** Σ of header sizes over all entries, as Docker's ApplyLayer returns it. */
  size: number;
  /** Non-fatal problems (xattrs the filesystem refused). */
  warnings: string[];
}

function mapId(id: number, map: IdMapping[] | undefined, what: string): number {
  if (!map || map.length === 0) return id;
  for (const m of map) if (id >= m.containerId && id < m.containerId + m.size) return m.hostId + (id - m.containerId);
  throw new StrataError("ERR_ID_MAP", `Cannot apply the entry: ${what} ${id} is not in the id map`);
}

const split = (rel: string): [string, string] => {
  const d = posix.dirname(rel);
  return [d === "." ? "" : d, posix.basename(rel)];
};

/**
 * Applies `tar` onto `dir`.
 * @param dir an existing directory: the layer's tree
 * @param tar an uncompressed tar stream (any async iterable of bytes)
 * @throws ERR_BREAKOUT for an entry leaving the root; ERR_TAR_FORMAT for malformed input
 * @example
 * const { size } = await applyLayer("/var/lib/strata/vfs/dir/abc", fs.createReadStream("layer.tar"));
 */
export async function applyLayer(
  dir: string,
  tar: AsyncIterable<Buffer | Uint8Array | string>,
  opts: ApplyOptions = {},
): Promise<ApplyResult> {
  const applier = new Applier(await RootDir.open(dir), opts);
  try {
    for await (const entry of readTar(tar, opts.recorder)) await applier.entry(entry);
    await applier.restoreDirTimes();
    return { size: applier.size, warnings: applier.warnings };
  } finally {
    await applier.close();
  }
}

class Applier {
  size = 0;
  warnings: string[] = [];
  #root: RootDir;
  #opts: ApplyOptions;
  #unpacked = new Set<string>();
  #dirs: Array<{ rel: string; header: TarHeader }> = [];
  #plnkDir: string | undefined;
  #plnk = new Map<string, TarHeader>();
  #plnkFirst = new Map<string, string>();

  constructor(root: RootDir, opts: ApplyOptions) {
    this.#root = root;
    this.#opts = opts;
  }

  async close(): Promise<void> {
    await this.#root.close();
    if (this.#plnkDir) await rm(this.#plnkDir, { recursive: true, force: true });
  }

  async entry(e: TarEntry): Promise<void> {
    await this.#root.settle();
    const h = e.header;
    this.size += h.size;
    const rel = cleanEntryPath(h.name);
    if (rel.startsWith(WHITEOUT_META_PREFIX)) {
      if (rel.startsWith(`${WHITEOUT_LINK_DIR}/`) && h.type === "file") return this.#stashPlnk(rel, e);
      if (rel !== WHITEOUT_OPAQUE) return;
    }
    const [parentRel, base] = split(rel);
    if (base.startsWith(WHITEOUT_PREFIX)) return this.#whiteout(parentRel, base, h);
    const parent = await this.#root.dir(parentRel, true);

    if (rel === "") {
      if (h.type !== "dir")
        throw new BreakoutError(`Cannot apply the entry: the layer root is not a directory "${h.name}"`);
      await this.#finish(parent, "", h);
      this.#dirs.push({ rel, header: h });
      return;
    }

    let existing: Awaited<ReturnType<typeof n.fstatat>> | undefined;
    try {
      existing = await n.fstatat(parent, base, C.AT_SYMLINK_NOFOLLOW);
    } catch (err) {
      if (!hasCode(err, "ENOENT")) throw err;
    }
    const existingIsDir = existing !== undefined && (existing.mode & C.S_IFMT) === C.S_IFDIR;
    if (existing && !(existingIsDir && h.type === "dir")) await this.#root.removeAll(parent, base);

    let linkTargetIsSymlink = false;
    let keepOwner = false;
    let fd: number | null = null;
    try {
      switch (h.type) {
        case "dir":
          if (!existingIsDir) await n.mkdirat(parent, base, h.mode & 0o7777);
          break;
        case "file":
          fd = await n.openat2(parent, base, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
          await writeBody(fd, e.body());
          break;
        case "symlink":
          assertSafeSymlink(rel, h.linkname);
          await n.symlinkat(h.linkname, parent, base);
          break;
        case "link": {
          const target = cleanEntryPath(h.linkname);
          if (target === "") throw new BreakoutError(`Cannot apply the entry: hardlink to the root "${h.name}"`);
          const plnk = target.startsWith(`${WHITEOUT_LINK_DIR}/`) ? this.#plnk.get(target) : undefined;
          // The first name made from a .wh..wh.plnk body holds its inode; later names link to it (as in Docker).
          const firstName = plnk ? this.#plnkFirst.get(target) : undefined;
          if (plnk && firstName !== undefined && (await this.#linkExisting(firstName, parent, base))) {
            Object.assign(h, { ...plnk, name: h.name });
            break;
          }
          if (plnk) {
            this.#plnkFirst.set(target, rel);
            fd = await n.openat2(parent, base, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
            await writeBody(fd, plnkBody(join(this.#plnkDir!, posix.basename(target))));
            Object.assign(h, { ...plnk, name: h.name });
            break;
          }
          const [tParentRel, tBase] = split(target);
          const { tParent, st } = await this.#linkTarget(tParentRel, tBase, h);
          linkTargetIsSymlink = (st.mode & C.S_IFMT) === C.S_IFLNK;
          await n.linkat(tParent, tBase, parent, base, 0);
          // chown clears file capabilities, and GNU tar writes xattrs only on the first name
          // of an inode: leave the owner alone when it is already right.
          keepOwner =
            st.uid === mapId(h.uid, this.#opts.uidMap, "uid") && st.gid === mapId(h.gid, this.#opts.gidMap, "gid");
          break;
        }
        case "char":
        case "block":
        case "fifo": {
          const typeBits = h.type === "char" ? C.S_IFCHR : h.type === "block" ? C.S_IFBLK : C.S_IFIFO;
          await n.mknodat(parent, base, typeBits | (h.mode & 0o7777), h.devmajor, h.devminor);
          break;
        }
      }
      if (h.type === "symlink" || linkTargetIsSymlink) await this.#finishSymlink(parent, base, h);
      else await this.#finish(parent, base, h, keepOwner);
    } finally {
      if (fd !== null) await n.close(fd);
    }
    if (h.type === "dir") this.#dirs.push({ rel, header: h });
    this.#unpacked.add(rel);
  }

  /** Hardlinks `rel` (made earlier in this layer) as `base` in `parent`; false when it is gone. */
  async #linkExisting(rel: string, parent: number, base: string): Promise<boolean> {
    const [dirRel, name] = split(rel);
    try {
      await n.linkat(await this.#root.dir(dirRel), name, parent, base, 0);
      return true;
    } catch (err) {
      if (hasCode(err, "ENOENT", "ENOTDIR")) return false;
      throw err;
    }
  }

  /** The existing non-directory a hardlink entry points at, resolved inside the root. */
  async #linkTarget(parentRel: string, base: string, h: TarHeader) {
    const bad = (why: string, cause?: unknown) =>
      new InvalidArgumentError(
        "ERR_LINK_TARGET",
        `Cannot apply the entry: hardlink "${h.name}" -> "${h.linkname}": ${why}`,
        { cause },
      );
    try {
      const tParent = await this.#root.dir(parentRel);
      const st = await n.fstatat(tParent, base, C.AT_SYMLINK_NOFOLLOW);
      if ((st.mode & C.S_IFMT) === C.S_IFDIR) throw bad("the target is a directory");
      return { tParent, st };
    } catch (err) {
      if (hasCode(err, "ENOENT", "ENOTDIR", "ELOOP")) throw bad("no such file in the layer", err);
      throw err;
    }
  }

  /** Ownership, xattrs, mode (after chown: chown clears setuid), then times. */
  async #finish(parent: number, base: string, h: TarHeader, keepOwner = false): Promise<void> {
    const uid = mapId(h.uid, this.#opts.uidMap, "uid");
    const gid = mapId(h.gid, this.#opts.gidMap, "gid");
    const path = RootDir.procPath(parent); // only used for the root entry itself
    if (!keepOwner)
      await n.fchownat(parent, base === "" ? path : base, uid, gid, base === "" ? 0 : C.AT_SYMLINK_NOFOLLOW);
    for (const [k, v] of h.xattrs) {
      try {
        if (base === "")
          await n.lsetxattr(`${path}/.`, k, v); // "/.": the dir, not the fd's magic link
        else await n.lsetxattrat(parent, base, k, v);
      } catch (err) {
        if (!hasCode(err, "ENOTSUP", "EOPNOTSUPP", "EPERM")) throw err;
        this.warnings.push(`ignored xattr ${k} on "${h.name}": ${(err as Error).message}`);
      }
    }
    await n.fchmodat(parent, base === "" ? path : base, h.mode & 0o7777);
    const mtime = h.mtime;
    const atime = h.atime && h.atime.sec >= mtime.sec ? h.atime : mtime;
    await n.utimensat(parent, base === "" ? path : base, atime, mtime, base === "" ? 0 : C.AT_SYMLINK_NOFOLLOW);
  }

  async #finishSymlink(parent: number, base: string, h: TarHeader): Promise<void> {
    await n.fchownat(
      parent,
      base,
      mapId(h.uid, this.#opts.uidMap, "uid"),
      mapId(h.gid, this.#opts.gidMap, "gid"),
      C.AT_SYMLINK_NOFOLLOW,
    );
    for (const [k, v] of h.xattrs) {
      try {
        await n.lsetxattrat(parent, base, k, v);
      } catch (err) {
        if (!hasCode(err, "ENOTSUP", "EOPNOTSUPP", "EPERM")) throw err;
        this.warnings.push(`ignored xattr ${k} on "${h.name}": ${(err as Error).message}`);
      }
    }
    const atime = h.atime && h.atime.sec >= h.mtime.sec ? h.atime : h.mtime;
    await n.utimensat(parent, base, atime, h.mtime, C.AT_SYMLINK_NOFOLLOW);
  }

  async #whiteout(parentRel: string, base: string, h: TarHeader): Promise<void> {
    const overlay = this.#opts.whiteouts === "overlay";
    if (base === WHITEOUT_OPAQUE) {
      const dirFd = await this.#root.dir(parentRel, true);
      // "/." makes the l-call act on the directory, not on the /proc fd link itself
      if (overlay) await n.lsetxattr(`${RootDir.procPath(dirFd)}/.`, OVERLAY_OPAQUE_XATTR, Buffer.from("y"));
      else await this.#removeNotUnpacked(parentRel);
      return;
    }
    const victim = base.slice(WHITEOUT_PREFIX.length);
    if (victim === "" || victim === "." || victim === ".." || base.startsWith(WHITEOUT_META_PREFIX)) {
      if (base.startsWith(WHITEOUT_META_PREFIX)) return; // other AUFS metadata below the root: skipped
      throw new BreakoutError(`Cannot apply the entry: invalid whiteout "${h.name}"`);
    }
    if (overlay) {
      const parent = await this.#root.dir(parentRel, true);
      await this.#root.removeAll(parent, victim);
      await n.mknodat(parent, victim, C.S_IFCHR, 0, 0);
      await n.fchownat(
        parent,
        victim,
        mapId(h.uid, this.#opts.uidMap, "uid"),
        mapId(h.gid, this.#opts.gidMap, "gid"),
        C.AT_SYMLINK_NOFOLLOW,
      );
      this.#unpacked.add(parentRel ? `${parentRel}/${victim}` : victim);
      return;
    }
    let parent: number;
    try {
      parent = await this.#root.dir(parentRel);
    } catch (err) {
      if (hasCode(err, "ENOENT", "ENOTDIR")) return; // nothing there to delete
      throw err;
    }
    await this.#root.removeAll(parent, victim);
  }

  /** Opaque directory in AUFS form: delete what this layer did not itself create. */
  async #removeNotUnpacked(dirRel: string): Promise<void> {
    const dirFd = await this.#root.dir(dirRel);
    const entries = await readdir(RootDir.procPath(dirFd), { withFileTypes: true });
    for (const ent of entries) {
      const childRel = dirRel ? `${dirRel}/${ent.name}` : ent.name;
      if (!this.#unpacked.has(childRel)) {
        await this.#root.removeAll(await this.#root.dir(dirRel), ent.name);
      } else if (ent.isDirectory()) {
        await this.#removeNotUnpacked(childRel);
      }
    }
  }

  async #stashPlnk(rel: string, e: TarEntry): Promise<void> {
    this.#plnkDir ??= await mkdtemp(join(tmpdir(), "strata-plnk-"));
    const file = join(this.#plnkDir, posix.basename(rel));
    const out = createWriteStream(file);
    for await (const chunk of e.body())
      if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
    await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
    this.#plnk.set(rel, e.header);
  }

  /** Directory times change as children are created; set them last, as Docker does. */
  async restoreDirTimes(): Promise<void> {
    for (const { rel, header: h } of this.#dirs) {
      const atime = h.atime && h.atime.sec >= h.mtime.sec ? h.atime : h.mtime;
      try {
        if (rel === "") {
          await n.utimensat(C.AT_FDCWD, RootDir.procPath(this.#root.fd), atime, h.mtime, 0);
          continue;
        }
        const [parentRel, base] = split(rel);
        await n.utimensat(await this.#root.dir(parentRel), base, atime, h.mtime, C.AT_SYMLINK_NOFOLLOW);
      } catch (err) {
        if (!hasCode(err, "ENOENT", "ENOTDIR")) throw err; // removed later in the same layer
      }
    }
  }
}

async function* plnkBody(file: string): AsyncGenerator<Buffer> {
  const { createReadStream } = await import("node:fs");
  for await (const c of createReadStream(file)) yield c as Buffer;
}
