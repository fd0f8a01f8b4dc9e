/**
 * The vfs driver: full copies, no mounts. Works on any filesystem.
 *
 * @module
 */
import { InvalidArgumentError } from "../../errors.js";
import type { DriverFactory } from "../../graphdriver/driver.js";
import { VfsDriver } from "./driver.js";

export { VfsDriver };

/** Creates the vfs driver under `<root>/vfs` (made by the first layer created). It accepts no driver options. */
export const createVfs: DriverFactory = async ({ root, options }) => {
  const unknown = Object.keys(options).filter((k) => k.startsWith("vfs."));
  if (unknown.length)
    throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot start vfs: unknown option "${unknown[0]}"`);
  const driver = new VfsDriver(root);
  await driver.init();
  return driver;
};
