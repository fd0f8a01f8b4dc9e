/**
 * The on-disk layer database, laid out like Docker's layerdb:
 *
 * ```
 * <store>/sha256/<chainID hex>/        diff, size, cache-id, parent, tar-split.gz, refs/<name>
 * <store>/mounts/<name>/record.json    a container: mount id, init id, parent chainID, state
 * <store>/intents/<id>.json            an operation in flight (register, create) and its owner
 * <store>/holds/                       mount holds (see Mounts)
 * <store>/init-originals/<cache id>/   files the init content replaced (devmapper layers made before shared init layers)
 * <store>/tmp/                         staging for atomic directory writes, scratch space
 * <store>/lock                         the store lock
 * ```
 *
 * A layer directory is built under tmp/ and renamed into sha256/ (atomic);
 * deletion renames it to `<hex>-<random>-removing` first, so an interrupted
 * delete is found and finished on the next start.
 *
 * Every access goes through a {@link StoreDir}: no symlink inside the store
 * is ever followed. Listings skip entries that are not what strata writes
 * there (a symlink, a file where a directory belongs); {@link foreignEntries}
 * names them for `check`.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { relative } from "node:path";
import { hasCode, StrataError } from "../errors.js";
import { isStaleTmp, isTmpName, tmpName } from "../util/tmp-names.js";
import type { StoreDir } from "../util/store-dir.js";
import { type Digest, hex } from "./ids.js";
import type { ProcessIdentity } from "../util/process.js";

/** An image layer as the layerdb keeps it. */
export interface LayerRecord {
  chainID: Digest;
  diffID: Digest;
  /** Σ entry sizes of the layer tar (ApplyDiff's result). */
  size: number;
  cacheID: string;
  parent: Digest | "";
}

/** A container (read-write layer) as the layerdb keeps it. */
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

/** An operation in flight, recorded before its driver work (see `recovery.ts`). */
export interface Intent {
  kind: "register" | "create";
  /** Driver ids to remove if the owner died before finishing. */
  driverIDs: string[];
  owner: ProcessIdentity;
  container?: string;
}

/** The directories of a layerdb, created when the store is opened. */
const DIRS = ["sha256", "mounts", "intents", "holds", "tmp", "init-originals"];
const LAYER_DIR_RE = /^[a-f0-9]{64}$/;

/** An entry strata did not write where it keeps its own data (a symlink, a file for a directory). */
export interface ForeignEntry {
  /** Path relative to the layerdb directory. */
  rel: string;
  what: string;
}

/** The layerdb of one driver (see the module doc). */
export class LayerDB {
  /** The layerdb directory's path (for messages and scratch paths). */
  readonly dir: string;
  /** The layerdb directory itself; every access goes through it. */
  readonly files: StoreDir;

  private constructor(files: StoreDir) {
    this.files = files;
    this.dir = files.path;
  }

  /**
   * Opens (creating as needed) `layerdb/<driver>` under the store root.
   * @throws ERR_STORE_SYMLINK when any part of it is a symlink
   */
  static async open(root: StoreDir, driverName: string): Promise<LayerDB> {
    const files = await root.sub(`layerdb/${driverName}`, { create: true });
    try {
      for (const d of DIRS) await files.mkdir(d);
    } catch (err) {
      await files.close();
      throw err;
    }
    return new LayerDB(files);
  }

  async close(): Promise<void> {
    await this.files.close();
  }

  #layerRel(chainID: Digest): string {
    return `sha256/${hex(chainID)}`;
  }

  /** The layer's metadata, or null when it is not stored. @throws ERR_STORE_SYMLINK */
  async readLayer(chainID: Digest): Promise<LayerRecord | null> {
    const d = this.#layerRel(chainID);
    const [diff, size, cacheID, parent] = await Promise.all(
      ["diff", "size", "cache-id", "parent"].map((f) => this.files.readOptional(`${d}/${f}`)),
    );
    if (diff === null || size === null || cacheID === null) return null;
    return {
      chainID,
      diffID: diff.trim() as Digest,
      size: Number(size),
      cacheID: cacheID.trim(),
      parent: (parent ?? "").trim() as Digest | "",
    };
  }

  /** Names in `rel` that are real directories (symlinks and files skipped: see {@link foreignEntries}). */
  async #dirEntries(rel: string): Promise<string[]> {
    const out: string[] = [];
    for (const name of await this.files.readdir(rel)) {
      if ((await this.files.lstat(`${rel}/${name}`))?.isDirectory) out.push(name);
    }
    return out;
  }

  /** Every committed layer (skipping `-removing` leftovers and foreign entries). */
  async listLayers(): Promise<LayerRecord[]> {
    const out: LayerRecord[] = [];
    for (const name of await this.#dirEntries("sha256")) {
      if (!LAYER_DIR_RE.test(name)) continue;
      const rec = await this.readLayer(`sha256:${name}`);
      if (rec) out.push(rec);
    }
    return out;
  }

  /**
   * Writes a layer's metadata atomically (staged in tmp/, renamed into place).
   * `tarSplit` is the index itself, or the path of a file holding it in one of
   * this layerdb's {@link scratchDir}s (moved in). Under the store lock.
   */
  async writeLayer(rec: LayerRecord, tarSplit: Buffer | string | null): Promise<void> {
    const stage = `tmp/layer-${randomBytes(8).toString("hex")}`;
    await this.files.mkdir(stage);
    try {
      await this.files.writeFile(`${stage}/diff`, rec.diffID);
      await this.files.writeFile(`${stage}/size`, String(rec.size));
      await this.files.writeFile(`${stage}/cache-id`, rec.cacheID);
      if (rec.parent) await this.files.writeFile(`${stage}/parent`, rec.parent);
      if (typeof tarSplit === "string") await this.files.rename(this.#scratchRel(tarSplit), `${stage}/tar-split.gz`);
      else if (tarSplit) await this.files.writeFile(`${stage}/tar-split.gz`, tarSplit);
      await this.files.mkdir(`${stage}/refs`);
      await this.files.sync(stage);
      await this.files.rename(stage, this.#layerRel(rec.chainID));
      await this.files.sync("sha256");
    } catch (err) {
      await this.files.removeTree(stage).catch(() => undefined);
      throw err;
    }
  }

  async readTarSplit(chainID: Digest): Promise<Buffer | null> {
    try {
      return await this.files.readFile(`${this.#layerRel(chainID)}/tar-split.gz`);
    } catch (err) {
      if (hasCode(err, "ENOENT")) return null;
      throw err;
    }
  }

  /** Marks a layer for deletion by renaming its directory; returns the new path (relative). */
  async markRemoving(chainID: Digest): Promise<string> {
    const to = `${this.#layerRel(chainID)}-${randomBytes(4).toString("hex")}-removing`;
    await this.files.rename(this.#layerRel(chainID), to);
    await this.files.sync("sha256");
    return to;
  }

  /** `-removing` leftovers: path (relative) and the cache id to remove from the driver. */
  async removingOrphans(): Promise<Array<{ path: string; cacheID: string }>> {
    const out: Array<{ path: string; cacheID: string }> = [];
    for (const name of await this.#dirEntries("sha256")) {
      if (!name.endsWith("-removing")) continue;
      const path = `sha256/${name}`;
      const cacheID = await this.files.readOptional(`${path}/cache-id`).catch(() => null);
      out.push({ path, cacheID: (cacheID ?? "").trim() });
    }
    return out;
  }

  /** Removes `rel` (relative to the layerdb) and everything below it, by file descriptor. */
  removeTree(rel: string): Promise<void> {
    return this.files.removeTree(rel);
  }

  // ---- named references (images, `layer apply`) ----

  /** @throws ERR_STORE_SYMLINK when the layer's refs/ is not a directory of its own */
  async refs(chainID: Digest): Promise<string[]> {
    return (await this.files.readdirOptional(`${this.#layerRel(chainID)}/refs`)).map((n) => decodeURIComponent(n));
  }

  async addRef(chainID: Digest, name: string): Promise<void> {
    await this.files.writeFile(`${this.#layerRel(chainID)}/refs/${encodeURIComponent(name)}`, "");
  }

  async removeRef(chainID: Digest, name: string): Promise<boolean> {
    return this.files.unlink(`${this.#layerRel(chainID)}/refs/${encodeURIComponent(name)}`);
  }

  // ---- containers ----

  #containerDir(name: string): string {
    return `mounts/${encodeURIComponent(name)}`;
  }

  async readContainer(name: string): Promise<ContainerRecord | null> {
    const text = await this.files.readOptional(`${this.#containerDir(name)}/record.json`);
    return text === null ? null : (JSON.parse(text) as ContainerRecord);
  }

  async writeContainer(rec: ContainerRecord): Promise<void> {
    await this.files.mkdir(this.#containerDir(rec.name));
    await this.files.writeJsonAtomic(`${this.#containerDir(rec.name)}/record.json`, rec);
  }

  async deleteContainer(name: string): Promise<void> {
    await this.files.removeTree(this.#containerDir(name));
  }

  async listContainers(): Promise<ContainerRecord[]> {
    const out: ContainerRecord[] = [];
    for (const n of await this.#dirEntries("mounts")) {
      const rec = await this.readContainer(decodeURIComponent(n)).catch((err: unknown) => {
        if (hasCode(err, "ERR_STORE_SYMLINK")) return null; // a foreign record.json: check reports it
        throw err;
      });
      if (rec) out.push(rec);
    }
    return out;
  }

  // ---- intents ----

  async writeIntent(id: string, intent: Intent): Promise<void> {
    await this.files.writeJsonAtomic(`intents/${id}.json`, intent);
  }

  async deleteIntent(id: string): Promise<void> {
    await this.files.unlink(`intents/${id}.json`);
  }

  async listIntents(): Promise<Array<{ id: string; intent: Intent }>> {
    const out: Array<{ id: string; intent: Intent }> = [];
    for (const f of await this.files.readdir("intents")) {
      if (!f.endsWith(".json") || f.startsWith(".")) continue;
      const text = await this.files.readOptional(`intents/${f}`).catch((err: unknown) => {
        if (hasCode(err, "ERR_STORE_SYMLINK")) return null; // a foreign entry: check reports it
        throw err;
      });
      if (text !== null) out.push({ id: f.slice(0, -5), intent: JSON.parse(text) as Intent });
    }
    return out;
  }

  // ---- init originals (devmapper layers made before shared init layers; only read) ----

  /** Where the originals of init-replaced files of layer `cacheID` are kept (relative). */
  initOriginalsRel(cacheID: string): string {
    return `init-originals/${cacheID}`;
  }

  async removeInitOriginals(cacheID: string): Promise<void> {
    await this.files.removeTree(this.initOriginalsRel(cacheID));
  }

  // ---- scratch space and leftovers ----

  /**
   * A scratch directory under tmp/ for work that runs outside the store lock
   * (a commit's layer tar): on the store's filesystem rather than in /tmp,
   * and named for this process so that a later {@link clearTmp} removes it
   * only once this process is gone (killed before its own cleanup).
   * @returns its absolute path
   */
  async scratchDir(label: string): Promise<string> {
    const name = await tmpName(label);
    await this.files.mkdir(`tmp/${name}`);
    return this.files.pathOf(`tmp/${name}`);
  }
  /** `path` (a file in a scratch dir) relative to this layerdb, refused when it is anywhere else. */
  #scratchRel(path: string): string {
    const rel = relative(this.dir, path);
    if (!rel.startsWith("tmp/") || rel.split("/").includes("..")) {
      throw new StrataError("ERR_STORE_PATH", `Cannot move a file into the layerdb from outside its tmp/: "${path}"`);
    }
    return rel;
  }

  /**
   * Clears stale staging directories (under the store lock): all but live
   * processes' scratch dirs. What cannot be removed stays for `check --repair`.
   * @returns the names it could not remove
   */
  async clearTmp(): Promise<string[]> {
    const failed: string[] = [];
    for (const n of await this.files.readdir("tmp")) {
      if (isTmpName(n) && !(await isStaleTmp(n))) continue;
      await this.files.removeTree(`tmp/${n}`).catch(() => failed.push(n));
    }
    return failed;
  }

  /**
   * The temporary files of atomic writes (`.<name>.tmp-<owner>`) whose
   * writer died before its rename, in intents/, holds/ and container dirs.
   * Relative paths.
   */
  async staleWrites(): Promise<string[]> {
    const out: string[] = [];
    const dirs = ["intents", "holds", ...(await this.#dirEntries("mounts")).map((n) => `mounts/${n}`)];
    for (const d of dirs) {
      for (const n of await this.files.readdirOptional(d)) {
        if (n.startsWith(".") && isTmpName(n) && (await isStaleTmp(n))) out.push(`${d}/${n}`);
      }
    }
    return out;
  }

  /**
   * Leftovers of processes that died mid-way: stale staging dirs in tmp/
   * and {@link staleWrites}. Relative paths.
   */
  async staleLeftovers(): Promise<string[]> {
    const out: string[] = [];
    for (const n of await this.files.readdir("tmp")) {
      if (!isTmpName(n) || (await isStaleTmp(n))) out.push(`tmp/${n}`);
    }
    return [...out, ...(await this.staleWrites())];
  }

  /** Entries strata did not write where it keeps its own data; never followed, only reported. */
  async foreignEntries(): Promise<ForeignEntry[]> {
    const out: ForeignEntry[] = [];
    const expect = async (rel: string, kind: "dir" | "file") => {
      const st = await this.files.lstat(rel);
      if (!st) return;
      if (st.isSymlink) out.push({ rel, what: "a symlink" });
      else if ((kind === "dir") !== st.isDirectory)
        out.push({ rel, what: kind === "dir" ? "not a directory" : "a directory" });
    };
    for (const n of await this.files.readdir("sha256")) {
      await expect(`sha256/${n}`, "dir");
      if (LAYER_DIR_RE.test(n) && (await this.files.lstat(`sha256/${n}`))?.isDirectory) {
        await expect(`sha256/${n}/refs`, "dir");
      }
    }
    for (const n of await this.files.readdir("mounts")) {
      await expect(`mounts/${n}`, "dir");
      if ((await this.files.lstat(`mounts/${n}`))?.isDirectory) await expect(`mounts/${n}/record.json`, "file");
    }
    for (const n of await this.files.readdir("intents")) await expect(`intents/${n}`, "file");
    for (const n of await this.files.readdir("holds")) await expect(`holds/${n}`, "file");
    for (const n of await this.files.readdir("init-originals")) await expect(`init-originals/${n}`, "dir");
    return out;
  }
}
