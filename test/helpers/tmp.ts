/** Temporary directories for tests, removed after the test whatever happens. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecutionContext } from "ava";
import { mountsUnder } from "../../src/util/mountinfo.js";
import { C, umount2 } from "../../src/native.js";

/** Detaches every mount at or below `dir` (deepest first, stacked mounts too). */
export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 16; round++) {
    const left = await mountsUnder(dir);
    if (left.length === 0) return;
    for (const m of left.sort((a, b) => b.length - a.length)) await umount2(m, C.MNT_DETACH).catch(() => undefined);
  }
}

/**
 * A fresh directory under $TMPDIR (or `base`), removed when the test ends,
 * after anything a test or a killed strata process left mounted inside it.
 */
export async function tempDir(t: ExecutionContext, prefix = "strata-test-", base = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(base, prefix));
  t.teardown(async () => {
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}
