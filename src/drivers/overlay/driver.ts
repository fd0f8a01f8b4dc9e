/**
 * The overlay driver: Docker's overlay2 on kernel overlayfs (layout in
 * `layout.ts`, mounting in `mount.ts`, checks in `check.ts`). `get` mounts
 * a layer with lowers on its `merged/` (read-only once it has a child) and
 * returns the diff dir of a layer without lowers; `put` unmounts. Neither
 * counts: the layer store's Mounts registry does.
 *
 * @module
 */
import { lstat, mkdir, readdir, readlink, rename, rm, stat, symlink } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { applyLayer, changes } from "../../diff/index.js";
import { AlreadyExistsError, hasCode, InvalidArgumentError, NotFoundError, StrataError } from "../../errors.js";
import type {
  ApplyDiffOptions,
  Capabilities,
  Change,
  CreateOpts,
  Driver,
  MountAccess,
  MountSpec,
  MountSpecOptions,
} from "../../graphdriver/driver.js";
import { isStaleTmp, isTmpName, tmpName } from "../../graphdriver/tmp-names.js";
import { naiveApplyDiff, naiveChanges, naiveDiff, naiveDiffSize } from "../../graphdriver/naive-diff.js";
import type { OverlaySupport } from "./check.js";
import { KERNEL_MAX_LOWERS, type OverlayConfig, PAGE_MAX_LOWERS, parseSize } from "./config.js";
import { buildLayer } from "./create.js";
import { KeyedLock } from "../../util/keyed-lock.js";
import { assertValidId, Layout } from "./layout.js";
import { isOverlayMounted, type MountMethod, mountOverlay, mountsUnder, unmountOverlay } from "./mount.js";
import { upperDirSize, upperDirTar } from "./native-diff.js";
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

  constructor(home: string, cfg: OverlayConfig, support: OverlaySupport) {
    this.home = home;
    this.#cfg = cfg;
    this.support = support;
    this.#layout = new Layout(home);
    this.#quota = new ProjectQuota(home);
    // A committed layer mounts read-only with its diff as one more lower: keep one slot for it.
    const kernel = support.lowerdirPlus ? KERNEL_MAX_LOWERS - 1 : PAGE_MAX_LOWERS;
    this.maxLowers = Math.min(cfg.maxLowers ?? kernel, kernel);
    this.capabilities = Object.freeze({
      initInImage: false,
      nativeDiff: support.nativeDiff && !cfg.forceNaiveDiff,
      mountless: false,
    });
  }

  /** Creates the home, sweeps half-made layers and repairs missing `l/` links. */
  async init(): Promise<void> {
    await mkdir(this.home, { recursive: true, mode: 0o710 });
    await mkdir(this.#layout.linkDir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.home)) {
      if (isTmpName(name)) {
        if (!(await isStaleTmp(name))) continue; // another process is building or deleting it
        await unmountOverlay(join(this.home, name, "flatten-src")).catch(() => undefined);
        await rm(join(this.home, name), { recursive: true, force: true });
        continue;
      }
      if (name === "l" || name.startsWith(".") || name === "quota-next-id") continue;
      try {
        const link = await this.#layout.link(name);
        await symlink(`../${name}/diff`, join(this.#layout.linkDir, link)).catch((err: unknown) => {
          if (!hasCode(err, "EEXIST")) throw err;
        });
      } catch (err) {
        if (!hasCode(err, "ENOENT", "ENOTDIR")) throw err;
      }
    }
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
    assertValidId(id);
    return this.#locks.run(id, async () => {
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
      await buildLayer(this.#layout, { id, parent, lowers: flatten ? [] : lowers, flatten }, this.support);
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
    assertValidId(id);
    return this.#locks.run(id, () => this.#removeNow(id));
  }

  async #removeNow(id: string): Promise<void> {
    const dir = this.#layout.dir(id);
    let link: string | null = null;
    try {
      link = await this.#layout.link(id);
    } catch (err) {
      if (!hasCode(err, "ENOENT", "ENOTDIR")) throw err;
    }
    await unmountOverlay(this.#layout.merged(id));
    if (link) await rm(join(this.#layout.linkDir, link), { force: true });
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
    assertValidId(id);
    return this.#locks.run(id, async () => {
      if (!(await this.exists(id)))
        throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot get layer: not found "${id}"`);
      const lowers = await this.#layout.lowers(id);
      if (lowers.length === 0) return this.#layout.diff(id);
      const merged = this.#layout.merged(id);
      // Already mounted (a get without put, or a mount left by a crashed process): reuse it.
      if (await isOverlayMounted(merged)) return merged;
      await mkdir(merged, { mode: 0o700 }).catch((err: unknown) => {
        if (!hasCode(err, "EEXIST")) throw err;
      });
      const readOnly = await this.#layout.committed(id);
      try {
        const method = await mountOverlay(
          {
            home: this.home,
            lowers: readOnly ? [`${id}/diff`, ...lowers] : lowers,
            upper: readOnly ? undefined : `${id}/diff`,
            work: readOnly ? undefined : `${id}/work`,
            target: `${id}/merged`,
            readOnly,
          },
          this.support,
        );
        this.lastMountMethod.set(id, method);
      } catch (err) {
        await unmountOverlay(merged).catch(() => undefined);
        throw err;
      }
      return merged;
    });
  }

  async put(id: string): Promise<void> {
    assertValidId(id);
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
    assertValidId(id);
    return this.#locks.run(id, async () => {
      if (!(await this.exists(id)))
        throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot describe layer mount: not found "${id}"`);
      const lowers = await this.#layout.lowers(id);
      if (lowers.length === 0) {
        return [{ type: "bind", source: this.#layout.diff(id), options: ["rbind", opts.readonly ? "ro" : "rw"] }];
      }
      const abs = (rel: string) => join(this.home, rel);
      const options = this.support.indexParam ? ["index=off"] : [];
      if (opts.readonly) {
        const own = Layout.linkRel(await this.#layout.link(id));
        options.push(`lowerdir=${[own, ...lowers].map(abs).join(":")}`);
      } else {
        options.push(
          `workdir=${this.#layout.work(id)}`,
          `upperdir=${this.#layout.diff(id)}`,
          `lowerdir=${lowers.map(abs).join(":")}`,
        );
      }
      return [{ type: "overlay", source: "overlay", options }];
    });
  }

  /** Every layer id in the home (half-made and half-removed layers excluded). */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const name of await readdir(this.home)) {
      if (name === "l" || name.startsWith(".") || isTmpName(name) || name === "quota-next-id") continue;
      if (await this.exists(name)) out.push(name);
    }
    return out;
  }

  async exists(id: string): Promise<boolean> {
    try {
      return (await stat(this.#layout.diff(id))).isDirectory();
    } catch (err) {
      if (hasCode(err, "ENOENT", "ENOTDIR")) return false;
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

  /** Nothing is held per process: mounts stay for their holders (a `strata mount` outlives the command). */
  async close(): Promise<void> {}

  /** Shutdown: unmounts every layer this home still has mounted. */
  async cleanup(): Promise<void> {
    for (const id of await this.mountedIds()) await this.#locks.run(id, () => unmountOverlay(this.#layout.merged(id)));
  }

  /** Whether `parent` is `id`'s direct parent ("" for a layer without lowers). */
  async #isParent(id: string, parent: string): Promise<boolean> {
    const lowers = await this.#layout.lowers(id);
    if (!parent) return lowers.length === 0 && (await this.#layout.flattenedFrom(id)) === null;
    if (lowers.length === 0) return false;
    return lowers[0] === Layout.linkRel(await this.#layout.link(parent));
  }

  async #useNativeDiff(id: string, parent: string): Promise<boolean> {
    if (!this.capabilities.nativeDiff) return false;
    if (!(await this.exists(id)))
      throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot diff layer: not found "${id}"`);
    return this.#isParent(id, parent);
  }

  async diff(id: string, parent: string, mounts: MountAccess): Promise<Readable> {
    if (await this.#useNativeDiff(id, parent)) return upperDirTar(this.#layout.diff(id));
    return naiveDiff(id, parent, mounts);
  }

  /**
   * Compares the mounted trees (Docker's rules, exactly), but against the
   * direct parent walks only into directories present in the upper dir:
   * a change anywhere below a directory copies that directory up.
   */
  async changes(id: string, parent: string, mounts: MountAccess): Promise<Change[]> {
    if (!parent || this.#cfg.forceNaiveDiff || !(await this.exists(id)) || !(await this.#isParent(id, parent))) {
      return naiveChanges(id, parent, mounts);
    }
    const upper = this.#layout.diff(id);
    const descend = async (path: string) => {
      try {
        return (await lstat(join(upper, path))).isDirectory();
      } catch (err) {
        if (hasCode(err, "ENOENT", "ENOTDIR")) return false;
        throw err;
      }
    };
    const layer = await mounts.acquire(id);
    try {
      const parentPath = await mounts.acquire(parent);
      try {
        return await changes(layer, parentPath, { descend });
      } finally {
        await mounts.release(parent);
      }
    } finally {
      await mounts.release(id);
    }
  }

  async applyDiff(
    id: string,
    parent: string,
    tar: Readable,
    mounts: MountAccess,
    opts: ApplyDiffOptions = {},
  ): Promise<number> {
    if (!(await this.exists(id)))
      throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot apply layer: not found "${id}"`);
    const flattenedFrom = await this.#layout.flattenedFrom(id);
    if (!(await this.#isParent(id, parent)) && flattenedFrom !== parent) {
      return naiveApplyDiff(id, tar, mounts, { recorder: opts.recorder });
    }
    // With lowers, deletions must stay visible as kernel whiteouts; without, there is nothing below to hide.
    const hasLowers = (await this.#layout.lowers(id)).length > 0;
    try {
      return (
        await applyLayer(this.#layout.diff(id), tar, {
          whiteouts: hasLowers ? "overlay" : "aufs",
          recorder: opts.recorder,
        })
      ).size;
    } catch (err) {
      if (err instanceof StrataError) throw err;
      throw new StrataError("ERR_APPLY", `Cannot apply layer: ${(err as Error).message} "${id}"`, { cause: err });
    }
  }

  async diffSize(id: string, parent: string, mounts: MountAccess): Promise<number> {
    if (await this.#useNativeDiff(id, parent)) return upperDirSize(this.#layout.diff(id));
    return naiveDiffSize(id, parent, mounts);
  }

  /** The `l/` link target of `id` (for tests that check the layout). */
  async linkTarget(id: string): Promise<string> {
    return readlink(join(this.#layout.linkDir, await this.#layout.link(id)));
  }
}
