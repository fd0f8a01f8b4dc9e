/** Helpers for the devmapper tests: drivers and stores that shut down whatever happens, and the thin tools. */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ExecutionContext } from "ava";
import { createDevmapper, type DevmapperDriver } from "../../src/drivers/devmapper/index.js";
import { LayerStore } from "../../src/layer/index.js";
import { driverTestOptions } from "../helpers/drivers.js";
import { tempDir } from "../helpers/tmp.js";

export const run = promisify(execFile);

/** A devmapper driver on a fresh root (test options plus `extra`), fully shut down at the end. */
export async function openDevmapper(
  t: ExecutionContext,
  extra: Record<string, string> = {},
  root?: string,
): Promise<{ root: string; driver: DevmapperDriver }> {
  const r = root ?? (await tempDir(t, "strata-dm-"));
  const driver = (await createDevmapper({
    root: r,
    options: { ...driverTestOptions("devmapper"), ...extra },
  })) as DevmapperDriver;
  t.teardown(() => driver.cleanup());
  return { root: r, driver };
}

/** A layer store over {@link openDevmapper}. */
export async function openDmStore(t: ExecutionContext, extra: Record<string, string> = {}, root?: string) {
  const { root: r, driver } = await openDevmapper(t, extra, root);
  const store = await LayerStore.open(r, driver);
  t.teardown(() => store.close());
  return { root: r, driver, store };
}

/** The userspace pool's metadata file under a devmapper root. */
export function metadataFile(root: string): string {
  return join(root, "devmapper", "devicemapper", "metadata");
}

/** Thin device ids in pool metadata, by `thin_ls` (the pool must be closed). */
export async function thinLs(metadata: string): Promise<number[]> {
  const { stdout } = await run("thin_ls", ["--no-headers", "-o", "DEV", metadata]);
  return stdout
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map(Number)
    .sort((a, b) => a - b);
}
