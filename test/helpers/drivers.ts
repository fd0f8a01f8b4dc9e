/**
 * The drivers supported on this machine, found by trying each registered
 * factory on a scratch root; tests declare their cases once per driver.
 * {@link driverTestOptions} gives each driver's test-friendly options (small
 * pools for devmapper), used by the probe and by every test that opens a driver.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { builtinDrivers } from "../../src/drivers/index.js";
import { NotSupportedError } from "../../src/errors.js";
import type { Driver } from "../../src/graphdriver/driver.js";

/** devmapper: a 2 GiB sparse pool and a 512 MiB ext4 base (xfs needs ≥ 300 MiB and is slower to make). */
const TEST_OPTIONS: Record<string, Record<string, string>> = {
  devmapper: {
    "dm.loopdatasize": "2G",
    "dm.loopmetadatasize": "64M",
    "dm.basesize": "512M",
    "dm.fs": "ext4",
  },
};

/** Driver options for tests of `name` (empty for drivers that need none). */
export function driverTestOptions(name: string): Record<string, string> {
  return { ...(TEST_OPTIONS[name] ?? {}) };
}

/** The same options as CLI arguments (`--storage-opt k=v` …). */
export function driverTestArgs(name: string): string[] {
  return Object.entries(driverTestOptions(name)).flatMap(([k, v]) => ["--storage-opt", `${k}=${v}`]);
}

/** Releases a driver at the end of a test: its full cleanup (unmounts what a failing test left mounted). */
export async function teardownDriver(driver: Driver): Promise<void> {
  await driver.cleanup();
}

export async function supportedDrivers(): Promise<string[]> {
  const reg = builtinDrivers();
  const out: string[] = [];
  for (const name of reg.names()) {
    const root = await mkdtemp(join(tmpdir(), "strata-probe-"));
    try {
      const d = await reg.get(name).factory({ root, options: driverTestOptions(name) });
      await d.cleanup();
      out.push(name);
    } catch (err) {
      if (!(err instanceof NotSupportedError)) throw err;
      console.log(`driver ${name} not supported here: ${err.message}`);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }
  return out;
}
