/**
 * Crash recovery and consistency checks for the layer store.
 *
 * `recover` runs (under the store lock) every time a store is opened: it
 * rolls back registers and creates whose process died (their driver layers
 * are removed, no partial layer is ever listed), finishes interrupted
 * deletions (`-removing` directories, containers in state "removing"),
 * drops mount holds of dead processes and unmounts what nothing holds.
 * Named references are left alone, pending import refs of dead processes
 * too: only the image records (outside this module) can tell whether such a
 * layer is used; `src/image/ref-check.ts` decides, under the same lock.
 *
 * `check` reports what is inconsistent; with `repair` it fixes it.
 *
 * @module
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { hasCode } from "../errors.js";
import { isAlive } from "../util/process.js";
import { sharedInitID } from "./init-layer.js";
import type { LayerStore } from "./store.js";

/** Removes driver layer `id` (unmounting it first); an image layer's shared init layer goes with it. */
async function removeDriverLayer(store: LayerStore, id: string): Promise<void> {
  if (store.driver.capabilities.sharedInit) await removeOne(store, sharedInitID(id));
  await removeOne(store, id);
  await rm(join(store.db.dir, "init-originals", id), { recursive: true, force: true });
}

async function removeOne(store: LayerStore, id: string): Promise<void> {
  try {
    await store.driver.put(id);
  } catch (err) {
    if (!hasCode(err, "ERR_LAYER_NOT_FOUND", "ENOENT", "EINVAL")) throw err;
  }
  await store.driver.remove(id);
}

/** What `recover` did, for logs and tests. */
export interface RecoveryReport {
  rolledBack: string[];
  finishedRemovals: string[];
  mountsRepaired: string[];
}

/** Finishes or rolls back what crashed processes left (call under the store lock). */
export async function recover(store: LayerStore): Promise<RecoveryReport> {
  const report: RecoveryReport = { rolledBack: [], finishedRemovals: [], mountsRepaired: [] };
  const db = store.db;
  await db.clearTmp();
  for (const { id, intent } of await db.listIntents()) {
    if (await isAlive(intent.owner)) continue; // still running in another process
    // A process killed after committing but before dropping its intent: the driver
    // layers now belong to a stored layer or a ready container and must stay.
    const committed = new Set((await db.listLayers()).flatMap((l) => [l.cacheID, sharedInitID(l.cacheID)]));
    const rec = intent.kind === "create" && intent.container ? await db.readContainer(intent.container) : null;
    if (rec?.state === "ready") for (const d of [rec.mountID, rec.initID]) if (d) committed.add(d);
    for (const d of intent.driverIDs) if (!committed.has(d)) await removeDriverLayer(store, d);
    if (rec && rec.state !== "ready") await db.deleteContainer(intent.container!);
    await db.deleteIntent(id);
    report.rolledBack.push(id);
  }
  for (const { path, cacheID } of await db.removingOrphans()) {
    if (cacheID) await removeDriverLayer(store, cacheID);
    await rm(path, { recursive: true, force: true });
    report.finishedRemovals.push(cacheID);
  }
  for (const c of await db.listContainers()) {
    if (c.state !== "removing") continue;
    await removeDriverLayer(store, c.mountID);
    if (c.initID && !c.initShared) await removeDriverLayer(store, c.initID);
    await db.deleteContainer(c.name);
    if (c.parent) await store.deleteUnreferencedLocked(c.parent);
    report.finishedRemovals.push(c.mountID);
  }
  report.mountsRepaired = await store.mounts.reconcile();
  return report;
}

export interface CheckProblem {
  kind:
    | "missing-parent"
    | "missing-driver-layer"
    | "orphan-driver-layer"
    | "dangling-hold"
    | "container-missing-layer"
    | "hold-without-mount"
    | "broken-mount";
  subject: string;
  detail: string;
}

/**
 * Verifies the store: every layer's parent and driver layer exist, every
 * container's layers exist, every driver layer belongs to something, and no
 * mount hold points at nothing. With `repair`, orphan driver layers and
 * dangling holds are removed, and layers or containers whose driver data is
 * gone are dropped.
 */
export async function check(store: LayerStore, repair: boolean): Promise<CheckProblem[]> {
  return store.lock.with(async () => {
    const problems: CheckProblem[] = [];
    const layers = await store.db.listLayers();
    const containers = await store.db.listContainers();
    const intents = await store.db.listIntents();
    const driverIDs = new Set(await store.driver.list());
    const known = new Set<string>();
    const chainIDs = new Set(layers.map((l) => l.chainID));
    for (const l of layers) {
      known.add(l.cacheID);
      if (store.driver.capabilities.sharedInit) known.add(sharedInitID(l.cacheID));
      if (l.parent && !chainIDs.has(l.parent)) {
        problems.push({ kind: "missing-parent", subject: l.chainID, detail: `parent ${l.parent} is not in the store` });
      }
      if (!driverIDs.has(l.cacheID)) {
        problems.push({
          kind: "missing-driver-layer",
          subject: l.chainID,
          detail: `driver layer ${l.cacheID} is missing`,
        });
        if (repair) await store.db.markRemoving(l.chainID).then((p) => rm(p, { recursive: true, force: true }));
      }
    }
    for (const c of containers) {
      for (const id of [c.mountID, c.initID].filter(Boolean)) {
        known.add(id);
        if (!driverIDs.has(id)) {
          problems.push({ kind: "container-missing-layer", subject: c.name, detail: `driver layer ${id} is missing` });
          if (repair) await store.db.deleteContainer(c.name);
        }
      }
    }
    for (const { intent } of intents) for (const id of intent.driverIDs) known.add(id);
    for (const id of driverIDs) {
      if (known.has(id)) continue;
      problems.push({
        kind: "orphan-driver-layer",
        subject: id,
        detail: "driver layer referenced by no layer or container",
      });
      if (repair) await removeDriverLayer(store, id);
    }
    for (const h of await store.mounts.list()) {
      if (known.has(h.id) && driverIDs.has(h.id)) continue;
      problems.push({
        kind: "dangling-hold",
        subject: h.id,
        detail: `${h.count} holds on a layer that does not exist`,
      });
      if (repair) await store.mounts.releaseAll(h.id).catch(() => {});
    }
    problems.push(...(await checkMounts(store, repair, known)));
    return problems;
  });
}

/**
 * Compares the holds with what the kernel sees (call under the store lock):
 * a held layer whose mount is gone (unmounted by hand) and a mounted layer
 * whose mount no longer works (`Driver.brokenMounts`: the thin pool's daemon
 * died under it) are reported; with `repair` they are mounted afresh for
 * their holds, and a broken mount nothing holds is unmounted.
 * @param known driver ids that belong to a layer or container (others are dangling holds, reported apart)
 */
async function checkMounts(store: LayerStore, repair: boolean, known: Set<string>): Promise<CheckProblem[]> {
  const problems: CheckProblem[] = [];
  const broken = new Map((await store.driver.brokenMounts()).map((b) => [b.id, b.reason]));
  const held = new Set<string>();
  for (const h of await store.mounts.list()) {
    if (h.count === 0 || !known.has(h.id)) continue;
    held.add(h.id);
    if (!(await store.mounts.isMounted(h.path))) {
      const detail = `${h.count} holds, but "${h.path}" is not mounted`;
      problems.push({ kind: "hold-without-mount", subject: h.id, detail });
    } else if (broken.has(h.id)) {
      problems.push({ kind: "broken-mount", subject: h.id, detail: `${h.count} holds: ${broken.get(h.id)}` });
    } else continue;
    if (repair) await store.mounts.remount(h.id);
  }
  for (const [id, reason] of broken) {
    if (held.has(id)) continue;
    problems.push({ kind: "broken-mount", subject: id, detail: `held by nothing: ${reason}` });
    if (repair) await store.driver.put(id);
  }
  return problems;
}

/** Removes layers that nothing references (no ref, child, container); returns their chainIDs. */
export async function prune(store: LayerStore): Promise<string[]> {
  return store.lock.with(async () => {
    const removed: string[] = [];
    for (;;) {
      let progress = false;
      for (const l of await store.db.listLayers()) {
        if ((await store.referencesOf(l.chainID)).length > 0) continue;
        removed.push(...(await store.deleteUnreferencedLocked(l.chainID)));
        progress = true;
      }
      if (!progress) return removed;
    }
  });
}
