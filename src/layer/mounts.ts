/**
 * Mounts: the layer store's registry of mount holds, and the only caller of
 * `driver.get` / `driver.put`. Counting lives here, not in the drivers.
 *
 * Every hold is persisted in `holds/<driver id>.json` with its holder:
 * - a process hold (pid + start time, a count): taken by internal users such
 *   as `changes`, `commit`, exports; it dies with its process;
 * - a named hold (a count): taken by `strata mount`, released by `strata unmount`.
 *
 * So counts survive process exit, and after a crash the holds of dead
 * processes are dropped and the mount state is reconciled with the mount
 * table (`reconcile`). A per-id file lock serialises acquire/release.
 *
 * @module
 */
import { mkdir, readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { FailedPreconditionError, hasCode } from "../errors.js";
import type { Driver } from "../graphdriver/driver.js";
import { StoreDir } from "../util/store-dir.js";
import { StoreLock } from "./lock.js";
import { mountPoints, mountsUnder } from "../util/mountinfo.js";
import { currentProcess, isAlive, type ProcessIdentity } from "../util/process.js";

/** Who holds a mount: a process (dies with it) or a name (persists until released). */
export type Holder =
  ({ kind: "process" } & ProcessIdentity & { n: number }) | { kind: "named"; name: string; n: number };

interface HoldRecord {
  path: string;
  /**
   * The mount `get` made for `path` (the path itself, or its parent for
   * devmapper's `rootfs/`); "" when `get` mounted nothing (vfs, an overlay
   * layer without lowers). Absent in records written before it was kept.
   */
  mountPoint?: string;
  holders: Holder[];
  /** Holds are void after a reboot: nothing is mounted any more. */
  bootID?: string;
}

let bootID: string | undefined;
async function currentBoot(): Promise<string> {
  bootID ??= (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
  return bootID;
}

/** One id's holds, as {@link Mounts.list} reports them. */
export interface HoldInfo {
  id: string;
  path: string;
  /** The mount that shows `path` ("" when none is needed). */
  mountPoint: string;
  count: number;
  holders: Holder[];
}

/** The mount holds of one driver (see the module doc). */
export class Mounts {
  readonly #driver: Driver;
  readonly #path: string;
  #dir: StoreDir | undefined;
  /** Whether init() opened the directory (then close() closes it). */
  #owned = false;
  #locks = new Map<string, StoreLock>();

  /**
   * @param holds the directory of hold records: a {@link StoreDir} of the
   *   store (the layer store passes its `holds/`), or a path that {@link init}
   *   creates and opens (tools and tests without a store)
   */
  constructor(driver: Driver, holds: StoreDir | string) {
    this.#driver = driver;
    if (typeof holds === "string") this.#path = holds;
    else {
      this.#dir = holds;
      this.#path = holds.path;
    }
  }

  /** Creates and opens the holds directory when it was given as a path. */
  async init(): Promise<void> {
    if (this.#dir) return;
    await mkdir(this.#path, { recursive: true, mode: 0o700 });
    this.#dir = await StoreDir.open(this.#path);
    this.#owned = true;
  }

  get #files(): StoreDir {
    if (!this.#dir) throw new Error(`Mounts used before init(): ${this.#path}`);
    return this.#dir;
  }

  #lock(id: string): StoreLock {
    let l = this.#locks.get(id);
    if (!l) {
      l = new StoreLock(this.#files, `${id}.lock`);
      this.#locks.set(id, l);
    }
    return l;
  }

  async #read(id: string): Promise<HoldRecord> {
    const text = await this.#files.readOptional(`${id}.json`);
    if (text === null) return { path: "", holders: [] };
    const rec = JSON.parse(text) as HoldRecord;
    if (rec.bootID !== (await currentBoot())) return { path: "", holders: [] };
    return rec;
  }

  async #write(id: string, rec: HoldRecord): Promise<void> {
    if (rec.holders.length === 0) await this.#files.unlink(`${id}.json`);
    // Not fsync'd: holds only need to survive a process crash, and a reboot voids them.
    else await this.#files.writeJsonAtomic(`${id}.json`, { ...rec, bootID: await currentBoot() }, { durable: false });
  }

  /** Drops holds of processes that are gone. */
  static async #prune(rec: HoldRecord): Promise<boolean> {
    const before = rec.holders.length;
    const live: Holder[] = [];
    for (const h of rec.holders) if (h.kind === "named" || (await isAlive(h))) live.push(h);
    rec.holders = live;
    return live.length !== before;
  }

  /** The mount showing `path` right after `get` returned it ("" when nothing is mounted for it). */
  async #mountPointOf(path: string): Promise<string> {
    if (this.#driver.capabilities.mountless) return "";
    const table = await mountPoints();
    if (table.has(path)) return path;
    return table.has(dirname(path)) ? dirname(path) : "";
  }

  /** Whether the layer's tree is really mounted, as the kernel's mount table says. */
  async #mounted(rec: HoldRecord): Promise<boolean> {
    if (!rec.path) return false;
    if (rec.mountPoint === "") return true;
    const table = await mountPoints();
    if (rec.mountPoint !== undefined) return table.has(rec.mountPoint);
    return table.has(rec.path) || table.has(dirname(rec.path));
  }

  /** Mounts `id` again through the driver and records where. */
  async #get(id: string, rec: HoldRecord): Promise<void> {
    rec.path = await this.#driver.get(id);
    rec.mountPoint = await this.#mountPointOf(rec.path);
  }

  /**
   * Takes a hold on `id`, mounting it when it is the first.
   * @param named a named (long-lived) holder, e.g. "user" for `strata mount`; default: this process
   * @returns the path of the layer's tree
   */
  async acquire(id: string, named?: string): Promise<string> {
    const me = await currentProcess();
    return this.#lock(id).with(async () => {
      const rec = await this.#read(id);
      await Mounts.#prune(rec);
      if (rec.holders.length === 0 || !(await this.#mounted(rec))) await this.#get(id, rec);
      const h = named
        ? rec.holders.find((x) => x.kind === "named" && x.name === named)
        : rec.holders.find((x) => x.kind === "process" && x.pid === me.pid && x.start === me.start);
      if (h) h.n++;
      else rec.holders.push(named ? { kind: "named", name: named, n: 1 } : { kind: "process", ...me, n: 1 });
      try {
        await this.#write(id, rec);
      } catch (err) {
        if (rec.holders.length === 1 && rec.holders[0]!.n === 1) await this.#driver.put(id);
        throw err;
      }
      return rec.path;
    });
  }

  /**
   * Drops one hold; unmounts when none is left.
   * @throws ERR_NOT_MOUNTED when the holder holds nothing
   */
  async release(id: string, named?: string): Promise<void> {
    const me = await currentProcess();
    await this.#lock(id).with(async () => {
      const rec = await this.#read(id);
      await Mounts.#prune(rec);
      const i = rec.holders.findIndex((x) =>
        named
          ? x.kind === "named" && x.name === named
          : x.kind === "process" && x.pid === me.pid && x.start === me.start,
      );
      if (i < 0) {
        await this.#write(id, rec);
        throw new FailedPreconditionError("ERR_NOT_MOUNTED", `Cannot unmount: not mounted by this holder "${id}"`);
      }
      const h = rec.holders[i]!;
      if (--h.n === 0) rec.holders.splice(i, 1);
      if (rec.holders.length === 0) await this.#driver.put(id);
      await this.#write(id, rec);
    });
  }

  /** Drops every hold on `id` and unmounts it (for `rm --force`). */
  async releaseAll(id: string): Promise<void> {
    await this.#lock(id).with(async () => {
      await this.#driver.put(id);
      await this.#write(id, { path: "", holders: [] });
    });
  }

  /** Live holds on `id` (dead processes' holds are not counted). */
  async count(id: string): Promise<number> {
    const rec = await this.#read(id);
    await Mounts.#prune(rec);
    return rec.holders.reduce((s, h) => s + h.n, 0);
  }

  /** The live holders of `id` (dead processes' holds left out). */
  async holders(id: string): Promise<Holder[]> {
    const rec = await this.#read(id);
    await Mounts.#prune(rec);
    return rec.holders;
  }

  /** Every id with a holds record, with live counts. */
  async list(): Promise<HoldInfo[]> {
    const out: HoldInfo[] = [];
    for (const f of await this.#files.readdir()) {
      if (!f.endsWith(".json") || f.startsWith(".")) continue;
      const id = f.slice(0, -5);
      const rec = await this.#read(id);
      await Mounts.#prune(rec);
      out.push({
        id,
        path: rec.path,
        mountPoint: rec.mountPoint ?? "",
        count: rec.holders.reduce((s, h) => s + h.n, 0),
        holders: rec.holders,
      });
    }
    return out;
  }

  /**
   * Held ids whose mount the kernel does not have (unmounted from outside,
   * or by a crash of what served it): the holders' paths show nothing.
   */
  async unmounted(): Promise<HoldInfo[]> {
    const out: HoldInfo[] = [];
    for (const h of await this.list()) {
      if (h.count === 0) continue;
      const rec: HoldRecord = {
        path: h.path,
        holders: h.holders,
        ...(h.mountPoint ? { mountPoint: h.mountPoint } : {}),
      };
      if (!(await this.#mounted(rec))) out.push({ ...h, mountPoint: h.mountPoint || h.path });
    }
    return out;
  }

  /**
   * Mounts `id` afresh for the holds it has (a mount that was unmounted from
   * outside, or broke under them): unmounts what is left, mounts again,
   * keeps every hold. Nothing held: only unmounts.
   * @returns the new path, or "" when nothing holds `id`
   */
  async remount(id: string): Promise<string> {
    return this.#lock(id).with(async () => {
      const rec = await this.#read(id);
      await Mounts.#prune(rec);
      await this.#driver.put(id);
      if (rec.holders.length > 0) await this.#get(id, rec);
      else rec.path = "";
      await this.#write(id, rec);
      return rec.path;
    });
  }

  /**
   * After a crash: drops holds of dead processes and unmounts what no live
   * hold needs. Returns the ids it repaired.
   */
  async reconcile(): Promise<string[]> {
    const repaired: string[] = [];
    for (const f of await this.#files.readdir()) {
      if (!f.endsWith(".json") || f.startsWith(".")) continue;
      const id = f.slice(0, -5);
      await this.#lock(id).with(async () => {
        const rec = await this.#read(id);
        if (!(await Mounts.#prune(rec))) return;
        if (rec.holders.length === 0) {
          try {
            await stat(rec.path);
            await this.#driver.put(id);
          } catch (err) {
            if (!hasCode(err, "ENOENT", "ERR_LAYER_NOT_FOUND")) throw err;
          }
        }
        await this.#write(id, rec);
        repaired.push(id);
      });
    }
    return repaired;
  }

  /**
   * Unmounts layers that are mounted and held by nobody: a process killed
   * between mounting a layer and recording its hold, whose caller never got
   * the path. A layer counts as mounted when a mount point under the
   * driver's home has its id as one path element (`<id>/merged`,
   * `mnt/<id>`). Returns the ids it unmounted.
   */
  async releaseUnheld(): Promise<string[]> {
    if (this.#driver.capabilities.mountless) return [];
    const home = this.#driver.home;
    const mounted = new Set<string>();
    for (const mp of await mountsUnder(home))
      for (const part of mp.slice(home.length + 1).split("/")) mounted.add(part);
    const released: string[] = [];
    for (const id of await this.#driver.list()) {
      if (!mounted.has(id)) continue;
      await this.#lock(id).with(async () => {
        const rec = await this.#read(id);
        await Mounts.#prune(rec);
        if (rec.holders.length > 0) return;
        await this.#driver.put(id);
        await this.#write(id, rec);
        released.push(id);
      });
    }
    return released;
  }

  /** Closes the per-id locks (and the holds directory when {@link init} opened it). */
  async close(): Promise<void> {
    await Promise.all([...this.#locks.values()].map((l) => l.close()));
    this.#locks.clear();
    if (this.#owned) {
      await this.#dir?.close();
      this.#dir = undefined;
      this.#owned = false;
    }
  }
}
