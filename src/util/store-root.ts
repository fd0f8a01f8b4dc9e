/**
 * The store root: validated before anything in it is used. Whoever can
 * write the root can plant symlinks and forged metadata in it, so like
 * Docker's `/var/lib/docker` (0710) it must be owned by root and writable
 * by no one else. A missing root is created 0710 (its parents as `mkdir -p`
 * makes them). An empty `--root` is refused rather than read as the
 * current directory.
 *
 * @module
 */
import { chmod, mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { FailedPreconditionError, hasCode, InvalidArgumentError } from "../errors.js";
import { StoreDir } from "./store-dir.js";

/** The mode of a root strata creates (Docker's `/var/lib/docker`). */
export const ROOT_MODE = 0o710;

/**
 * Checks (creating it when missing) and opens the store root.
 * @returns the root, opened by fd (symlinks in `root` itself are followed here, once)
 * @throws ERR_STORE_ROOT when `root` is empty, not a directory, not owned by
 *   root, or writable by group or others
 */
export async function openStoreRoot(root: string): Promise<StoreDir> {
  if (root.trim() === "") {
    throw new InvalidArgumentError("ERR_STORE_ROOT", `Cannot open the store: the root is an empty path "${root}"`);
  }
  const path = resolve(root);
  let dir: StoreDir;
  try {
    dir = await StoreDir.open(path);
  } catch (err) {
    if (!hasCode(err, "ENOENT")) throw rootError(`it is not a directory (${(err as Error).message})`, path);
    await mkdir(path, { recursive: true, mode: ROOT_MODE });
    await chmod(path, ROOT_MODE); // whatever the umask
    dir = await StoreDir.open(path);
  }
  try {
    const st = (await dir.lstat(""))!;
    if (st.uid !== 0) throw rootError(`it is owned by uid ${st.uid}, not root`, path);
    if ((st.mode & 0o022) !== 0) {
      const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
      throw rootError(`it is writable by group or others (mode ${mode}; Docker uses 0710)`, path);
    }
  } catch (err) {
    await dir.close();
    throw err;
  }
  return dir;
}

function rootError(reason: string, path: string): FailedPreconditionError {
  return new FailedPreconditionError("ERR_STORE_ROOT", `Cannot open the store: ${reason} "${path}"`);
}
