/** Temporary directories for tests, removed after the test whatever happens. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecutionContext } from "ava";

/** A fresh directory under $TMPDIR (or `base`), removed when the test ends. */
export async function tempDir(t: ExecutionContext, prefix = "strata-test-", base = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(base, prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
