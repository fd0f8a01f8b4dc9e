/** Mount helpers for driver-level tests without a layer store. */
import { mkdir } from "node:fs/promises";
import type { Driver, MountAccess, MountSpec } from "../../src/graphdriver/driver.js";
import { C, mount, umount2 } from "../../src/native.js";

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

/** A minimal counted MountAccess over a driver. */

export function countedMounts(driver: Driver): MountAccess & { active(): number } {
  const counts = new Map<string, { n: number; path: string }>();
  return {
    async acquire(id) {
      const c = counts.get(id);
      if (c) {
        c.n++;
        return c.path;
      }
      const path = await driver.get(id);
      counts.set(id, { n: 1, path });
      return path;
    },
    async release(id) {
      const c = counts.get(id);
      if (!c) throw new Error(`release of unacquired ${id}`);
      if (--c.n === 0) {
        counts.delete(id);
        await driver.put(id);
      }
    },
    active: () => counts.size,
  };
}
