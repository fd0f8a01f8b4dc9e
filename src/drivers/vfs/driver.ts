/**
 * vfs: every layer is a full copy of its parent. No mounts, no kernel
 * features: the reference driver and the fallback. Copies use GNU cp with
 * `--reflink=auto`, so filesystems with reflinks (btrfs, xfs) share blocks
 * and others get a plain copy preserving modes, owners, times, xattrs,
 * device nodes and hardlinks.
 *
 * The home `<root>/vfs/dir/` is made by the first create: a read-only use
 * of the driver leaves the store root as it was. Everything in it is
 * reached through a {@link StoreDir} (never through a symlink), and a layer
 * is removed by file descriptor, at any depth.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { AlreadyExistsError, hasCode, InvalidArgumentError, NotFoundError, StrataError } from "../../errors.js";
import type {
  Capabilities,
  CreateOpts,
  DiffDir,
  Driver,
  MountSpec,
  MountSpecOptions,
} from "../../graphdriver/driver.js";
import { backingFs } from "../../graphdriver/fsmagic.js";
import { DriverHome } from "../../graphdriver/home.js";
import { assertValidLayerId } from "../../graphdriver/layer-id.js";
import type { StoreDir } from "../../util/store-dir.js";
import { isStaleTmp, isTmpName, tmpName } from "../../util/tmp-names.js";

const run = promisify(execFile);

const RENAME_NOREPLACE = 1;

/** The vfs driver (see the module doc); made by `createVfs`. */
export class VfsDriver implements Driver {
  readonly name = "vfs";
  readonly home: string;
  readonly capabilities: Capabilities = Object.freeze({ sharedInit: false, nativeDiff: false, mountless: true });
  readonly #root: string;
  readonly #dirs: DriverHome;

  /** The vfs driver of the store at `root` (its home is `<root>/vfs`). */
  constructor(root: string) {
    this.#root = root;
    this.home = join(root, "vfs");
    this.#dirs = new DriverHome(root, "vfs/dir", 0o700);
  }

  /** `<home>/dir`; made when `create`, else null while missing. */
  async #layers(create: boolean): Promise<StoreDir | null> {
    return create ? this.#dirs.open(true) : this.#dirs.existing();
  }

  async #writable(): Promise<StoreDir> {
    return this.#dirs.open(true);
  }

  /**
   * Removes copies and removals a crash left half done. What resists stays,
   * as do entries that are no layer directory (never followed): `check`
   * reports both.
   */
  async init(): Promise<void> {
    const dirs = await this.#layers(false);
    if (!dirs) return;
    for (const name of await this.#leftovers(dirs)) {
      if (isTmpName(name)) await dirs.removeTree(name).catch(() => undefined);
    }
  }

  #path(id: string): string {
    assertValidLayerId(id);
    return join(this.home, "dir", id);
  }

  /** Whether `id` is a layer directory; a symlink there is refused, not followed. */
  async #isLayer(dirs: StoreDir | null, id: string): Promise<boolean> {
    assertValidLayerId(id);
    const st = dirs ? await dirs.lstat(id) : null;
    if (!st) return false;
    if (!st.isDirectory) {
      throw new StrataError("ERR_STORE_SYMLINK", `Cannot use layer: not a directory of the store "${this.#path(id)}"`);
    }
    return true;
  }

  async create(id: string, parent: string, opts?: CreateOpts): Promise<void> {
    if (opts?.storageOpt && Object.keys(opts.storageOpt).length > 0) {
      throw new InvalidArgumentError(
        "ERR_INVALID_ARGUMENT",
        `Cannot create layer: vfs accepts no storage options "${Object.keys(opts.storageOpt).join(",")}"`,
      );
    }
    assertValidLayerId(id);
    const dirs = await this.#writable();
    if (await this.#isLayer(dirs, id)) {
      throw new AlreadyExistsError("ERR_LAYER_EXISTS", `Cannot create layer: exists "${id}"`);
    }
    const tmp = await tmpName(id);
    try {
      if (parent) {
        if (!(await this.#isLayer(dirs, parent))) {
          throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot create layer: parent not found "${parent}"`);
        }
        await run("cp", ["-a", "--reflink=auto", "--no-target-directory", dirs.pathOf(parent), dirs.pathOf(tmp)]);
      } else {
        await dirs.mkdir(tmp, 0o755);
      }
      await dirs.rename(tmp, id, RENAME_NOREPLACE);
    } catch (err) {
      await dirs.removeTree(tmp).catch(() => undefined);
      if (err instanceof StrataError) throw err;
      throw new StrataError("ERR_DRIVER", `Cannot create layer "${id}": ${(err as Error).message}`, { cause: err });
    }
  }

  createReadWrite(id: string, parent: string, opts?: CreateOpts): Promise<void> {
    return this.create(id, parent, opts);
  }

  /**
   * Renames the layer away, then removes it by file descriptor. Once renamed
   * the layer is gone; a removal that cannot finish (a mount left inside)
   * stays as a leftover for the next start or `check --repair`, and is not
   * an error of this call.
   */
  async remove(id: string): Promise<void> {
    assertValidLayerId(id);
    const dirs = await this.#layers(false);
    if (!dirs) return;
    // Rename first so a crash mid-delete leaves a tmp the next start sweeps, not a half layer.
    const doomed = await tmpName(`${id}-rm`);
    try {
      await dirs.rename(id, doomed);
    } catch (err) {
      if (hasCode(err, "ENOENT")) return;
      throw err;
    }
    await dirs.removeTree(doomed).catch(() => undefined);
  }

  async get(id: string): Promise<string> {
    if (!(await this.#isLayer(await this.#layers(false), id))) {
      throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot get layer: not found "${id}"`);
    }
    return this.#path(id);
  }

  async put(id: string): Promise<void> {
    assertValidLayerId(id);
  }

  /** A bind of the layer's full copy; nothing to make ready. A symlink there is refused, as by `get`. */
  async mountSpec(id: string, opts: MountSpecOptions): Promise<MountSpec[]> {
    if (!(await this.#isLayer(await this.#layers(false), id)))
      throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot describe layer mount: not found "${id}"`);
    return [{ type: "bind", source: this.#path(id), options: ["rbind", opts.readonly ? "ro" : "rw"] }];
  }

  async exists(id: string): Promise<boolean> {
    try {
      return await this.#isLayer(await this.#layers(false), id);
    } catch (err) {
      if (hasCode(err, "ERR_STORE_SYMLINK")) return false;
      throw err;
    }
  }

  /** Nothing sits between a mount and its data here: mounts break only by being unmounted. */
  async brokenMounts(): Promise<Array<{ id: string; reason: string }>> {
    return [];
  }

  async list(): Promise<string[]> {
    const dirs = await this.#layers(false);
    if (!dirs) return [];
    const out: string[] = [];
    for (const n of await dirs.readdir()) if (!isTmpName(n) && (await dirs.lstat(n))?.isDirectory) out.push(n);
    return out;
  }

  /** Stale temporary entries (of processes that are gone), and entries that are no layer directory. */
  async leftovers(): Promise<string[]> {
    const dirs = await this.#layers(false);
    return dirs ? this.#leftovers(dirs) : [];
  }

  async #leftovers(dirs: StoreDir): Promise<string[]> {
    const out: string[] = [];
    for (const name of await dirs.readdir()) {
      if (isTmpName(name) ? await isStaleTmp(name) : !(await dirs.lstat(name))?.isDirectory) out.push(name);
    }
    return out;
  }

  async removeLeftover(name: string): Promise<void> {
    const dirs = await this.#layers(false);
    if (!dirs || !(await this.#leftovers(dirs)).includes(name)) {
      throw new InvalidArgumentError("ERR_INVALID_ID", `Cannot remove leftover: not a leftover "${name}"`);
    }
    await dirs.removeTree(name);
  }

  async status(): Promise<Array<[string, string]>> {
    return [["Backing Filesystem", (await backingFs(this.#root)).name]];
  }

  async metadata(id: string): Promise<Record<string, string>> {
    return { Dir: await this.get(id) };
  }

  /** Layers are full trees: no record of a layer's own changes (the Differ compares trees). */
  async diffDir(): Promise<DiffDir | null> {
    return null;
  }

  /** Tars are applied into the layer's tree, through the store's mounts. */
  async applyDir(): Promise<DiffDir | null> {
    return null;
  }

  /** Closes the home's fd. */
  async close(): Promise<void> {
    await this.#dirs.close();
  }

  async cleanup(): Promise<void> {
    await this.close();
  }
}
