/**
 * The layer store's own mount counting ({@link Mounts}) and {@link Differ}
 * over a bare driver, for driver-level tests without a layer store: the
 * one counting path the product uses, with its holds in a temp dir.
 */
import { mkdir } from "node:fs/promises";
import type { Readable } from "node:stream";
import type { ExecutionContext } from "ava";
import type { Change } from "../../src/diff/index.js";
import type { Driver, MountSpec } from "../../src/graphdriver/driver.js";
import { Differ, Mounts } from "../../src/layer/index.js";
import { C, mount, umount2 } from "../../src/native.js";
import { tempDir } from "./tmp.js";

/** mount(2)'s MS_REMOUNT (not among the addon's constants). */
const MS_REMOUNT = 32;

/**
 * Mounts a `Driver.mountSpec` description at `target` the way containerd
 * does (bind/rbind with a read-only remount, else type + options as data);
 * returns the unmount.
 */
export async function mountSpecs(specs: MountSpec[], target: string): Promise<() => Promise<void>> {
  await mkdir(target, { recursive: true });
  for (const m of specs) {
    const ro = m.options.includes("ro");
    const data = m.options.filter((o) => !["ro", "rw", "rbind", "bind"].includes(o)).join(",");
    if (m.type === "bind") {
      await mount(m.source, target, null, C.MS_BIND | C.MS_REC);
      if (ro) await mount(null, target, null, MS_REMOUNT | C.MS_BIND | C.MS_RDONLY);
    } else {
      await mount(m.source, target, m.type, ro ? C.MS_RDONLY : 0, data || null);
    }
  }
  return () => umount2(target, C.MNT_DETACH);
}

/** Acquire/release as this process, and the Differ's methods, over one driver. */
export interface CountedMounts {
  acquire(id: string): Promise<string>;
  release(id: string): Promise<void>;
  /** How many ids are held now. */
  active(): Promise<number>;
  /** Applies a tar onto the empty layer `id`; returns Σ entry sizes, as Docker's ApplyDiff. */
  applyDiff(id: string, parent: string, tar: Readable): Promise<number>;
  diff(id: string, parent: string): Promise<Readable>;
  changes(id: string, parent: string): Promise<Change[]>;
  diffSize(id: string, parent: string): Promise<number>;
  /** The same, comparing mounted trees even where the driver keeps a diff dir (the naive diff). */
  naive: Pick<CountedMounts, "diff" | "changes" | "diffSize">;
}

/** `driver` seen as one that keeps no diff dir of its own: the Differ then compares mounted trees. */
function naiveView(driver: Driver): Driver {
  return new Proxy(driver, {
    get(target, prop) {
      if (prop === "diffDir" || prop === "applyDir") return async () => null;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

export async function countedMounts(t: ExecutionContext, driver: Driver): Promise<CountedMounts> {
  const mounts = new Mounts(driver, await tempDir(t, "strata-holds-"));
  await mounts.init();
  t.teardown(() => mounts.close());
  const differ = new Differ(driver, mounts);
  const naive = new Differ(naiveView(driver), mounts);
  return {
    acquire: (id) => mounts.acquire(id),
    release: (id) => mounts.release(id),
    active: async () => (await mounts.list()).filter((h) => h.count > 0).length,
    applyDiff: async (id, parent, tar) => (await differ.applyDiff(id, parent, tar)).size,
    diff: (id, parent) => differ.diff(id, parent),
    changes: (id, parent) => differ.changes(id, parent),
    diffSize: (id, parent) => differ.diffSize(id, parent),
    naive: {
      diff: (id, parent) => naive.diff(id, parent),
      changes: (id, parent) => naive.changes(id, parent),
      diffSize: (id, parent) => naive.diffSize(id, parent),
    },
  };
}
