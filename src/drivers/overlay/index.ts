/**
 * The overlay driver: overlay2's layout on kernel overlayfs, with native
 * diff from the upper dir where that is safe, mounts past the page limit,
 * and chains deeper than the kernel's lower limit flattened on create.
 * See README.md ("Theory of operation").
 *
 * @module
 */
import { join } from "node:path";
import { NotSupportedError } from "../../errors.js";
import type { DriverFactory } from "../../graphdriver/driver.js";
import { checkSupport } from "./check.js";
import { parseConfig } from "./config.js";
import { OverlayDriver } from "./driver.js";

export { OverlayDriver };
export { type OverlaySupport } from "./check.js";
export { KERNEL_MAX_LOWERS, type OverlayConfig } from "./config.js";

/**
 * Creates the overlay driver under `<root>/overlay`.
 * @throws NotSupportedError (ERR_OVERLAY_*) when overlay cannot run here, so
 *   auto-selection moves on; ERR_INVALID_OPTION for a bad `overlay.*` option
 * @example
 * const driver = await createOverlay({ root: "/var/lib/strata", options: {} });
 */
export const createOverlay: DriverFactory = async ({ root, options }) => {
  const cfg = parseConfig(options);
  const home = join(root, "overlay");
  if (/[:,\\]/.test(home)) {
    throw new NotSupportedError(
      "ERR_OVERLAY_HOME",
      `Cannot use overlay: the home path holds ":", "," or "\\" "${home}"`,
    );
  }
  const support = await checkSupport(home);
  const driver = new OverlayDriver(home, cfg, support);
  await driver.init();
  return driver;
};
