/**
 * The init layer: files every container expects, later bind-mounted by a
 * runtime (Docker's initlayer.Setup). For each path, every component is
 * first unlinked (an image's file or symlink at /etc/hosts or /etc gives way;
 * directories survive), then the entry is created when missing: parents
 * 0755 root-owned, directories 0755, files empty 0755, /etc/mtab a symlink.
 *
 * @module
 */
import { createReadStream, createWriteStream } from "node:fs";
import { lchown, lstat, mkdir, open, symlink, unlink } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { hasCode } from "../errors.js";
import { C, close } from "../native.js";
import { StoreDir } from "../util/store-dir.js";

/** The init entries, as Docker creates them. */
export const INIT_ENTRIES: ReadonlyArray<readonly [string, "dir" | "file" | "symlink", string?]> = [
  ["/dev/pts", "dir"],
  ["/dev/shm", "dir"],
  ["/proc", "dir"],
  ["/sys", "dir"],
  ["/.dockerenv", "file"],
  ["/etc/resolv.conf", "file"],
  ["/etc/hosts", "file"],
  ["/etc/hostname", "file"],
  ["/dev/console", "file"],
  ["/etc/mtab", "symlink", "/proc/mounts"],
];

/** Paths (absolute in the layer) that the init layer creates, parents included. */
export function initPaths(): Set<string> {
  const out = new Set<string>();
  for (const [p] of INIT_ENTRIES) {
    for (let d = p; d !== "/"; d = dirname(d)) out.add(d);
  }
  return out;
}

/** Writes the init entries into the tree at `root`. */
export async function setupInitLayer(root: string): Promise<void> {
  for (const [p, kind, target] of INIT_ENTRIES) {
    const parts = p.split("/").slice(1);
    let prev = root;
    for (const part of parts) {
      prev = join(prev, part);
      try {
        await unlink(prev);
      } catch (err) {
        if (!hasCode(err, "ENOENT", "EISDIR", "EPERM", "ENOTDIR")) throw err;
      }
    }
    const full = join(root, p);
    try {
      await lstat(full);
      continue;
    } catch (err) {
      if (!hasCode(err, "ENOENT")) throw err;
    }
    const parent = dirname(full);
    await mkdir(parent, { recursive: true, mode: 0o755 });
    if (kind === "dir") {
      await mkdir(full, { mode: 0o755 });
    } else if (kind === "file") {
      const fh = await open(full, "wx", 0o755);
      await fh.close();
    } else {
      await symlink(target!, full);
    }
    await lchown(full, 0, 0).catch(() => {});
  }
}

/**
 * Copies every regular file that {@link setupInitLayer} would replace (a file
 * at an init path or at one of its parents) from the tree at `root` to the
 * same relative path under `rel` in `into`, and returns their relative
 * paths. For drivers that put the init content inside image layers:
 * pristine export reads these instead. A path reached through a symlink of
 * the layer is not a file init replaces (the link itself is), so it is never
 * followed, nor is anything in the store.
 */
export async function saveInitOriginals(root: string, into: StoreDir, rel: string): Promise<string[]> {
  const saved: string[] = [];
  const layer = await StoreDir.open(root);
  try {
    for (const p of [...initPaths()].sort()) {
      const name = p.slice(1);
      try {
        // Only regular files (never opened when they are fifos or devices), reached without a symlink.
        if (!(await layer.lstat(name))?.isFile) continue;
      } catch (err) {
        if (hasCode(err, "ENOTDIR", "ERR_STORE_SYMLINK")) continue;
        throw err;
      }
      let src = await layer.openFd(name, C.O_RDONLY);
      let dst: number | undefined;
      try {
        const target = `${rel}/${name}`;
        await into.mkdirs(posix.dirname(target));
        dst = await into.openFd(target, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
        const [from, to] = [src, dst];
        src = -1;
        dst = undefined;
        // The streams own and close the fds from here.
        await pipeline(createReadStream("", { fd: from }), createWriteStream("", { fd: to }));
        saved.push(name);
      } finally {
        if (src >= 0) await close(src);
        if (dst !== undefined) await close(dst);
      }
    }
  } finally {
    await layer.close();
  }
  return saved;
}

/** The relative paths of the files {@link saveInitOriginals} saved under `rel` ([] when none). */
export async function listInitOriginals(dir: StoreDir, rel: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (at: string, prefix: string): Promise<void> => {
    for (const n of await dir.readdirOptional(at)) {
      const st = await dir.lstat(`${at}/${n}`);
      if (st?.isDirectory) await walk(`${at}/${n}`, `${prefix}${n}/`);
      else if (st && !st.isSymlink) out.push(`${prefix}${n}`);
    }
  };
  await walk(rel, "");
  return out;
}

/** A saved original (see {@link saveInitOriginals}) as a stream. */
export async function readInitOriginal(dir: StoreDir, rel: string, name: string): Promise<Readable> {
  return createReadStream("", { fd: await dir.openFd(`${rel}/${name}`, C.O_RDONLY) });
}
