/**
 * The vfs driver: full copies, no mounts. Works on any filesystem.
 *
 * @module
 */
import { join } from "node:path";
import { InvalidArgumentError } from "../../errors.js";
import type { DriverFactory } from "../../graphdriver/driver.js";
import { VfsDriver } from "./driver.js";

export { VfsDriver };

/** Creates the vfs driver under `<root>/vfs`. It accepts no driver options. */
export const createVfs: DriverFactory = async ({ root, options }) => {
  const unknown = Object.keys(options).filter((k) => k.startsWith("vfs."));
  if (unknown.length)
    throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot start vfs: unknown option "${unknown[0]}"`);
  const driver = new VfsDriver(join(root, "vfs"));
  await driver.init();
  return driver;
};
