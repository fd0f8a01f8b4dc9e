/**
 * The init layer: files every container expects, later bind-mounted by a
 * runtime (Docker's initlayer.Setup). For each path, every component is
 * first unlinked (an image's file or symlink at /etc/hosts or /etc gives way;
 * directories survive), then the entry is created when missing: parents
 * 0755 root-owned, directories 0755, files empty 0755, /etc/mtab a symlink.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { lchown, lstat, mkdir, open, symlink, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { hasCode } from "../errors.js";
import { C } from "../native.js";
import type { StoreDir } from "../util/store-dir.js";

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

/**
 * The id of image layer `cacheID`'s shared init layer, on drivers with
 * `sharedInit`: a child of the image layer holding the init entries, which
 * every container of that image snapshots.
 */
export function sharedInitID(cacheID: string): string {
  return `${cacheID}-init`;
}

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

/** The relative paths of the files saved under `rel` (by strata before shared init layers: see layerdb.ts) ([] when none). */
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

/** A saved original (see {@link listInitOriginals}) as a stream. */
export async function readInitOriginal(dir: StoreDir, rel: string, name: string): Promise<Readable> {
  return createReadStream("", { fd: await dir.openFd(`${rel}/${name}`, C.O_RDONLY) });
}
