/**
 * The drivers supported on this machine, found by trying each registered
 * factory on a scratch root; tests declare their cases once per driver.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { builtinDrivers } from "../../src/drivers/index.js";
import { NotSupportedError } from "../../src/errors.js";

export async function supportedDrivers(): Promise<string[]> {
  const reg = builtinDrivers();
  const out: string[] = [];
  for (const name of reg.names()) {
    const root = await mkdtemp(join(tmpdir(), "strata-probe-"));
    try {
      const d = await reg.get(name).factory({ root, options: {} });
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
