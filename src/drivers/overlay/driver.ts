/**
 * The overlay driver: Docker's overlay2 on kernel overlayfs (layout in
 * `layout.ts`, mounting in `mount.ts`, checks in `check.ts`). `get` mounts
 * a layer with lowers on its `merged/` (read-only once it has a child) and
 * returns the diff dir of a layer without lowers; `put` unmounts. Neither
 * counts: the layer store's Mounts registry does.
 *
 * The home is made by the first create (a read-only use leaves the store
 * root as it was) and reached through a {@link StoreDir}: a symlink planted
 * where a layer, its `merged/` or `work/` belongs is refused, never
 * followed, and a mount goes on the directory that was checked (through
 * its fd). Layers are removed by file descriptor, at any depth.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { AlreadyExistsError, hasCode, InvalidArgumentError, NotFoundError } from "../../errors.js";
import { C, close } from "../../native.js";
import type { StoreDir } from "../../util/store-dir.js";
import { DriverHome } from "../../graphdriver/home.js";
import type {
  Capabilities,
  CreateOpts,
  DiffDir,
  Driver,
  MountSpec,
  MountSpecOptions,
} from "../../graphdriver/driver.js";
import { isStaleTmp, isTmpName, tmpName } from "../../util/tmp-names.js";
import type { OverlaySupport } from "./check.js";
import { parseSize } from "../../util/size.js";
import { KERNEL_MAX_LOWERS, type OverlayConfig, PAGE_MAX_LOWERS } from "./config.js";
import { buildLayer } from "./create.js";
import { KeyedLock } from "../../util/keyed-lock.js";
import { assertValidLayerId } from "../../graphdriver/layer-id.js";
import { Layout } from "./layout.js";
import { isOverlayMounted, type MountMethod, mountOverlay, mountsUnder, unmountOverlay } from "./mount.js";
import { ProjectQuota } from "./quota.js";

/** overlay2 on kernel overlayfs. Create it with `createOverlay` (index.ts). */
export class OverlayDriver implements Driver {
  readonly name = "overlay";
  readonly home: string;
  readonly capabilities: Capabilities;
  /** Lowers a layer may have; a deeper chain is flattened on create. */
  readonly maxLowers: number;
  readonly support: OverlaySupport;
  #cfg: OverlayConfig;
  #layout: Layout;
  #locks = new KeyedLock();
  #quota: ProjectQuota;
  /** How the last mount of each id was made (for tests and the benchmark). */
  readonly lastMountMethod = new Map<string, MountMethod>();

  readonly #homeDir: DriverHome;

  constructor(home: string, cfg: OverlayConfig, support: OverlaySupport) {
    this.home = home;
    this.#cfg = cfg;
    this.support = support;
    this.#homeDir = new DriverHome(dirname(home), basename(home), 0o710);
    this.#layout = new Layout(home, () => this.#homeDir.open());
    this.#quota = new ProjectQuota(() => this.#files(true));
    // A committed layer mounts read-only with its diff as one more lower: keep one slot for it.
    const kernel = support.lowerdirPlus ? KERNEL_MAX_LOWERS - 1 : PAGE_MAX_LOWERS;
    this.maxLowers = Math.min(cfg.maxLowers ?? kernel, kernel);
    this.capabilities = Object.freeze({
      sharedInit: false,
      nativeDiff: support.nativeDiff && !cfg.forceNaiveDiff,
      mountless: false,
    });
  }

  /** The home, made with its `l/` when `create`; rejects with ENOENT while it does not exist. */
  async #files(create: boolean): Promise<StoreDir> {
    const files = await this.#homeDir.open(create);
    if (create) await files.mkdir("l", 0o700);
    return files;
  }

  /** The home when it exists, else null. */
  #existing(): Promise<StoreDir | null> {
    return this.#homeDir.existing();
  }

  /**
   * Sweeps half-made and half-removed layers of dead processes (what resists
   * stays for `check`) and repairs missing `l/` links. Creates nothing.
   */
  async init(): Promise<void> {
    const files = await this.#existing();
    if (!files) return;
    for (const name of await this.#leftovers(files)) {
      if (isTmpName(name)) await this.#removeEntry(files, name).catch(() => undefined);
    }
    for (const id of await this.list()) {
      try {
        const link = await this.#layout.link(id);
        await files.symlink(`../${id}/diff`, `l/${link}`).catch((err: unknown) => {
          if (!hasCode(err, "EEXIST")) throw err;
        });
      } catch (err) {
        if (!hasCode(err, "ENOENT", "ENOTDIR", "ERR_LAYER_CORRUPT", "ERR_STORE_SYMLINK")) throw err;
      }
    }
  }

  /** Removes an entry of the home (a doomed or half-made layer), unmounting what a crash left in it. */
  async #removeEntry(files: StoreDir, name: string): Promise<void> {
    for (const sub of ["flatten-src", "merged"]) {
      await unmountOverlay(join(this.home, name, sub)).catch(() => undefined);
    }
    await files.removeTree(name);
  }

  /**
   * Stale temporary entries, entries that are no layer directory (a symlink
   * or file where a layer belongs) and `l/` links that do not point at a
   * layer's diff dir.
   */
  async leftovers(): Promise<string[]> {
    const files = await this.#existing();
    return files ? this.#leftovers(files) : [];
  }

  async #leftovers(files: StoreDir): Promise<string[]> {
    const out: string[] = [];
    for (const name of await files.readdir()) {
      if (name.startsWith(".") || name === "quota-next-id") continue;
      if (isTmpName(name)) {
        if (await isStaleTmp(name)) out.push(name);
      } else if (!(await files.lstat(name))?.isDirectory) {
        out.push(name);
      }
    }
    for (const name of await files.readdirOptional("l")) {
      await this.#layout.lowerLayer(`l/${name}`).catch(() => out.push(`l/${name}`));
    }
    return out;
  }

  async removeLeftover(name: string): Promise<void> {
    const files = await this.#existing();
    if (!files || !(await this.#leftovers(files)).includes(name)) {
      throw new InvalidArgumentError("ERR_INVALID_ID", `Cannot remove leftover: not a leftover "${name}"`);
    }
    if (name.startsWith("l/")) await files.unlink(name);
    else await this.#removeEntry(files, name);
  }

  /** Ids whose `merged/` is mounted now (e.g. left by a process that crashed). */
  async mountedIds(): Promise<string[]> {
    const ids: string[] = [];
    for (const mp of await mountsUnder(this.home)) {
      const m = /^([^/]+)\/merged$/.exec(mp.slice(this.home.length + 1));
      if (m) ids.push(m[1]!);
    }
    return ids;
  }

  #sizeOpt(opts: CreateOpts | undefined, readWrite: boolean): number {
    let size = readWrite ? this.#cfg.defaultSize : 0;
    for (const [k, v] of Object.entries(opts?.storageOpt ?? {})) {
      if (k.toLowerCase() !== "size") {
        throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot create layer: unknown storage option "${k}"`);
      }
      if (!readWrite) {
        throw new InvalidArgumentError(
          "ERR_INVALID_ARGUMENT",
          `Cannot create layer: size is only supported for read-write layers "${v}"`,
        );
      }
      size = parseSize(v, "size");
    }
    if (size > 0 && !this.support.projectQuota) {
      throw new InvalidArgumentError(
        "ERR_QUOTA_UNSUPPORTED",
        `Cannot create layer: size needs xfs mounted with prjquota, backing filesystem is ${this.support.backingFs} "${this.home}"`,
      );
    }
    return size;
  }

  async create(id: string, parent: string, opts?: CreateOpts): Promise<void> {
    return this.#create(id, parent, this.#sizeOpt(opts, false));
  }

  async createReadWrite(id: string, parent: string, opts?: CreateOpts): Promise<void> {
    return this.#create(id, parent, this.#sizeOpt(opts, true));
  }

  async #create(id: string, parent: string, size: number): Promise<void> {
    assertValidLayerId(id);
    return this.#locks.run(id, async () => {
      const files = await this.#files(true);
      if (await this.exists(id))
        throw new AlreadyExistsError("ERR_LAYER_EXISTS", `Cannot create layer: exists "${id}"`);
      let lowers: string[] = [];
      if (parent) {
        if (!(await this.exists(parent))) {
          throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot create layer: parent not found "${parent}"`);
        }
        lowers = [Layout.linkRel(await this.#layout.link(parent)), ...(await this.#layout.lowers(parent))];
      }
      const flatten = lowers.length > this.maxLowers;
      await buildLayer(this.#layout, files, { id, parent, lowers: flatten ? [] : lowers, flatten }, this.support);
      if (size > 0) {
        try {
          await this.#quota.limit(this.#layout.dir(id), size);
        } catch (err) {
          await this.#removeNow(id);
          throw err;
        }
      }
    });
  }

  async remove(id: string): Promise<void> {
    assertValidLayerId(id);
    return this.#locks.run(id, () => this.#removeNow(id));
  }

  /**
   * Unmounts, drops the `l/` link and renames the layer away, then removes
   * it by file descriptor. Once renamed the layer is gone; a removal that
   * cannot finish (a mount left inside) stays as a leftover for the next
   * start or `check --repair`, and is not an error of this call.
   */
  async #removeNow(id: string): Promise<void> {
    const files = await this.#existing();
    if (!files) return;
    let link: string | null = null;
    try {
      link = await this.#layout.link(id);
    } catch (err) {
      if (!hasCode(err, "ENOENT", "ENOTDIR", "ERR_LAYER_CORRUPT", "ERR_STORE_SYMLINK")) throw err;
    }
    await unmountOverlay(this.#layout.merged(id));
    if (link) await files.unlink(`l/${link}`);
    // Rename first so a crash mid-delete leaves a tmp the next start sweeps, not a half layer.
    const doomed = await tmpName(`${id}-rm`);
    try {
      await files.rename(id, doomed);
    } catch (err) {
      if (hasCode(err, "ENOENT")) return;
      throw err;
    }
    await files.removeTree(doomed).catch(() => undefined);
  }

  async get(id: string): Promise<string> {
    assertValidLayerId(id);
    return this.#locks.run(id, async () => {
      if (!(await this.exists(id)))
        throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot get layer: not found "${id}"`);
      const files = await this.#files(false);
      const lowers = await this.#layout.lowers(id);
      if (lowers.length === 0) return this.#layout.diff(id);
      // mkdir refuses a symlink planted as merged/: nothing below ever follows one.
      await files.mkdir(`${id}/merged`, 0o700);
      const merged = this.#layout.merged(id);
      // Already mounted (a get without put, or a mount left by a crashed process): reuse it.
      if (await isOverlayMounted(merged)) return merged;
      const readOnly = await this.#layout.committed(id);
      for (const l of lowers) await this.#layout.lowerLayer(l); // each l/ link is a layer's diff dir
      if (!readOnly && !(await files.lstat(`${id}/work`))?.isDirectory) {
        throw new InvalidArgumentError(
          "ERR_LAYER_CORRUPT",
          `Cannot mount layer: no work dir "${this.#layout.work(id)}"`,
        );
      }
      // The mount goes on the directory just checked, through its fd, not through the path again.
      const target = await files.openFd(`${id}/merged`, C.O_PATH | C.O_DIRECTORY);
      try {
        const method = await mountOverlay(
          {
            home: this.home,
            lowers: readOnly ? [`${id}/diff`, ...lowers] : lowers,
            upper: readOnly ? undefined : `${id}/diff`,
            work: readOnly ? undefined : `${id}/work`,
            target: `${id}/merged`,
            at: `/proc/self/fd/${target}`,
            readOnly,
          },
          this.support,
        );
        this.lastMountMethod.set(id, method);
      } catch (err) {
        await unmountOverlay(merged).catch(() => undefined);
        throw err;
      } finally {
        await close(target);
      }
      return merged;
    });
  }

  async put(id: string): Promise<void> {
    assertValidLayerId(id);
    return this.#locks.run(id, async () => {
      if ((await this.#layout.lowers(id)).length === 0) return;
      await unmountOverlay(this.#layout.merged(id));
    });
  }

  /**
   * The mounts of the layer as containerd's overlay snapshotter describes
   * them: a bind of the diff dir without lowers, else an overlay whose
   * lowers are the absolute `l/` links (short, so a long chain still fits
   * the page of mount data that containerd passes to mount(2)).
   */
  async mountSpec(id: string, opts: MountSpecOptions): Promise<MountSpec[]> {
    assertValidLayerId(id);
    return this.#locks.run(id, async () => {
      if (!(await this.exists(id)))
        throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot describe layer mount: not found "${id}"`);
      const lowers = await this.#layout.lowers(id);
      // The client's kernel follows the l/ links: each must be a layer's diff dir, as for get.
      for (const l of lowers) await this.#layout.lowerLayer(l);
      if (lowers.length === 0) {
        return [{ type: "bind", source: this.#layout.diff(id), options: ["rbind", opts.readonly ? "ro" : "rw"] }];
      }
      const abs = (rel: string) => join(this.home, rel);
      const options = this.support.indexParam ? ["index=off"] : [];
      if (opts.readonly) {
        const own = Layout.linkRel(await this.#layout.link(id));
        await this.#layout.lowerLayer(own);
        options.push(`lowerdir=${[own, ...lowers].map(abs).join(":")}`);
      } else {
        const files = await this.#files(false);
        if (!(await files.lstat(`${id}/work`))?.isDirectory) {
          throw new InvalidArgumentError(
            "ERR_LAYER_CORRUPT",
            `Cannot describe layer mount: no work dir "${this.#layout.work(id)}"`,
          );
        }
        options.push(
          `workdir=${this.#layout.work(id)}`,
          `upperdir=${this.#layout.diff(id)}`,
          `lowerdir=${lowers.map(abs).join(":")}`,
        );
      }
      return [{ type: "overlay", source: "overlay", options }];
    });
  }

  /** Nothing sits between a mount and its data here: mounts break only by being unmounted. */
  async brokenMounts(): Promise<Array<{ id: string; reason: string }>> {
    return [];
  }

  /** Every layer id in the home (half-made and half-removed layers, and foreign entries, excluded). */
  async list(): Promise<string[]> {
    const files = await this.#existing();
    if (!files) return [];
    const out: string[] = [];
    for (const name of await files.readdir()) {
      if (name === "l" || name.startsWith(".") || isTmpName(name) || name === "quota-next-id") continue;
      if (await this.exists(name)) out.push(name);
    }
    return out;
  }

  /** Whether `id` is a layer: a real directory with a real `diff/` (a symlink is no layer). */
  async exists(id: string): Promise<boolean> {
    assertValidLayerId(id);
    const files = await this.#existing();
    try {
      return (await files?.lstat(`${id}/diff`))?.isDirectory ?? false;
    } catch (err) {
      if (hasCode(err, "ENOTDIR", "ERR_STORE_SYMLINK")) return false;
      throw err;
    }
  }

  async status(): Promise<Array<[string, string]>> {
    const s = this.support;
    return [
      ["Backing Filesystem", s.backingFs],
      ["Supports d_type", String(s.dType)],
      ["Native Overlay Diff", String(this.capabilities.nativeDiff)],
      ...(s.naiveReason ? ([["Naive Diff Reason", s.naiveReason]] as Array<[string, string]>) : []),
      ["Max Lower Layers", `${this.maxLowers} (kernel limit ${KERNEL_MAX_LOWERS}; deeper chains are flattened)`],
      ["Mount API", s.lowerdirPlus ? "mount(2), mountfrom, fsconfig lowerdir+" : "mount(2), mountfrom"],
      ["Project Quota", String(s.projectQuota)],
    ];
  }

  async metadata(id: string): Promise<Record<string, string>> {
    if (!(await this.exists(id)))
      throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot read layer: not found "${id}"`);
    const md: Record<string, string> = {
      WorkDir: this.#layout.work(id),
      MergedDir: this.#layout.merged(id),
      UpperDir: this.#layout.diff(id),
    };
    const lowers = await this.#layout.lowers(id);
    if (lowers.length > 0) {
      md.LowerDir = (await Promise.all(lowers.map((l) => this.#layout.lowerDiffDir(l)))).join(":");
    }
    const from = await this.#layout.flattenedFrom(id);
    if (from !== null) md.FlattenedFrom = from;
    return md;
  }

  /** Closes the home's fd; mounts stay for their holders (a `strata mount` outlives the command). */
  async close(): Promise<void> {
    await this.#homeDir.close();
  }

  /** Shutdown: unmounts every layer this home still has mounted. */
  async cleanup(): Promise<void> {
    for (const id of await this.mountedIds()) await this.#locks.run(id, () => unmountOverlay(this.#layout.merged(id)));
    await this.close();
  }

  /** Whether `parent` is `id`'s direct parent ("" for a layer without lowers). */
  async #isParent(id: string, parent: string): Promise<boolean> {
    const lowers = await this.#layout.lowers(id);
    if (!parent) return lowers.length === 0 && (await this.#layout.flattenedFrom(id)) === null;
    if (lowers.length === 0) return false;
    return lowers[0] === Layout.linkRel(await this.#layout.link(parent));
  }

  /** The diff dir of `id` when it holds exactly `id`'s changes on `parent` (its direct parent, or "" for none). */
  async diffDir(id: string, parent: string): Promise<DiffDir | null> {
    if (!(await this.exists(id)))
      throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot diff layer: not found "${id}"`);
    if (this.#cfg.forceNaiveDiff || !(await this.#isParent(id, parent))) return null;
    return { path: this.#layout.diff(id), whiteouts: "overlay" };
  }

  /**
   * The diff dir, when the tar is applied on the parent `id` was created on
   * (or flattened from): with lowers, deletions must stay visible as kernel
   * whiteouts; without, there is nothing below to hide.
   */
  async applyDir(id: string, parent: string): Promise<DiffDir | null> {
    if (!(await this.exists(id)))
      throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot apply layer: not found "${id}"`);
    const flattenedFrom = await this.#layout.flattenedFrom(id);
    if (!(await this.#isParent(id, parent)) && flattenedFrom !== parent) return null;
    const hasLowers = (await this.#layout.lowers(id)).length > 0;
    return { path: this.#layout.diff(id), whiteouts: hasLowers ? "overlay" : "aufs" };
  }

  /** The `l/` link target of `id` (for tests that check the layout). */
  async linkTarget(id: string): Promise<string> {
    return (await this.#files(false)).readlink(`l/${await this.#layout.link(id)}`);
  }
}
