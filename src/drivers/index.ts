/**
 * The built-in drivers in priority order (Docker's: overlay, devmapper, vfs).
 *
 * @module
 */
import { DriverRegistry } from "../graphdriver/registry.js";
import { createOverlay } from "./overlay/index.js";
import { createVfs } from "./vfs/index.js";

/** A registry holding every built-in driver, highest priority first. */
export function builtinDrivers(): DriverRegistry {
  const r = new DriverRegistry();
  r.register({ name: "overlay", factory: createOverlay });
  r.register({ name: "vfs", factory: createVfs });
  return r;
}
