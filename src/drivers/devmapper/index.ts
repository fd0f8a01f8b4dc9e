/**
 * The devmapper driver: Docker's DeviceSet (thin devices, transactions, base
 * device, dm.* options, deferred removal/deletion) on a thin pool reached
 * through one target interface: the kernel's dm-thin (`kernel`, via dmsetup)
 * or strata's own pool engine (`userspace`). See README.md.
 *
 * @example
 * const driver = await createDevmapper({ root: "/var/lib/strata", options: { "dm.basesize": "512M" } });
 * await driver.create("layer1", "");
 * const path = await driver.get("layer1"); // …/devmapper/mnt/layer1/rootfs
 * await driver.put("layer1");
 * await driver.cleanup();
 *
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NotSupportedError } from "../../errors.js";
import type { DriverFactory } from "../../graphdriver/driver.js";
import { DeviceSet } from "./device-set.js";
import { DevmapperDriver } from "./driver.js";
import { KernelTarget, kernelTargetAvailable } from "./kernel-target.js";
import { type DmConfig, parseOptions } from "./options.js";
import type { PoolTarget } from "./pool.js";
import { UserspaceTarget } from "./userspace-target.js";

export { DevmapperDriver };
export { DeviceSet, type DeviceSetStatus } from "./device-set.js";
export { humanSize, parseOptions, parseSize, type DmConfig } from "./options.js";
export type { PoolTarget } from "./pool.js";
export { DmError, type DmErrorCode } from "./errors.js";

/** Whether the userspace pool can run here: its daemon is built and FUSE is available. */
function userspaceAvailable(): { ok: boolean; reason: string } {
  const daemon = fileURLToPath(new URL("../../../../build/thinpool/strata-poold", import.meta.url));
  if (!existsSync(daemon)) return { ok: false, reason: `the pool daemon is not built (${daemon})` };
  if (!existsSync("/dev/fuse")) return { ok: false, reason: "/dev/fuse does not exist" };
  if (!existsSync("/dev/loop-control")) return { ok: false, reason: "/dev/loop-control does not exist" };
  return { ok: true, reason: "" };
}

/** Chooses the target: dm.target when given, else kernel when /dev/mapper/control answers, else userspace. */
export async function chooseTarget(config: DmConfig): Promise<PoolTarget> {
  const want = config.target;
  if (want !== "userspace") {
    const k = await kernelTargetAvailable();
    if (k.ok) return new KernelTarget(undefined, config.logLevel);
    if (want === "kernel")
      throw new NotSupportedError("ERR_NOT_SUPPORTED", `Cannot start devmapper: dm.target=kernel: ${k.reason}`);
  }
  const u = userspaceAvailable();
  if (!u.ok)
    throw new NotSupportedError("ERR_NOT_SUPPORTED", `Cannot start devmapper: no thin-pool target (${u.reason})`);
  return new UserspaceTarget();
}

/** Creates the devmapper driver under `<root>/devmapper`. */
export const createDevmapper: DriverFactory = async ({ root, options }) => {
  const config = parseOptions(options);
  const target = await chooseTarget(config);
  const home = join(root, "devmapper");
  const ds = await DeviceSet.open(home, config, target);
  return new DevmapperDriver(home, ds);
};
