/**
 * Crash recovery for the layer store.
 *
 * `recover` runs (under the store lock) every time a store is opened: it
 * rolls back registers and creates whose process died (their driver layers
 * are removed, no partial layer is ever listed), finishes interrupted
 * deletions (`-removing` directories, containers in state "removing"),
 * drops mount holds of dead processes and unmounts what nothing holds, and
 * removes the temporary files of atomic writes whose writer died.
 * Named references are left alone, pending import refs of dead processes
 * too: only the image records (outside this module) can tell whether such a
 * layer is used; `src/image/ref-check.ts` decides, under the same lock.
 *
 * Recovery never makes opening the store fail because something could not
 * be removed: what resists (a leaked mount inside a layer, a busy device)
 * stays where it is, listed in the report, for `strata check --repair`.
 *
 * @module
 */
import type { Driver } from "../graphdriver/driver.js";
import { isAlive } from "../util/process.js";
import type { Collector } from "./collector.js";
import { sharedInitID } from "./init-layer.js";
import type { LayerDB } from "./layerdb.js";
import type { Mounts } from "./mounts.js";

/** The parts of a layer store that recovery and checks work on (under the store lock). */
export interface StoreParts {
  db: LayerDB;
  driver: Driver;
  mounts: Mounts;
  collector: Collector;
}

/** What `recover` did, for logs and tests. */
export interface RecoveryReport {
  rolledBack: string[];
  finishedRemovals: string[];
  mountsRepaired: string[];
  /** Temporary files of atomic writes whose writer died (relative paths), removed. */
  sweptWrites: string[];
  /** What could not be finished now ("<what>: <reason>"); `check` reports what is left. */
  deferred: string[];
}

/** Runs `step`, noting its failure in `deferred` instead of failing the whole recovery. */
async function attempt(deferred: string[], what: string, step: () => Promise<void>): Promise<boolean> {
  try {
    await step();
    return true;
  } catch (err) {
    deferred.push(`${what}: ${(err as Error).message}`);
    return false;
  }
}

/** Finishes or rolls back what crashed processes left (under the store lock). */
export async function recover({ db, mounts, collector }: StoreParts): Promise<RecoveryReport> {
  const report: RecoveryReport = {
    rolledBack: [],
    finishedRemovals: [],
    mountsRepaired: [],
    sweptWrites: [],
    deferred: [],
  };
  for (const name of await db.clearTmp()) report.deferred.push(`tmp/${name}: could not be removed`);
  // A writer killed between its write and its rename (issue 18: a crashed `layer apply`).
  for (const rel of await db.staleWrites()) {
    if (await attempt(report.deferred, rel, () => db.removeTree(rel))) report.sweptWrites.push(rel);
  }
  for (const { id, intent } of await db.listIntents()) {
    if (await isAlive(intent.owner)) continue; // still running in another process
    // A process killed after committing but before dropping its intent: the driver
    // layers now belong to a stored layer or a ready container and must stay.
    const committed = new Set((await db.listLayers()).flatMap((l) => [l.cacheID, sharedInitID(l.cacheID)]));
    const rec = intent.kind === "create" && intent.container ? await db.readContainer(intent.container) : null;
    if (rec?.state === "ready") for (const d of [rec.mountID, rec.initID]) if (d) committed.add(d);
    const done = await attempt(report.deferred, `intent ${id}`, async () => {
      for (const d of intent.driverIDs) if (!committed.has(d)) await collector.removeDriverLayer(d, { unmount: true });
      if (rec && rec.state !== "ready") await db.deleteContainer(intent.container!);
      await db.deleteIntent(id);
    });
    if (done) report.rolledBack.push(id);
  }
  for (const { path, cacheID } of await db.removingOrphans()) {
    const done = await attempt(report.deferred, path, async () => {
      if (cacheID) await collector.removeDriverLayer(cacheID, { unmount: true });
      await db.removeTree(path);
    });
    if (done) report.finishedRemovals.push(cacheID);
  }
  for (const c of await db.listContainers()) {
    if (c.state !== "removing") continue;
    const done = await attempt(report.deferred, `container ${c.name}`, async () => {
      await collector.removeDriverLayer(c.mountID, { unmount: true });
      if (c.initID && !c.initShared) await collector.removeDriverLayer(c.initID, { unmount: true });
      await db.deleteContainer(c.name);
      if (c.parent) await collector.deleteUnreferenced(c.parent);
    });
    if (done) report.finishedRemovals.push(c.mountID);
  }
  await attempt(report.deferred, "mount holds", async () => {
    report.mountsRepaired = await mounts.reconcile();
  });
  return report;
}
