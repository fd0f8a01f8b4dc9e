/** Shared setup for the overlay-only tests. */
import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import type { ExecutionContext } from "ava";
import { createOverlay, type OverlayDriver } from "../../src/drivers/overlay/index.js";
import { type CountedMounts, countedMounts } from "../helpers/mounts.js";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

/** A fresh overlay driver in a temp root, cleaned up (unmounted, removed) after the test. */
export async function openOverlay(
  t: ExecutionContext,
  options: Record<string, string> = {},
  base?: string,
): Promise<{ d: OverlayDriver; root: string; mounts: CountedMounts }> {
  const root = await tempDir(t, "strata-ovl-", base);
  const d = (await createOverlay({ root, options })) as OverlayDriver;
  t.teardown(() => d.cleanup());
  return { d, root, mounts: await countedMounts(t, d) };
}

/** Applies the given entries as a layer tar. */
export async function applySpecs(
  _d: OverlayDriver,
  mounts: CountedMounts,
  id: string,
  parent: string,
  specs: Spec[],
): Promise<number> {
  return mounts.applyDiff(id, parent, Readable.from(chunks(await makeTar(specs))));
}

/** How many times `path` appears as a mount point in /proc/self/mountinfo. */
export async function mountCount(path: string): Promise<number> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  return text.split("\n").filter((l) => l.split(" ")[4] === path).length;
}
