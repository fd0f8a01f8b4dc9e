/**
 * changesSize: bytes of the files a change list added or modified, each
 * inode counted once (Docker's ChangesSize).
 *
 * @module
 */
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { hasCode } from "../errors.js";
import type { Change } from "./changes.js";

/**
 * The bytes a change list adds: the sizes of the added and changed
 * non-directories under `dir`, each inode once (Docker's ChangesSize).
 * @param dir the layer's tree, where the changes are found
 * @returns the size in bytes; deleted entries and directories count 0
 */
export async function changesSize(dir: string, changes: Change[]): Promise<number> {
  const seen = new Set<string>();
  let size = 0;
  for (const c of changes) {
    if (c.kind === "D") continue;
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(join(dir, c.path));
    } catch (err) {
      if (hasCode(err, "ENOENT", "ENOTDIR")) continue;
      throw err;
    }
    if (st.isDirectory()) continue;
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
    }
    size += st.size;
  }
  return size;
}
