/**
 * Test hooks, for crash tests that must stop an import at an exact step.
 * Unset (every normal run), a hook costs one environment lookup.
 *
 * - `STRATA_TEST_PAUSE_AFTER_LAYERS=FILE`: an import (pull, load, commit)
 *   whose layers are all registered, before it writes its image record;
 * - `STRATA_TEST_PAUSE_AFTER_RECORD=FILE`: after the image record is
 *   written, before its layers are moved to the "image" reference.
 *
 * At that point the process writes its pid to FILE (atomically) and waits
 * until FILE is removed: the test SIGKILLs it there, or removes FILE to let
 * it go on.
 *
 * @module
 */
import { rename, stat, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

/** Where an import may pause for a test. */
export type PausePoint = "AFTER_LAYERS" | "AFTER_RECORD";

/** Pauses at `point` when the test hook for it is set (see the module doc); otherwise returns at once. */
export async function testPause(point: PausePoint): Promise<void> {
  const file = process.env[`STRATA_TEST_PAUSE_${point}`];
  if (!file) return;
  await writeFile(`${file}.tmp`, String(process.pid));
  await rename(`${file}.tmp`, file);
  for (;;) {
    const there = await stat(file).then(
      () => true,
      () => false,
    );
    if (!there) return;
    await sleep(20);
  }
}
