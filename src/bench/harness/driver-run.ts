/**
 * Runs one unit of workloads on one driver: a new store (`LayerStore.open`)
 * on the unit's fresh filesystem, the ten-layer image registered untimed
 * when the family needs it, the caches dropped, then the timed workload.
 *
 * @module
 */
import { join } from "node:path";
import { builtinDrivers } from "../../drivers/index.js";
import { LayerStore } from "../../layer/index.js";
import { dropCaches, type FreshFs } from "../fresh-fs.js";
import type { BenchContext, Unit } from "./context.js";
import { DRIVER_WORKLOADS, needsImage, registerImage, releaseChain } from "./driver-workloads.js";
import { diskUsage } from "./measure.js";

/** A subject that could not run, and why. */
export interface Skipped {
  subject: string;
  reason: string;
}

/** The drivers to run: the ones asked for, or every built-in driver (unsupported ones are skipped later). */
export function driverNames(asked: string[]): string[] {
  return asked.length ? asked : builtinDrivers().names();
}

/**
 * Runs `unit` once on driver `name` with its store under `fs`.
 * @throws NotSupportedError (from the driver's factory) when the driver cannot run here
 */
export async function runDriverUnit(
  name: string,
  ctx: BenchContext,
  fs: FreshFs,
  unit: Unit,
  run: number,
): Promise<void> {
  const root = join(fs.path, "store");
  const driver = await builtinDrivers().get(name).factory({ root, options: {} });
  let store: LayerStore | undefined;
  try {
    store = await LayerStore.open(root, driver);
    const emptyHome = await diskUsage(driver.home);
    const image = needsImage(unit.family) ? await registerImage(store, ctx) : [];
    await dropCaches();
    await DRIVER_WORKLOADS[unit.family]({ store, ctx, run, unit, image: image.at(-1) ?? "", emptyHome });
    await releaseChain(store, image);
  } finally {
    await store?.close();
    await driver.cleanup();
  }
}
