/**
 * The built-in drivers in priority order (Docker's: overlay, devmapper, vfs).
 *
 * @module
 */
import type { DriverFactory } from "../graphdriver/driver.js";
import { DriverRegistry } from "../graphdriver/registry.js";
import { createOverlay } from "./overlay/index.js";

// Loaded when chosen: the devmapper driver and its thin-pool client are a fifth
// of the modules every strata command would otherwise load at start.
const createDevmapper: DriverFactory = async (opts) => (await import("./devmapper/index.js")).createDevmapper(opts);
const createVfs: DriverFactory = async (opts) => (await import("./vfs/index.js")).createVfs(opts);

/** A registry holding every built-in driver, highest priority first. */
export function builtinDrivers(): DriverRegistry {
  const r = new DriverRegistry();
  r.register({ name: "overlay", factory: createOverlay });
  // Deprecated as in Docker v23+: chosen by name or by existing state, never by the priority walk
  // (a default pool is a 100G sparse file and a 10G formatted base device).
  r.register({ name: "devmapper", factory: createDevmapper, deprecated: true });
  r.register({ name: "vfs", factory: createVfs, fallback: true });
  return r;
}
