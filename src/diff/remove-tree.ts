/**
 * Recursive removal that never follows a symlink, even when another process
 * swaps names in the tree while it runs: every directory is opened relative
 * to its already-open parent with RESOLVE_NO_SYMLINKS, listed through its
 * own fd, and every name is unlinked relative to that fd. A path-based walk
 * (Node's `rm -r`) re-resolves paths between its checks, so a directory
 * swapped for a symlink at the wrong moment would lead it out of the tree.
 *
 * @module
 */
import { readdir } from "node:fs/promises";
import { FailedPreconditionError, hasCode } from "../errors.js";
import { C, close, fstatat, openat2, unlinkat } from "../native.js";

const OPEN_DIR = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;
const NO_LINKS = C.RESOLVE_NO_SYMLINKS | C.RESOLVE_BENEATH | C.RESOLVE_NO_MAGICLINKS;
/** How often one name is retried when it keeps changing type under us. */
const RETRIES = 100;

/**
 * Removes `name` (one component) in the directory `parentFd`, recursively.
 * A name that does not exist is not an error.
 */
export async function removeTree(parentFd: number, name: string): Promise<void> {
  for (let attempt = 0; attempt < RETRIES; attempt++) {
    let st: Awaited<ReturnType<typeof fstatat>>;
    try {
      st = await fstatat(parentFd, name, C.AT_SYMLINK_NOFOLLOW);
    } catch (err) {
      if (hasCode(err, "ENOENT")) return;
      throw err;
    }
    try {
      if ((st.mode & C.S_IFMT) !== C.S_IFDIR) {
        await unlinkat(parentFd, name, 0);
        return;
      }
      const fd = await openat2(parentFd, name, OPEN_DIR, 0, NO_LINKS);
      try {
        for (const child of await readdir(`/proc/self/fd/${fd}`)) await removeTree(fd, child);
      } finally {
        await close(fd);
      }
      await unlinkat(parentFd, name, C.AT_REMOVEDIR);
      return;
    } catch (err) {
      // the name changed type or content between the checks (a racing process): look again
      if (hasCode(err, "ENOENT")) return;
      if (!hasCode(err, "ELOOP", "ENOTDIR", "EISDIR", "ENOTEMPTY", "EEXIST")) throw err;
    }
  }
  throw new FailedPreconditionError("ERR_TREE_CHANGING", `Cannot remove: "${name}" keeps changing under us`);
}
