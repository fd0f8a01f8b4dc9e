/**
 * A small seeded generator of realistic trees for round-trip tests: every
 * entry kind a layer can hold (directories with special bits, files of
 * boundary sizes, long and non-ASCII names, relative/absolute/long symlink
 * targets, hardlinks, fifos, char and block devices, user and capability
 * xattrs, ids beyond the octal fields), with whole-second mtimes as tars
 * carry them. The same seed gives the same tree.
 */
import { chmod, lchown, link, lutimes, mkdir, symlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { lsetxattr, mknod } from "../../src/native.js";

/** mulberry32: tiny, fast, good enough to pick shapes. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A v2 file capability (cap_net_bind_service, effective), 20 bytes of binary. */
export function capV2(): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(0x02000001, 0); // revision 2 | VFS_CAP_FLAGS_EFFECTIVE
  b.writeUInt32LE(1 << 10, 4); // permitted: CAP_NET_BIND_SERVICE
  b.writeUInt32LE(0, 8);
  return b;
}

/** The same capability as v3 (24 bytes, with a root uid), as a user namespace writes it. */
export function capV3(rootUid = 0): Buffer {
  const b = Buffer.alloc(24);
  capV2().copy(b);
  b.writeUInt32LE(0x03000001, 0);
  b.writeUInt32LE(rootUid, 20);
  return b;
}

export interface GenOptions {
  seed: number;
  /** Number of directories to scatter entries into. */
  dirs?: number;
  /** Number of non-directory entries. */
  entries?: number;
  /** Leave out device nodes and fifos (formats that cannot carry them, such as V7). */
  devices?: boolean;
  /** Leave out xattrs. */
  xattrs?: boolean;
  /** Leave out names and link targets longer than ustar can hold. */
  longNames?: boolean;
  /** Leave out ids that need more than 7 octal digits. */
  bigIds?: boolean;
}

const SIZES = [0, 1, 100, 511, 512, 513, 1023, 1024, 4096, 65536 + 7, 200_000];
const T0 = 1_600_000_000;

/** Builds the tree under `root` (which must exist and be empty). Returns the number of entries made. */
export async function generateTree(root: string, opts: GenOptions): Promise<number> {
  const rnd = prng(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const int = (n: number) => Math.floor(rnd() * n);
  const devices = opts.devices ?? true;
  const xattrs = opts.xattrs ?? true;
  const longNames = opts.longNames ?? true;
  const bigIds = opts.bigIds ?? true;
  const ids = bigIds ? [0, 0, 1, 33, 1000, 65534, 3_000_000] : [0, 0, 1, 33, 1000, 65534];
  let count = 0;

  const dirs: string[] = [""];
  const dirModes = [0o755, 0o700, 0o2775, 0o1777, 0o555];
  for (let i = 0; i < (opts.dirs ?? 12); i++) {
    const parent = pick(dirs);
    let name = `d${i}`;
    if (longNames && i === 3) name = `deep-${"x".repeat(120)}`;
    if (i === 5) name = `ünï-çødé-${i}`;
    const rel = parent ? `${parent}/${name}` : name;
    await mkdir(join(root, rel));
    dirs.push(rel);
    count++;
  }

  const files: string[] = [];
  const n = opts.entries ?? 60;
  for (let i = 0; i < n; i++) {
    const dir = pick(dirs);
    let name = `e${i}`;
    if (longNames && i % 17 === 3) name = `long-${"n".repeat(110 + int(60))}-${i}`;
    if (i % 13 === 4) name = `spaced name ${i} ✓`;
    const rel = dir ? `${dir}/${name}` : name;
    const p = join(root, rel);
    const kind =
      i < 4
        ? ["file", "symlink", "link", "fifo"][i]!
        : pick(["file", "file", "file", "symlink", "link", "fifo", "dev"]);
    if (kind === "link" && files.length > 0) {
      await link(join(root, pick(files)), p);
      count++;
      continue; // shares the target's inode and metadata
    }
    if (kind === "symlink") {
      const target = pick([
        dir ? "../x" : "./x",
        "/etc/passwd",
        ".",
        "e1",
        longNames ? `t/${"y".repeat(150)}` : "t/y",
        "dangling/ünï",
      ]);
      await symlink(target, p);
      await lchown(p, pick(ids), pick(ids));
      await lutimes(p, T0 + int(1e6), T0 + int(1e6));
      count++;
      continue;
    }
    let regular = false;
    if (kind === "fifo" && devices) {
      await mknod(p, 0o010000 | 0o644, 0, 0);
    } else if (kind === "dev" && devices) {
      const block = rnd() < 0.5;
      await mknod(p, (block ? 0o060000 : 0o020000) | 0o660, pick([1, 8, 259, 4095]), pick([0, 3, 255, 1048575]));
    } else {
      // chown clears setuid bits and capabilities, so it comes first
      await writeFile(p, randomBytesSeeded(rnd, pick(SIZES)));
      await lchown(p, pick(ids), pick(ids));
      await chmod(p, pick([0o644, 0o600, 0o755, 0o4755, 0o2711, 0o444]));
      if (xattrs && i % 5 === 0) await lsetxattr(p, "user.note", Buffer.from(`entry ${i} \u00e9\u0000bin`));
      if (xattrs && i % 7 === 1) await lsetxattr(p, "security.capability", capV2());
      files.push(rel);
      regular = true;
    }
    if (!regular) await lchown(p, pick(ids), pick(ids));
    await utimes(p, T0 + int(1e6), T0 + int(1e6));
    count++;
  }
  // Directory ownership, mode and times last (children change a directory's mtime).
  for (const rel of [...dirs].reverse()) {
    if (rel === "") continue;
    const p = join(root, rel);
    await lchown(p, pick(ids), pick(ids));
    await chmod(p, pick(dirModes));
    await utimes(p, T0 + int(1e6), T0 + int(1e6));
  }
  return count;
}

/** Pseudo-random bytes from the seeded stream (cheap: a seeded 4 KiB block repeated with a counter). */
function randomBytesSeeded(rnd: () => number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  const block = Buffer.alloc(4096);
  for (let i = 0; i < block.length; i++) block[i] = Math.floor(rnd() * 256);
  for (let off = 0, k = 0; off < size; off += block.length, k++) {
    block.writeUInt32LE(k, 0);
    block.copy(out, off, 0, Math.min(block.length, size - off));
  }
  return out;
}
