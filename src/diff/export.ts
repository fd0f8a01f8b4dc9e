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
import { posix } from "node:path";
import type { Readable } from "node:stream";
import type { TarHeader } from "../archive/tar-header.js";
import { type TarOutputEntry, tarStream } from "../archive/tar-writer.js";
import { WHITEOUT_OPAQUE, WHITEOUT_PREFIX, type WhiteoutFormat } from "../archive/whiteouts.js";
import { hasCode } from "../errors.js";
import type { Change } from "./changes.js";
import * as n from "../native.js";
import { C, EXPORT, type ExportScanResult } from "../native.js";
import { readFdAndClose } from "../util/read-fd.js";

/** Options of {@link exportTree} and {@link exportChanges}. */
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

/** Small files are read with their directory's metadata, up to this much per directory scan. */
const INLINE_MAX = 256 << 10;
const INLINE_BUDGET = 4 << 20;
/** Directory scans of a change list kept in flight ahead of the tar writer. */
const PREFETCH = 3;
/** Entries per batch of a tree walk. */
const WALK_ENTRIES = 2048;
/**
 * The first batch of a walk: the batches double from here to WALK_ENTRIES,
 * so the first bytes of the tar go out while the rest of the tree is read
 * (a consumer that applies the tar as it comes, such as dockerd's commit,
 * works meanwhile instead of waiting for 2048 entries read from a cold cache).
 */
const FIRST_WALK_ENTRIES = 64;
const RESOLVE = C.RESOLVE_IN_ROOT | C.RESOLVE_NO_MAGICLINKS;

type Scan = ExportScanResult;

/**
 * Turns scanned entries into tar entries: the filesystem work happens in
 * {@link n.exportScan} (one thread-pool trip per directory, contained by
 * RESOLVE_IN_ROOT); this class only shapes headers and remembers hardlinks.
 */
class Exporter {
  readonly root: number;
  readonly #overlay: boolean;
  #seen = new Map<string, string>(); // dev:ino -> first name written

  constructor(root: number, opts: ExportOptions) {
    this.root = root;
    this.#overlay = opts.whiteouts === "overlay";
  }

  scan(dir: string, names: string[]): Promise<Scan> {
    const p = n.exportScan(this.root, dir, names, {
      opaque: this.#overlay,
      inlineMax: INLINE_MAX,
      inlineBudget: INLINE_BUDGET,
    });
    p.catch(() => {}); // prefetched: a failure is reported when awaited, or dropped with the export
    return p;
  }

  /** Tar entries for entry `i` of `scan` (directory `dir`); none when it vanished. */
  *entries(scan: Scan, i: number, dir: string): Generator<TarOutputEntry> {
    const f = scan.stats.subarray(i * EXPORT.FIELDS, (i + 1) * EXPORT.FIELDS);
    const mode = f[EXPORT.MODE]!;
    if (Number.isNaN(mode)) return; // the container removed it meanwhile
    const rel = dir ? `${dir}/${scan.names[i]}` : scan.names[i]!;
    const fmt = mode & C.S_IFMT;
    const header: TarHeader = {
      name: rel,
      type: "file",
      mode: mode & 0o7777,
      uid: f[EXPORT.UID]!,
      gid: f[EXPORT.GID]!,
      uname: "",
      gname: "",
      size: 0,
      mtime: { sec: f[EXPORT.MTIME_SEC]!, nsec: 0 },
      linkname: "",
      devmajor: 0,
      devminor: 0,
      xattrs: new Map(),
    };
    if (this.#overlay && fmt === C.S_IFCHR && f[EXPORT.RDEV_MAJOR] === 0 && f[EXPORT.RDEV_MINOR] === 0) {
      yield { header: { ...header, name: whiteoutName(rel), mode: 0o600 } };
      return;
    }
    const cap = scan.caps[i];
    if (cap) header.xattrs.set("security.capability", capabilityForExport(cap));
    if (fmt !== C.S_IFDIR && f[EXPORT.NLINK]! > 1) {
      const key = `${f[EXPORT.DEV]}:${f[EXPORT.INO]}`;
      const first = this.#seen.get(key);
      if (first !== undefined) {
        yield { header: { ...header, type: "link", linkname: first } };
        return;
      }
      this.#seen.set(key, rel);
    }
    switch (fmt) {
      case C.S_IFDIR:
        header.type = "dir";
        yield { header };
        if (scan.opaque[i]) {
          yield { header: { ...header, type: "file", name: `${rel}/${WHITEOUT_OPAQUE}`, xattrs: new Map() } };
        }
        return;
      case C.S_IFLNK:
        header.type = "symlink";
        header.linkname = scan.links[i] ?? "";
        yield { header };
        return;
      case C.S_IFCHR:
      case C.S_IFBLK:
        header.type = fmt === C.S_IFCHR ? "char" : "block";
        header.devmajor = f[EXPORT.RDEV_MAJOR]!;
        header.devminor = f[EXPORT.RDEV_MINOR]!;
        yield { header };
        return;
      case C.S_IFIFO:
        header.type = "fifo";
        yield { header };
        return;
      case C.S_IFREG: {
        header.size = f[EXPORT.SIZE]!;
        const at = f[EXPORT.DATA_OFFSET]!;
        const body = at >= 0 ? scan.data.subarray(at, at + header.size) : this.#stream(rel, header.size);
        yield { header, body };
        return;
      }
      default:
        return; // sockets are not archived, as in Docker
    }
  }

  /** A large file's content, opened inside the root only when the writer gets to it. */
  async *#stream(rel: string, size: number): AsyncGenerator<Buffer> {
    let fd: number;
    try {
      fd = await n.openat2(this.root, rel, C.O_RDONLY | C.O_NOFOLLOW, 0, RESOLVE);
    } catch (err) {
      if (hasCode(err, "ENOENT", "ENOTDIR", "ELOOP")) return; // gone or swapped: the writer zero-fills
      throw err;
    }
    yield* readFdAndClose(fd, size);
  }
}

/** `a/b/NAME` -> `a/b/.wh.NAME` */
function whiteoutName(rel: string): string {
  const slash = rel.lastIndexOf("/");
  return rel.slice(0, slash + 1) + WHITEOUT_PREFIX + rel.slice(slash + 1);
}

async function openRoot(dir: string): Promise<number> {
  return n.openat2(C.AT_FDCWD, dir, C.O_PATH | C.O_DIRECTORY);
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
    const root = await openRoot(dir);
    try {
      const ex = new Exporter(root, opts);
      const now = Math.floor(Date.now() / 1000);
      const steps = changeSteps(sorted);
      const scans = steps.map(() => null as Promise<Scan> | null);
      const start = (k: number) => {
        const s = steps[k];
        if (s && "names" in s && !scans[k]) scans[k] = ex.scan(s.dir, s.names);
      };
      for (let k = 0; k < steps.length; k++) {
        for (let j = k; j < k + PREFETCH; j++) start(j);
        const step = steps[k]!;
        if ("whiteout" in step) {
          yield { header: whiteoutHeader(step.whiteout, now) };
          continue;
        }
        const scan = await scans[k]!;
        scans[k] = null;
        for (let i = 0; i < scan.names.length; i++) yield* ex.entries(scan, i, step.dir);
      }
    } finally {
      await n.close(root);
    }
  }
  return tarStream(entries());
}

type ChangeStep = { whiteout: string } | { dir: string; names: string[] };

/** Sorted changes as steps: a whiteout per deletion, and runs of siblings scanned together. */
function changeSteps(sorted: Change[]): ChangeStep[] {
  const steps: ChangeStep[] = [];
  for (const c of sorted) {
    const rel = c.path.replace(/^\/+/, "");
    const dir = posix.dirname(rel) === "." ? "" : posix.dirname(rel);
    const base = posix.basename(rel);
    if (c.kind === "D") {
      steps.push({ whiteout: whiteoutName(rel) });
      continue;
    }
    const last = steps[steps.length - 1];
    if (last && "names" in last && last.dir === dir) last.names.push(base);
    else steps.push({ dir, names: [base] });
  }
  return steps;
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
    const root = await openRoot(dir);
    const ex = new Exporter(root, opts);
    const walker = new n.ExportWalker(root, { opaque: opts.whiteouts === "overlay", inlineMax: INLINE_MAX });
    try {
      // The next batch is read while this one is written.
      let size = FIRST_WALK_ENTRIES;
      let pending = walker.next(size, INLINE_BUDGET);
      for (;;) {
        const batch = await pending;
        size = Math.min(size * 2, WALK_ENTRIES);
        if (!batch.done) pending = walker.next(size, INLINE_BUDGET);
        for (let i = 0; i < batch.names.length; i++) yield* ex.entries(batch, i, "");
        if (batch.done) break;
      }
    } finally {
      await walker.close(); // waits for a read-ahead still in flight
      await n.close(root);
    }
  }
  return tarStream(entries());
}
