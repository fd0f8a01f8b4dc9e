/**
 * The on-disk layer database, laid out like Docker's layerdb:
 *
 * ```
 * <store>/sha256/<chainID hex>/   diff, size, cache-id, parent, tar-split.gz, refs/<name>
 * <store>/mounts/<name>/record.json   a container: mount id, init id, parent chainID, state
 * <store>/intents/<id>.json          an operation in flight (register, create) and its owner
 * <store>/holds/                     mount holds (see Mounts)
 * <store>/tmp/                       staging for atomic directory writes
 * ```
 *
 * A layer directory is built under tmp/ and renamed into sha256/ (atomic);
 * deletion renames it to `<hex>-<random>-removing` first, so an interrupted
 * delete is found and finished on the next start.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hasCode } from "../errors.js";
import { isStaleTmp, isTmpName, tmpName } from "../graphdriver/tmp-names.js";
import { syncDir, writeJsonAtomic } from "../util/atomic.js";
import { type Digest, hex } from "./ids.js";
import type { ProcessIdentity } from "../util/process.js";

export interface LayerRecord {
  chainID: Digest;
  diffID: Digest;
  /** Σ entry sizes of the layer tar (ApplyDiff's result). */
  size: number;
  cacheID: string;
  parent: Digest | "";
}

export interface ContainerRecord {
  name: string;
  mountID: string;
  /** The driver layer holding the init content below the container; "" without one. */
  initID: string;
  /**
   * `initID` is the image layer's shared init layer (`sharedInit` drivers):
   * it belongs to the image layer and is never removed with the container.
   */
  initShared?: boolean;
  parent: Digest | "";
  state: "creating" | "ready" | "removing";
  created: string;
  storageOpt: Record<string, string>;
}

export interface Intent {
  kind: "register" | "create";
  /** Driver ids to remove if the owner died before finishing. */
  driverIDs: string[];
  owner: ProcessIdentity;
  container?: string;
}

export class LayerDB {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async init(): Promise<void> {
    for (const d of ["sha256", "mounts", "intents", "holds", "tmp"]) {
      await mkdir(join(this.dir, d), { recursive: true, mode: 0o700 });
    }
  }

  layerDir(chainID: Digest): string {
    return join(this.dir, "sha256", hex(chainID));
  }

  async readLayer(chainID: Digest): Promise<LayerRecord | null> {
    const d = this.layerDir(chainID);
    try {
      const [diff, size, cacheID] = await Promise.all(
        ["diff", "size", "cache-id"].map((f) => readFile(join(d, f), "utf8")),
      );
      const parent = await readFile(join(d, "parent"), "utf8").catch((err) => {
        if (hasCode(err, "ENOENT")) return "";
        throw err;
      });
      return {
        chainID,
        diffID: diff!.trim() as Digest,
        size: Number(size),
        cacheID: cacheID!.trim(),
        parent: parent.trim() as Digest | "",
      };
    } catch (err) {
      if (hasCode(err, "ENOENT")) return null;
      throw err;
    }
  }

  /** Every committed layer (skipping `-removing` leftovers). */
  async listLayers(): Promise<LayerRecord[]> {
    const out: LayerRecord[] = [];
    for (const name of await readdir(join(this.dir, "sha256"))) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const rec = await this.readLayer(`sha256:${name}`);
      if (rec) out.push(rec);
    }
    return out;
  }

  /** Writes a layer's metadata atomically (staged in tmp/, renamed into place). */
  async writeLayer(rec: LayerRecord, tarSplit: Buffer | null): Promise<void> {
    const stage = join(this.dir, "tmp", `layer-${randomBytes(8).toString("hex")}`);
    await mkdir(stage, { mode: 0o700 });
    try {
      await writeFile(join(stage, "diff"), rec.diffID);
      await writeFile(join(stage, "size"), String(rec.size));
      await writeFile(join(stage, "cache-id"), rec.cacheID);
      if (rec.parent) await writeFile(join(stage, "parent"), rec.parent);
      if (tarSplit) await writeFile(join(stage, "tar-split.gz"), tarSplit);
      await mkdir(join(stage, "refs"));
      await syncDir(stage);
      await rename(stage, this.layerDir(rec.chainID));
      await syncDir(join(this.dir, "sha256"));
    } catch (err) {
      await rm(stage, { recursive: true, force: true });
      throw err;
    }
  }

  async readTarSplit(chainID: Digest): Promise<Buffer | null> {
    try {
      return await readFile(join(this.layerDir(chainID), "tar-split.gz"));
    } catch (err) {
      if (hasCode(err, "ENOENT")) return null;
      throw err;
    }
  }

  /** Marks a layer for deletion by renaming its directory; returns the new path. */
  async markRemoving(chainID: Digest): Promise<string> {
    const to = `${this.layerDir(chainID)}-${randomBytes(4).toString("hex")}-removing`;
    await rename(this.layerDir(chainID), to);
    await syncDir(join(this.dir, "sha256"));
    return to;
  }

  /** `-removing` leftovers: path and the cache id to remove from the driver. */
  async removingOrphans(): Promise<Array<{ path: string; cacheID: string }>> {
    const out: Array<{ path: string; cacheID: string }> = [];
    for (const name of await readdir(join(this.dir, "sha256"))) {
      if (!name.endsWith("-removing")) continue;
      const path = join(this.dir, "sha256", name);
      const cacheID = await readFile(join(path, "cache-id"), "utf8").catch(() => "");
      out.push({ path, cacheID: cacheID.trim() });
    }
    return out;
  }

  // ---- named references (images, `layer apply`) ----

  async refs(chainID: Digest): Promise<string[]> {
    try {
      return (await readdir(join(this.layerDir(chainID), "refs"))).map((n) => decodeURIComponent(n));
    } catch (err) {
      if (hasCode(err, "ENOENT")) return [];
      throw err;
    }
  }

  async addRef(chainID: Digest, name: string): Promise<void> {
    await writeFile(join(this.layerDir(chainID), "refs", encodeURIComponent(name)), "");
  }

  async removeRef(chainID: Digest, name: string): Promise<boolean> {
    try {
      await rm(join(this.layerDir(chainID), "refs", encodeURIComponent(name)));
      return true;
    } catch (err) {
      if (hasCode(err, "ENOENT")) return false;
      throw err;
    }
  }

  // ---- containers ----

  #containerFile(name: string): string {
    return join(this.dir, "mounts", encodeURIComponent(name), "record.json");
  }

  async readContainer(name: string): Promise<ContainerRecord | null> {
    try {
      return JSON.parse(await readFile(this.#containerFile(name), "utf8")) as ContainerRecord;
    } catch (err) {
      if (hasCode(err, "ENOENT")) return null;
      throw err;
    }
  }

  async writeContainer(rec: ContainerRecord): Promise<void> {
    await mkdir(join(this.dir, "mounts", encodeURIComponent(rec.name)), { recursive: true, mode: 0o700 });
    await writeJsonAtomic(this.#containerFile(rec.name), rec);
  }

  async deleteContainer(name: string): Promise<void> {
    await rm(join(this.dir, "mounts", encodeURIComponent(name)), { recursive: true, force: true });
  }

  async listContainers(): Promise<ContainerRecord[]> {
    const out: ContainerRecord[] = [];
    for (const n of await readdir(join(this.dir, "mounts"))) {
      const rec = await this.readContainer(decodeURIComponent(n));
      if (rec) out.push(rec);
    }
    return out;
  }

  // ---- intents ----

  async writeIntent(id: string, intent: Intent): Promise<void> {
    await writeJsonAtomic(join(this.dir, "intents", `${id}.json`), intent);
  }

  async deleteIntent(id: string): Promise<void> {
    await rm(join(this.dir, "intents", `${id}.json`), { force: true });
  }

  async listIntents(): Promise<Array<{ id: string; intent: Intent }>> {
    const out: Array<{ id: string; intent: Intent }> = [];
    for (const f of await readdir(join(this.dir, "intents"))) {
      if (!f.endsWith(".json")) continue;
      try {
        out.push({
          id: f.slice(0, -5),
          intent: JSON.parse(await readFile(join(this.dir, "intents", f), "utf8")) as Intent,
        });
      } catch (err) {
        if (!hasCode(err, "ENOENT")) throw err;
      }
    }
    return out;
  }

  /**
   * A scratch directory under tmp/ for work that runs outside the store lock
   * (a commit's layer tar): on the store's filesystem rather than in /tmp,
   * and named for this process so that a later {@link clearTmp} removes it
   * only once this process is gone (killed before its own cleanup).
   */
  async scratchDir(label: string): Promise<string> {
    const dir = join(this.dir, "tmp", await tmpName(label));
    await mkdir(dir);
    return dir;
  }

  /** Clears stale staging directories (call under the store lock): all but live processes' scratch dirs. */
  async clearTmp(): Promise<void> {
    for (const n of await readdir(join(this.dir, "tmp"))) {
      if (isTmpName(n) && !(await isStaleTmp(n))) continue;
      await rm(join(this.dir, "tmp", n), { recursive: true, force: true });
    }
  }
}
