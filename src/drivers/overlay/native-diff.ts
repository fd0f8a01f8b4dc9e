/**
 * Native diff for overlay: a layer's `diff/` is exactly what it changed
 * relative to its direct parent, with deletions in the kernel's form.
 * These read it without mounting anything.
 *
 * @module
 */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { exportTree } from "../../diff/index.js";

/**
 * Tar (AUFS whiteouts) of an upper dir: char 0/0 → `.wh.NAME`, an opaque
 * directory → its entry followed by `DIR/.wh..wh..opq`. The caller
 * consumes or destroys the stream.
 */
export function upperDirTar(diffDir: string): Readable {
  return exportTree(diffDir, { whiteouts: "overlay" });
}

/**
 * Bytes of the non-directory entries of an upper dir, each inode once
 * (Docker's directory.Size). Whiteouts are zero-size and add nothing.
 */
export async function upperDirSize(diffDir: string): Promise<number> {
  const seen = new Set<number>();
  let total = 0;
  async function walk(dir: string): Promise<void> {
    for (const ent of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, ent.name);
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
  await walk(diffDir);
  return total;
}
