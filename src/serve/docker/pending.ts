/**
 * Image layers dockerd created and has not filled yet.
 *
 * dockerd makes an image layer in two calls, `Create` then `ApplyDiff`, and
 * writes its own record of the layer only after both. A layer between the
 * two (or whose apply failed) belongs to nobody if dockerd dies then: its
 * layer store never lists it, so it would never be removed. Each such layer
 * is recorded here (an empty file `<dir>/<id>`, written before the driver
 * creates the layer and removed once the apply succeeded), and dockerd's
 * next `Init` removes every layer still recorded. The record is also what
 * allows `ApplyDiff`: a layer that was filled once is never written again.
 *
 * @module
 */
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { hasCode } from "../../errors.js";
import { syncDir, writeFileAtomic } from "../../util/atomic.js";

/** The records of created, unfilled layers under one directory. */
export class PendingLayers {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Records `id` as created and not yet filled (durably: it must survive a crash of anything). */
  async add(id: string): Promise<void> {
    await writeFileAtomic(join(this.dir, id), "");
  }

  /** Forgets `id` (filled, or removed); forgetting an unknown id succeeds. */
  async remove(id: string): Promise<void> {
    await rm(join(this.dir, id), { force: true });
    await syncDir(this.dir);
  }

  async has(id: string): Promise<boolean> {
    try {
      await stat(join(this.dir, id));
      return true;
    } catch (err) {
      if (hasCode(err, "ENOENT")) return false;
      throw err;
    }
  }

  /** Every recorded id (leftover temp files of an interrupted write are skipped). */
  async list(): Promise<string[]> {
    return (await readdir(this.dir)).filter((n) => !n.startsWith("."));
  }
}
