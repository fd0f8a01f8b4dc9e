/** A minimal counted MountAccess over a driver, for driver-level tests without a layer store. */
import type { Driver, MountAccess } from "../../src/graphdriver/driver.js";

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
