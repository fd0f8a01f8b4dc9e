/**
 * Atomic metadata writes: temp file in the same directory, write, fsync,
 * rename over the target, fsync the directory. A reader sees the old
 * content or the new, never a torn file.
 *
 * @module
 */
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { tmpName } from "./tmp-names.js";

/** fsync of a directory, so a rename or create inside it is durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes `data` to `path` atomically and, unless `durable` is false, durably
 * (fsync of file and directory). Non-durable writes are still atomic against
 * a process crash, only not against power loss: right for state that a
 * reboot makes void anyway, such as mount holds.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Buffer,
  { mode = 0o600, durable = true }: { mode?: number; durable?: boolean } = {},
): Promise<void> {
  // Named for this process, so a sweep can tell a dead writer's leftover from a write in progress.
  const tmp = join(dirname(path), await tmpName(`.${basename(path)}`));
  const fh = await open(tmp, "wx", mode);
  try {
    await fh.writeFile(data);
    if (durable) await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  if (durable) await syncDir(dirname(path));
}

/** JSON variant of {@link writeFileAtomic}. */
export function writeJsonAtomic(path: string, value: unknown, opts: { durable?: boolean } = {}): Promise<void> {
  return writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, opts);
}
