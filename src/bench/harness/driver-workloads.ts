/**
 * The workloads run against strata's layer store on one driver. Each
 * function runs one unit (a family, or one apply set) once, on a store that
 * lives on the unit's own fresh filesystem, and records its samples.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { tarStream } from "../../archive/tar-writer.js";
import type { Digest, LayerStore } from "../../layer/index.js";
import { header } from "../corpus.js";
import { wallSeconds } from "../timer.js";
import { changedPaths, writeChanges } from "./changes.js";
import type { BenchContext, TimedFamily, Unit } from "./context.js";
import { diskUsage } from "./measure.js";

/** What one unit runs with. */
export interface DriverEnv {
  store: LayerStore;
  ctx: BenchContext;
  /** Run number, from 1. */
  run: number;
  unit: Unit;
  /** The ten-layer image's top chainID, registered untimed before the unit when {@link needsImage}. */
  image: Digest | "";
  /** Bytes of the driver home right after the store opened (the disk workload's zero). */
  emptyHome: number;
}

type Workload = (env: DriverEnv) => Promise<void>;

/** True for the families that start containers from the ten-layer image. */
export function needsImage(family: TimedFamily): boolean {
  return family === "container" || family === "start" || family === "commit" || family === "disk";
}

/** Registers tars as a chain (bottom first); each layer keeps the handle `register` took. */
export async function registerChain(store: LayerStore, tars: Array<{ path: string }>): Promise<Digest[]> {
  const ids: Digest[] = [];
  for (const t of tars) ids.push((await store.register(createReadStream(t.path), ids.at(-1) ?? "")).chainID);
  return ids;
}

/** Drops the handles of a chain, top first, which deletes its layers. */
export async function releaseChain(store: LayerStore, ids: Digest[]): Promise<void> {
  for (const id of [...ids].reverse()) await store.release(id);
}

/** Registers the ten-layer image (bottom first); release it with {@link releaseChain}. */
export function registerImage(store: LayerStore, ctx: BenchContext): Promise<Digest[]> {
  return registerChain(store, ctx.corpus.image);
}

const apply: Workload = async ({ store, ctx, unit }) => {
  const { workload, tars } = unit.apply!;
  const [secs, ids] = await wallSeconds(() => registerChain(store, tars));
  ctx.rec.add(store.driver.name, "driver", "apply", workload, "s", secs);
  await releaseChain(store, ids);
};

const container: Workload = async ({ store, ctx, run, image: top }) => {
  {
    const t = { create: 0, mount: 0, unmount: 0 };
    const n = ctx.opts.latencyOps;
    for (let i = 0; i < n; i++) {
      const name = `lat-${run}-${i}`;
      t.create += (await wallSeconds(() => store.createRWLayer(name, top)))[0];
      t.mount += (await wallSeconds(() => store.mount(name)))[0];
      t.unmount += (await wallSeconds(() => store.unmount(name)))[0];
      await store.releaseRWLayer(name);
    }
    for (const [op, secs] of Object.entries(t))
      ctx.rec.add(store.driver.name, "driver", "container", `container/${op}`, "s", secs / n);
  }
};

const start: Workload = async ({ store, ctx, run, image: top }) => {
  {
    for (const c of ctx.opts.concurrency) {
      const names = Array.from({ length: c }, (_, i) => `start-${run}-${c}-${i}`);
      const [secs] = await wallSeconds(() =>
        Promise.all(
          names.map(async (name) => {
            await store.createRWLayer(name, top);
            await store.mount(name);
          }),
        ),
      );
      ctx.rec.add(store.driver.name, "driver", "start", `start/${c}`, "s", secs);
      for (const name of names) {
        await store.unmount(name);
        await store.releaseRWLayer(name);
      }
    }
  }
};

const commit: Workload = async ({ store, ctx, run, image: top }) => {
  {
    for (const n of ctx.opts.changedFiles) {
      const name = `commit-${run}-${n}`;
      await store.createRWLayer(name, top);
      const path = await store.mount(name);
      await writeChanges(path, changedPaths(n, ctx.corpus.image.length, ctx.opts.imageLayerFiles));
      await store.unmount(name);
      const [dsecs, changes] = await wallSeconds(() => store.changes(name));
      // Every changed file shows (plus the directories above the new ones): a smaller list is a bug.
      if (changes.length < n) throw new Error(`bench: ${store.driver.name} changes listed ${changes.length} < ${n}`);
      ctx.rec.add(store.driver.name, "driver", "commit", `diff/${n}`, "s", dsecs);
      const [csecs, layer] = await wallSeconds(() => store.commit(name));
      ctx.rec.add(store.driver.name, "driver", "commit", `commit/${n}`, "s", csecs);
      await store.release(layer.chainID);
      await store.releaseRWLayer(name);
    }
  }
};

/** A layer tar holding one file. */
function oneFileLayer(name: string, text: string) {
  const body = Buffer.from(text);
  return tarStream(
    (async function* () {
      yield { header: header(name, "file", body.length), body };
    })(),
  );
}

/** Layer `i` of a chain: `bottom.txt` in the first layer, `layerN.txt` above it. */
function chainLayer(i: number) {
  return oneFileLayer(i === 0 ? "bottom.txt" : `layer${i}.txt`, `layer ${i}\n`);
}

const chain: Workload = async ({ store, ctx, run }) => {
  for (const depth of ctx.opts.chainDepths) {
    const ids: Digest[] = [];
    const name = `chain-${run}-${depth}`;
    const [csecs] = await wallSeconds(async () => {
      for (let i = 0; i < depth; i++) ids.push((await store.register(chainLayer(i), ids.at(-1) ?? "")).chainID);
      await store.createRWLayer(name, ids.at(-1)!);
    });
    ctx.rec.add(store.driver.name, "driver", "chain", `chain-create/${depth}`, "s", csecs);
    const [rsecs, text] = await wallSeconds(async () => readFile(join(await store.mount(name), "bottom.txt"), "utf8"));
    if (text !== "layer 0\n")
      throw new Error(`bench: ${store.driver.name} read ${JSON.stringify(text)} from the bottom`);
    ctx.rec.add(store.driver.name, "driver", "chain", `chain-read/${depth}`, "s", rsecs);
    await store.unmount(name);
    await store.releaseRWLayer(name);
    await releaseChain(store, ids);
  }
};

async function createContainers(store: LayerStore, top: Digest | "", prefix: string, k: number): Promise<string[]> {
  const names = Array.from({ length: k }, (_, i) => `${prefix}-${i}`);
  for (const n of names) {
    await store.createRWLayer(n, top);
    await store.mount(n);
    await store.unmount(n);
  }
  return names;
}

const remove: Workload = async ({ store, ctx, run }) => {
  // Its own image: the ten layers on a one-file base layer, so that every chainID differs from
  // the shared image's and removing it really deletes eleven layers.
  const base = await store.register(oneFileLayer(`remove-base-${run}.txt`, "base\n"), "");
  const ids = [base.chainID];
  for (const t of ctx.corpus.image) ids.push((await store.register(createReadStream(t.path), ids.at(-1)!)).chainID);
  const top = ids.at(-1)!;
  await store.addRef(top, "image:bench");
  await releaseChain(store, ids); // the named ref keeps the image
  const names = await createContainers(store, top, `rm-${run}`, ctx.opts.containers);
  const [csecs] = await wallSeconds(async () => {
    for (const n of names) await store.releaseRWLayer(n);
  });
  ctx.rec.add(store.driver.name, "driver", "remove", `remove/${ctx.opts.containers}-containers`, "s", csecs);
  const [isecs, deleted] = await wallSeconds(() => store.removeRef(top, "image:bench"));
  if (deleted.length !== ids.length) throw new Error(`bench: removing the image deleted ${deleted.length} layers`);
  ctx.rec.add(store.driver.name, "driver", "remove", "remove/image", "s", isecs);
};

const disk: Workload = async ({ store, ctx, run, image: top, emptyHome: base }) => {
  // Only the ten-layer image lives in the store.
  ctx.rec.add(store.driver.name, "driver", "disk", "disk/image", "bytes", (await diskUsage(store.driver.home)) - base);
  const names = await createContainers(store, top, `disk-${run}`, ctx.opts.containers);
  const used = (await diskUsage(store.driver.home)) - base;
  ctx.rec.add(store.driver.name, "driver", "disk", `disk/image+${ctx.opts.containers}-containers`, "bytes", used);
  for (const n of names) await store.releaseRWLayer(n);
};

/** The workload of each family (memory is recorded around the others). */
export const DRIVER_WORKLOADS: Readonly<Record<TimedFamily, Workload>> = Object.freeze({
  apply,
  container,
  start,
  commit,
  chain,
  remove,
  disk,
});
