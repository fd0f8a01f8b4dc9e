/**
 * `check`: what is inconsistent in a layer store, and with `repair` the fix,
 * in one pass (a repair never leaves work for a second run). `prune`:
 * deletion of what nothing references.
 *
 * Each family of problems is one {@link Checker} in {@link CHECKERS}; a new
 * family (a driver's own state, such as a thin pool's daemon) is one more
 * entry. Checkers run in order, under the store lock, each on the state the
 * previous ones left.
 *
 * @module
 */
import { hasCode } from "../errors.js";
import type { Digest } from "./ids.js";
import { sharedInitID } from "./init-layer.js";
import type { StoreParts } from "./recovery.js";

/** One problem `check` found (and, with `repair`, fixed unless `unrepaired` says why not). */
export interface CheckProblem {
  kind:
    | "missing-parent"
    | "missing-driver-layer"
    | "orphan-driver-layer"
    | "dangling-hold"
    | "hold-without-mount"
    | "broken-mount"
    | "container-missing-layer"
    | "leftover"
    | "foreign-entry";
  subject: string;
  detail: string;
  /** With `repair`: why this one could not be fixed (it is still there). */
  unrepaired?: string;
}

/** One family of checks: reports problems and, with `repair`, fixes them. */
export type Checker = (parts: StoreParts, repair: boolean) => Promise<CheckProblem[]>;

/** Removes a container whose driver data is (partly) gone, as `rm` would: holds, layers, record, parent. */
async function dropContainer({ db, driver, mounts, collector }: StoreParts, name: string): Promise<void> {
  const c = await db.readContainer(name);
  if (!c) return;
  // A shared init layer belongs to the image layer: it stays.
  for (const id of [c.mountID, c.initShared ? "" : c.initID].filter(Boolean)) {
    await mounts.releaseAll(id).catch(() => undefined);
    if (await driver.exists(id)) await collector.removeDriverLayer(id, { unmount: true });
  }
  await db.deleteContainer(name);
  if (c.parent) {
    await collector.deleteUnreferenced(c.parent).catch((err: unknown) => {
      if (!hasCode(err, "ERR_ACTIVE_MOUNT")) throw err;
    });
  }
}

const layersAndContainers: Checker = async (parts, repair) => {
  const { db, driver } = parts;
  const problems: CheckProblem[] = [];
  const driverIDs = new Set(await driver.list());
  const layers = await db.listLayers();
  const chainIDs = new Set(layers.map((l) => l.chainID));
  for (const l of layers) {
    if (l.parent && !chainIDs.has(l.parent)) {
      problems.push({ kind: "missing-parent", subject: l.chainID, detail: `parent ${l.parent} is not in the store` });
    }
    if (!driverIDs.has(l.cacheID)) {
      problems.push({
        kind: "missing-driver-layer",
        subject: l.chainID,
        detail: `driver layer ${l.cacheID} is missing`,
      });
      if (repair) await db.removeTree(await db.markRemoving(l.chainID));
    }
  }
  for (const c of await db.listContainers()) {
    const missing = [c.mountID, c.initID].filter((id) => id && !driverIDs.has(id));
    for (const id of missing) {
      problems.push({ kind: "container-missing-layer", subject: c.name, detail: `driver layer ${id} is missing` });
    }
    if (repair && missing.length > 0) await dropContainer(parts, c.name);
  }
  return problems;
};

/** Driver layers and holds that belong to nothing (after the repairs above). */
const orphans: Checker = async ({ db, driver, mounts, collector }, repair) => {
  const problems: CheckProblem[] = [];
  const known = new Set<string>();
  for (const l of await db.listLayers()) {
    known.add(l.cacheID);
    if (driver.capabilities.sharedInit) known.add(sharedInitID(l.cacheID));
  }
  for (const c of await db.listContainers()) for (const id of [c.mountID, c.initID]) if (id) known.add(id);
  for (const { intent } of await db.listIntents()) for (const id of intent.driverIDs) known.add(id);
  const driverIDs = new Set(await driver.list());
  for (const id of driverIDs) {
    if (known.has(id)) continue;
    problems.push({
      kind: "orphan-driver-layer",
      subject: id,
      detail: "driver layer referenced by no layer or container",
    });
    if (repair) await collector.removeDriverLayer(id, { unmount: true });
  }
  for (const h of await mounts.list()) {
    if (known.has(h.id) && driverIDs.has(h.id)) continue;
    problems.push({ kind: "dangling-hold", subject: h.id, detail: `${h.count} holds on a layer that does not exist` });
    if (repair) await mounts.releaseAll(h.id).catch(() => undefined);
  }
  return problems;
};

/** Holds whose mount the kernel no longer has (an external umount): remounted, or released when that fails. */
const kernelMounts: Checker = async ({ mounts }, repair) => {
  const problems: CheckProblem[] = [];
  for (const h of await mounts.unmounted()) {
    let detail = `${h.count} holds, but "${h.mountPoint}" is not mounted`;
    if (repair) {
      try {
        await mounts.remount(h.id);
        detail += " (mounted again)";
      } catch (err) {
        await mounts.releaseAll(h.id).catch(() => undefined);
        detail += ` (cannot mount again: ${(err as Error).message}; holds released)`;
      }
    }
    problems.push({ kind: "hold-without-mount", subject: h.id, detail });
  }
  return problems;
};

/**
 * Mounts the kernel still lists but that no longer work (`Driver.brokenMounts`:
 * the thin pool's daemon died under the loop device): mounted afresh for their
 * holds, or unmounted when nothing holds them.
 */
const brokenMounts: Checker = async ({ driver, mounts }, repair) => {
  const problems: CheckProblem[] = [];
  const holds = new Map((await mounts.list()).map((h) => [h.id, h.count]));
  for (const { id, reason } of await driver.brokenMounts()) {
    const count = holds.get(id) ?? 0;
    const problem: CheckProblem = {
      kind: "broken-mount",
      subject: id,
      detail: count > 0 ? `${count} holds: ${reason}` : `held by nothing: ${reason}`,
    };
    await found(problems, problem, repair, async () => {
      if (count > 0) await mounts.remount(id);
      else await driver.put(id);
    });
  }
  return problems;
};

/** Records `problem`, and with `repair` runs `fix`, noting why it failed instead of failing the check. */
async function found(out: CheckProblem[], problem: CheckProblem, repair: boolean, fix: () => Promise<void>) {
  if (repair) {
    try {
      await fix();
    } catch (err) {
      problem.unrepaired = `cannot remove: ${(err as Error).message}`;
    }
  }
  out.push(problem);
}

/** What dead processes left half done that recovery could not remove, and entries strata never writes. */
const leftovers: Checker = async ({ db, driver, collector }, repair) => {
  const problems: CheckProblem[] = [];
  for (const rel of await db.staleLeftovers()) {
    const p: CheckProblem = { kind: "leftover", subject: rel, detail: "left by a process that died" };
    await found(problems, p, repair, () => db.removeTree(rel));
  }
  for (const { path, cacheID } of await db.removingOrphans()) {
    const p: CheckProblem = { kind: "leftover", subject: path, detail: "a layer deletion that did not finish" };
    await found(problems, p, repair, async () => {
      if (cacheID) await collector.removeDriverLayer(cacheID, { unmount: true });
      await db.removeTree(path);
    });
  }
  for (const name of await driver.leftovers()) {
    const p: CheckProblem = { kind: "leftover", subject: `${driver.name}/${name}`, detail: "in the driver's home" };
    await found(problems, p, repair, () => driver.removeLeftover(name));
  }
  for (const f of await db.foreignEntries()) {
    const detail = `${f.what} where strata keeps its own data`;
    await found(problems, { kind: "foreign-entry", subject: f.rel, detail }, repair, () => db.removeTree(f.rel));
  }
  return problems;
};

/** The checks `check` runs, in order. */
export const CHECKERS: readonly Checker[] = [layersAndContainers, orphans, kernelMounts, brokenMounts, leftovers];

/**
 * Verifies the store (under the store lock): every layer's parent and driver
 * layer exist, every container's layers exist, every driver layer and hold
 * belongs to something, every hold's mount is in the kernel's mount table,
 * nothing half done or foreign is left. With `repair`, each problem is
 * fixed as it is found; a second check then finds nothing.
 */
export async function check(parts: StoreParts, repair: boolean): Promise<CheckProblem[]> {
  const problems: CheckProblem[] = [];
  for (const c of CHECKERS) problems.push(...(await c(parts, repair)));
  return problems;
}

/** Removes layers that nothing references (no ref, child, container); returns their chainIDs. */
export async function prune({ db, collector }: StoreParts): Promise<Digest[]> {
  const removed: Digest[] = [];
  for (;;) {
    let progress = false;
    for (const l of await db.listLayers()) {
      if ((await collector.referencesOf(l.chainID)).length > 0) continue;
      removed.push(...(await collector.deleteUnreferenced(l.chainID)));
      progress = true;
    }
    if (!progress) return removed;
  }
}
