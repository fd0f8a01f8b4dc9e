/**
 * changes(newDir, oldDir): Docker's ChangesDirs. Both trees are walked in
 * parallel, one native trip per directory pair; names with the same inode on
 * the same device are skipped without an lstat (overlay lowers and
 * hardlinked copies cost nothing). Comparison and ordering rules:
 *
 * - an entry in both trees is "C" when mode, uid, gid, rdev or the
 *   `security.capability` bytes differ, or, for non-directories, the size or
 *   the mtime (seconds equal and nanoseconds equal or either zero);
 * - an entry only in the new tree is "A", and so is everything below it;
 * - an entry only in the old tree is "D" (its children are not listed);
 * - old children are compared only when the new entry is a directory;
 * - an unchanged directory with changes below gets a "C" before them.
 *
 * @module
 */
import { posix } from "node:path";
import { SCAN, scanPair } from "../native.js";

/** One entry of a change list, as `docker diff` prints it. */
export interface Change {
  /** Absolute path inside the layer, e.g. `/etc/hosts`. */
  path: string;
  /** A = added, C = changed, D = deleted. */
  kind: "A" | "C" | "D";
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

interface Side {
  stats: Float64Array;
  caps: Array<Buffer | undefined>;
  index: number;
}

function present(s: Side): boolean {
  return !Number.isNaN(s.stats[s.index * SCAN.FIELDS + SCAN.MODE]!);
}
function field(s: Side, f: number): number {
  return s.stats[s.index * SCAN.FIELDS + f]!;
}
function isDir(s: Side): boolean {
  return (field(s, SCAN.MODE) & S_IFMT) === S_IFDIR;
}

/** Docker's statDifferent, including its `mode & S_IFDIR` test (true for sockets and block devices too). */
function statDifferent(o: Side, n: Side): boolean {
  const mode = field(n, SCAN.MODE);
  if (
    field(o, SCAN.MODE) !== mode ||
    field(o, SCAN.UID) !== field(n, SCAN.UID) ||
    field(o, SCAN.GID) !== field(n, SCAN.GID) ||
    field(o, SCAN.RDEV_MAJOR) !== field(n, SCAN.RDEV_MAJOR) ||
    field(o, SCAN.RDEV_MINOR) !== field(n, SCAN.RDEV_MINOR)
  ) {
    return true;
  }
  if ((mode & S_IFDIR) === S_IFDIR) return false;
  if (field(o, SCAN.SIZE) !== field(n, SCAN.SIZE)) return true;
  return !sameFsTime(
    field(o, SCAN.MTIME_SEC),
    field(o, SCAN.MTIME_NSEC),
    field(n, SCAN.MTIME_SEC),
    field(n, SCAN.MTIME_NSEC),
  );
}

/** Times are equal when the seconds match and the nanoseconds match or either is zero (tar keeps whole seconds). */
export function sameFsTime(aSec: number, aNsec: number, bSec: number, bNsec: number): boolean {
  return aSec === bSec && (aNsec === bNsec || aNsec === 0 || bNsec === 0);
}

function capsDiffer(o: Side, n: Side): boolean {
  const a = o.caps[o.index];
  const b = n.caps[n.index];
  if (!a || !b) return a !== b;
  return !a.equals(b);
}

/**
 * Lists what `newDir` changed relative to `oldDir` (`null`: everything is added).
 * @returns changes in walk order (parents before children, byte-sorted names)
 * @example
 * for (const c of await changes("/merged", "/lower")) console.log(c.kind, c.path);
 */
export async function changes(newDir: string, oldDir: string | null, opts: ChangesOptions = {}): Promise<Change[]> {
  return walk("/", newDir, oldDir, true, true, opts.descend);
}

/** Options for {@link changes}. */
export interface ChangesOptions {
  /**
   * Called for a directory present in both trees before walking into it
   * (path absolute inside the layer); `false` skips it as unchanged below.
   * Overlay passes "exists in the upper dir": anything changed below a
   * directory copies that directory up.
   */
  descend?: (path: string) => Promise<boolean>;
}

/**
 * addChanges for one directory of the new tree. `oldPath` is its counterpart
 * when that is a directory too; `added` says whether the directory itself
 * was already listed as A or C. Subdirectories are walked concurrently (one
 * native trip each, on the thread pool) and their lists joined in name order.
 */
async function walk(
  path: string,
  newPath: string,
  oldPath: string | null,
  added: boolean,
  isRoot: boolean,
  descend?: (path: string) => Promise<boolean>,
): Promise<Change[]> {
  const scan = await scanPair(newPath, oldPath);
  const n: Side = { stats: scan.newStats, caps: scan.newCaps, index: 0 };
  const o: Side = { stats: scan.oldStats, caps: scan.oldCaps, index: 0 };
  const parts: Array<Change | Promise<Change[]>> = [];
  const deleted: Change[] = [];
  for (let i = 0; i < scan.names.length; i++) {
    n.index = i;
    o.index = i;
    const name = scan.names[i]!;
    const childPath = path === "/" ? `/${name}` : `${path}/${name}`;
    const inNew = present(n);
    const inOld = oldPath !== null && present(o);
    if (!inNew) {
      if (inOld) deleted.push({ path: childPath, kind: "D" });
      continue;
    }
    let childAdded = false;
    if (!inOld) {
      parts.push({ path: childPath, kind: "A" });
      childAdded = true;
    } else if (statDifferent(o, n) || capsDiffer(o, n)) {
      parts.push({ path: childPath, kind: "C" });
      childAdded = true;
    }
    if (isDir(n)) {
      const oldChild = inOld && isDir(o) ? posix.join(oldPath!, name) : null;
      const sub = (async () => {
        if (oldChild !== null && descend && !(await descend(childPath))) return [];
        return walk(childPath, posix.join(newPath, name), oldChild, childAdded, false, descend);
      })();
      sub.catch(() => {}); // awaited below; this only keeps an early failure elsewhere from going unhandled
      parts.push(sub);
    }
  }
  const out: Change[] = [];
  for (const p of parts) {
    if (p instanceof Promise) {
      for (const c of await p) out.push(c);
    } else {
      out.push(p);
    }
  }
  for (const d of deleted) out.push(d);
  if (out.length > 0 && !added && !isRoot) out.unshift({ path, kind: "C" });
  return out;
}
