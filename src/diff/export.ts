/**
 * Export: tar streams of a tree or of a change list, in the AUFS whiteout
 * form. Headers follow Docker's tarAppender: PAX, whole-second mtimes,
 * directory names with "/", device numbers, hardlinks for inodes already
 * written, and `security.capability` as the only xattr (v3 rewritten as v2).
 * With `whiteouts: "overlay"` the tree is an overlay upper dir: char 0/0
 * devices become `.wh.NAME` and opaque directories get `.wh..wh..opq`.
 *
 * Files are read through openat2(RESOLVE_IN_ROOT), so a container that swaps
 * a directory for a symlink while it is exported cannot leak host files.
 *
 * @module
 */
import { readdir } from "node:fs/promises";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import type { TarHeader } from "../archive/tar-header.js";
import { type TarOutputEntry, tarStream } from "../archive/tar-writer.js";
import { OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX, type WhiteoutFormat } from "../archive/whiteouts.js";
import { hasCode } from "../errors.js";
import type { Change } from "../graphdriver/driver.js";
import * as n from "../native.js";
import { C } from "../native.js";
import { readFdAndClose } from "../util/read-fd.js";
import { RootDir } from "./root-dir.js";

export interface ExportOptions {
  /** How whiteouts are stored in the tree being exported. Default "aufs" (no conversion). */
  whiteouts?: WhiteoutFormat;
}

const VFS_CAP_REVISION_MASK = 0xff000000;
const VFS_CAP_REVISION_3 = 0x03000000;
const VFS_CAP_REVISION_2 = 0x02000000;

/** Docker exports v3 file capabilities as v2 (20 bytes, no root uid). */
export function capabilityForExport(cap: Buffer): Buffer {
  if (cap.length >= 4 && (cap.readUInt32LE(0) & VFS_CAP_REVISION_MASK) === VFS_CAP_REVISION_3) {
    const v2 = Buffer.from(cap.subarray(0, 20));
    v2.writeUInt32LE((cap.readUInt32LE(0) & ~VFS_CAP_REVISION_MASK) | VFS_CAP_REVISION_2, 0);
    return v2;
  }
  return cap;
}

class Exporter {
  #root: RootDir;
  #opts: ExportOptions;
  #seen = new Map<string, string>(); // dev:ino -> first name written

  constructor(root: RootDir, opts: ExportOptions) {
    this.#root = root;
    this.#opts = opts;
  }

  /** Entries for one path (relative, no leading "/"); none when it vanished. */
  async *entry(rel: string): AsyncGenerator<TarOutputEntry> {
    await this.#root.settle();
    const parentRel = posix.dirname(rel) === "." ? "" : posix.dirname(rel);
    const base = posix.basename(rel);
    let parent: number;
    let st: Awaited<ReturnType<typeof n.fstatat>>;
    try {
      parent = await this.#root.dir(parentRel);
      st = await n.fstatat(parent, base, C.AT_SYMLINK_NOFOLLOW);
    } catch (err) {
      if (hasCode(err, "ENOENT", "ENOTDIR")) return; // the container removed it meanwhile
      throw err;
    }
    const fmt = st.mode & C.S_IFMT;
    const header: TarHeader = {
      name: rel,
      type: "file",
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      uname: "",
      gname: "",
      size: 0,
      mtime: { sec: st.mtimeSec, nsec: 0 },
      linkname: "",
      devmajor: 0,
      devminor: 0,
      xattrs: new Map(),
    };
    const overlay = this.#opts.whiteouts === "overlay";
    if (overlay && fmt === C.S_IFCHR && st.rdevMajor === 0 && st.rdevMinor === 0) {
      yield { header: { ...header, name: posix.join(parentRel, WHITEOUT_PREFIX + base), mode: 0o600 } };
      return;
    }
    if (fmt !== C.S_IFLNK) {
      const cap = await n.lgetxattr(RootDir.procPath(parent, base), "security.capability").catch(() => null);
      if (cap) header.xattrs.set("security.capability", capabilityForExport(cap));
    }
    const key = `${st.dev}:${st.ino}`;
    if (fmt !== C.S_IFDIR && st.nlink > 1) {
      const first = this.#seen.get(key);
      if (first !== undefined) {
        yield { header: { ...header, type: "link", linkname: first } };
        return;
      }
      this.#seen.set(key, rel);
    }
    switch (fmt) {
      case C.S_IFDIR: {
        header.type = "dir";
        yield { header };
        if (overlay) {
          const opaque = await n.lgetxattr(RootDir.procPath(parent, base), OVERLAY_OPAQUE_XATTR).catch(() => null);
          if (opaque?.toString() === "y") {
            yield { header: { ...header, type: "file", name: posix.join(rel, WHITEOUT_OPAQUE), xattrs: new Map() } };
          }
        }
        return;
      }
      case C.S_IFLNK:
        header.type = "symlink";
        header.linkname = await n.readlinkat(parent, base);
        yield { header };
        return;
      case C.S_IFCHR:
      case C.S_IFBLK:
        header.type = fmt === C.S_IFCHR ? "char" : "block";
        header.devmajor = st.rdevMajor;
        header.devminor = st.rdevMinor;
        yield { header };
        return;
      case C.S_IFIFO:
        header.type = "fifo";
        yield { header };
        return;
      case C.S_IFREG: {
        header.size = st.size;
        const fd = await n.openat2(parent, base, C.O_RDONLY | C.O_NOFOLLOW);
        yield { header, body: readFdAndClose(fd, st.size) };
        return;
      }
      default:
        return; // sockets are not archived, as in Docker
    }
  }

  async close(): Promise<void> {
    await this.#root.close();
  }
}

/**
 * Tar of the change list `changes` of tree `dir`: deletions as `.wh.NAME`
 * (empty, mode 0, uid/gid 0, mtime now), additions and modifications as
 * entries read from `dir`. Sorted by path, as Docker's ExportChanges.
 * The caller consumes or destroys the stream.
 */
export function exportChanges(dir: string, changes: Change[], opts: ExportOptions = {}): Readable {
  const sorted = [...changes].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  async function* entries(): AsyncGenerator<TarOutputEntry> {
    const ex = new Exporter(await RootDir.open(dir), opts);
    try {
      const now = Math.floor(Date.now() / 1000);
      for (const c of sorted) {
        const rel = c.path.replace(/^\/+/, "");
        if (c.kind === "D") {
          const name = posix.join(posix.dirname(rel), WHITEOUT_PREFIX + posix.basename(rel));
          yield { header: whiteoutHeader(name, now) };
        } else {
          yield* ex.entry(rel);
        }
      }
    } finally {
      await ex.close();
    }
  }
  return tarStream(entries());
}

function whiteoutHeader(name: string, sec: number): TarHeader {
  return {
    name,
    type: "file",
    mode: 0,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
    size: 0,
    mtime: { sec, nsec: 0 },
    linkname: "",
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
  };
}

/**
 * Tar of the whole tree `dir` (the root itself not included), depth first
 * in byte order of names, as Docker's archive.Tar.
 */
export function exportTree(dir: string, opts: ExportOptions = {}): Readable {
  async function* entries(): AsyncGenerator<TarOutputEntry> {
    const ex = new Exporter(await RootDir.open(dir), opts);
    try {
      yield* walkTree(ex, dir, "");
    } finally {
      await ex.close();
    }
  }
  return tarStream(entries());
}

async function* walkTree(ex: Exporter, top: string, rel: string): AsyncGenerator<TarOutputEntry> {
  const names = (await readdir(rel ? posix.join(top, rel) : top, { withFileTypes: true }))
    .map((d) => ({ name: d.name, dir: d.isDirectory() }))
    .sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  for (const d of names) {
    const childRel = rel ? `${rel}/${d.name}` : d.name;
    yield* ex.entry(childRel);
    if (d.dir) yield* walkTree(ex, top, childRel);
  }
}
