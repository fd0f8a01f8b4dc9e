/**
 * Runs the chosen workload families on each driver, every driver on a fresh
 * store (`LayerStore.open` on a new root under the work directory), and
 * records strata's peak memory per family.
 *
 * @module
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { builtinDrivers } from "../drivers/index.js";
import { NotSupportedError } from "../errors.js";
import { LayerStore } from "../layer/index.js";
import type { BenchContext } from "./context.js";
import { DRIVER_WORKLOADS, registerImage, releaseChain } from "./driver-workloads.js";
import { diskUsage, peakRss, resetPeakRss } from "./measure.js";

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
 * Runs every family of `ctx.opts.families` for `runs` runs on driver `name`.
 * @returns a skip reason when the driver is not supported on this machine
 */
export async function runDriver(
  name: string,
  ctx: BenchContext,
  step: (label: string) => void,
): Promise<Skipped | undefined> {
  const root = join(ctx.opts.workDir, `store-${name}`);
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  let driver;
  try {
    driver = await builtinDrivers().get(name).factory({ root, options: {} });
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    if (err instanceof NotSupportedError) return { subject: name, reason: err.message };
    throw err;
  }
  const store = await LayerStore.open(root, driver);
  let image: Awaited<ReturnType<typeof registerImage>> = [];
  try {
    ctx.emptyHome.set(name, await diskUsage(driver.home));
    step(`${name}: registering the ten-layer image`);
    image = await registerImage(store, ctx);
    const memory = ctx.opts.families.includes("memory");
    const canReset = await resetPeakRss();
    for (let run = 1; run <= ctx.opts.runs; run++) {
      for (const family of ctx.opts.families) {
        if (family === "memory") continue;
        step(`${name} run ${run}/${ctx.opts.runs}: ${family}`);
        if (canReset) await resetPeakRss();
        await DRIVER_WORKLOADS[family](store, ctx, run, image.at(-1)!);
        if (memory && canReset) ctx.rec.add(name, "driver", "memory", `memory/${family}`, "bytes", await peakRss());
      }
      if (memory && !canReset)
        ctx.rec.add(name, "driver", "memory", "memory/all", "bytes", await peakRss(), "VmHWM could not be reset");
    }
    await releaseChain(store, image);
  } finally {
    await store.close();
    await driver.cleanup();
    await rm(root, { recursive: true, force: true });
  }
  return undefined;
}
