/**
 * vfs: every layer is a full copy of its parent. No mounts, no kernel
 * features: the reference driver and the fallback. Copies use GNU cp with
 * `--reflink=auto`, so filesystems with reflinks (btrfs, xfs) share blocks
 * and others get a plain copy preserving modes, owners, times, xattrs,
 * device nodes and hardlinks.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { AlreadyExistsError, hasCode, InvalidArgumentError, NotFoundError, StrataError } from "../../errors.js";
import type { Capabilities, CreateOpts, Driver, MountSpec, MountSpecOptions } from "../../graphdriver/driver.js";
import { backingFs } from "../../graphdriver/fsmagic.js";
import { isStaleTmp, isTmpName, tmpName } from "../../graphdriver/tmp-names.js";
import { NaiveDiffDriver } from "../../graphdriver/naive-diff.js";

const run = promisify(execFile);
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function assertValidId(id: string): void {
  if (!ID_RE.test(id) || id.includes("..")) {
    throw new InvalidArgumentError("ERR_INVALID_ID", `Cannot use layer id: invalid id "${id}"`);
  }
}

export class VfsDriver extends NaiveDiffDriver implements Driver {
  readonly name = "vfs";
  readonly home: string;
  readonly capabilities: Capabilities = Object.freeze({ initInImage: false, nativeDiff: false, mountless: true });
  #dirs: string;

  constructor(home: string) {
    super();
    this.home = home;
    this.#dirs = join(home, "dir");
  }

  /** Creates the home and removes copies a crash left half done. */
  async init(): Promise<void> {
    await mkdir(this.#dirs, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.#dirs)) {
      if (await isStaleTmp(name)) await rm(join(this.#dirs, name), { recursive: true, force: true });
    }
  }

  #path(id: string): string {
    assertValidId(id);
    return join(this.#dirs, id);
  }

  async create(id: string, parent: string, opts?: CreateOpts): Promise<void> {
    if (opts?.storageOpt && Object.keys(opts.storageOpt).length > 0) {
      throw new InvalidArgumentError(
        "ERR_INVALID_ARGUMENT",
        `Cannot create layer: vfs accepts no storage options "${Object.keys(opts.storageOpt).join(",")}"`,
      );
    }
    const dir = this.#path(id);
    if (await this.exists(id)) throw new AlreadyExistsError("ERR_LAYER_EXISTS", `Cannot create layer: exists "${id}"`);
    const tmp = await tmpName(dir);
    try {
      if (parent) {
        const src = this.#path(parent);
        if (!(await this.exists(parent))) {
          throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot create layer: parent not found "${parent}"`);
        }
        await run("cp", ["-a", "--reflink=auto", "--no-target-directory", src, tmp]);
      } else {
        await mkdir(tmp, { mode: 0o755 });
      }
      await rename(tmp, dir);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      if (err instanceof StrataError) throw err;
      throw new StrataError("ERR_DRIVER", `Cannot create layer "${id}": ${(err as Error).message}`, { cause: err });
    }
  }

  createReadWrite(id: string, parent: string, opts?: CreateOpts): Promise<void> {
    return this.create(id, parent, opts);
  }

  async remove(id: string): Promise<void> {
    const dir = this.#path(id);
    // Rename first so a crash mid-delete leaves a tmp the next init sweeps, not a half layer.
    const doomed = await tmpName(`${dir}-rm`);
    try {
      await rename(dir, doomed);
    } catch (err) {
      if (hasCode(err, "ENOENT")) return;
      throw err;
    }
    await rm(doomed, { recursive: true, force: true });
  }

  async get(id: string): Promise<string> {
    const dir = this.#path(id);
    if (!(await this.exists(id))) throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot get layer: not found "${id}"`);
    return dir;
  }

  async put(id: string): Promise<void> {
    assertValidId(id);
  }

  /** A bind of the layer's full copy; nothing to make ready. */
  async mountSpec(id: string, opts: MountSpecOptions): Promise<MountSpec[]> {
    const dir = this.#path(id);
    if (!(await this.exists(id)))
      throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot describe layer mount: not found "${id}"`);
    return [{ type: "bind", source: dir, options: ["rbind", opts.readonly ? "ro" : "rw"] }];
  }

  async exists(id: string): Promise<boolean> {
    try {
      return (await stat(this.#path(id))).isDirectory();
    } catch (err) {
      if (hasCode(err, "ENOENT")) return false;
      throw err;
    }
  }

  async list(): Promise<string[]> {
    return (await readdir(this.#dirs)).filter((n) => !isTmpName(n));
  }

  async status(): Promise<Array<[string, string]>> {
    return [["Backing Filesystem", (await backingFs(this.home)).name]];
  }

  async metadata(id: string): Promise<Record<string, string>> {
    return { Dir: await this.get(id) };
  }

  /** Nothing is held per process: mounts stay for their holders. */
  async close(): Promise<void> {}

  async cleanup(): Promise<void> {}
}
