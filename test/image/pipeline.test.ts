/**
 * The layer pipeline with blobs the test controls: order of registration
 * when upper layers arrive first (spooling), skipping stored layers, and a
 * bad layer anywhere leaving nothing behind.
 */
import test from "ava";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import {
  chainIDs,
  type ImportOptions,
  importLayers,
  type LayerSource,
  type ProgressEvent,
  withImport,
} from "../../src/image/index.js";
import { assertEmpty, layerTree, type Stores, stores } from "./common.js";
import { fixtureLayers } from "./fixture.js";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Sources serving gzip blobs in 16 KiB chunks, `delayMs` between chunks. */
function sources(tars: Buffer[], delays: number[], opened: number[] = [], diffIDs = tars.map(sha)): LayerSource[] {
  return tars.map((tar, i) => ({
    diffID: diffIDs[i],
    label: `layer${i}`,
    open: async () => {
      opened.push(i);
      const gz = gzipSync(tar);
      return Readable.from(
        (async function* () {
          for (let o = 0; o < gz.length; o += 16384) {
            if (delays[i]) await sleep(delays[i]);
            yield gz.subarray(o, o + 16384);
          }
        })(),
      );
    },
  }));
}

/** Imports `layers` in one transaction, left open (its layers stay held); released if it fails. */
function importAll(s: Stores, layers: LayerSource[], opts: ImportOptions = {}) {
  return withImport(s.sink, {}, async (tx) => ({ layers: await importLayers(tx, layers, opts), held: [...tx.held] }));
}

test("upper layers that arrive first are spooled and registered in order", async (t) => {
  const tars = await fixtureLayers(5);
  const s = await stores(t);
  const events: ProgressEvent[] = [];
  const res = await importAll(s, sources(tars, [15, 0, 0]), {
    concurrency: 3,
    progress: (e) => events.push(e),
  });
  t.deepEqual(
    res.layers.map((l) => l.chainID),
    chainIDs(tars.map(sha)),
  );
  t.deepEqual(res.held, chainIDs(tars.map(sha)));
  t.deepEqual(
    res.layers.map((l) => l.tarSize),
    tars.map((b) => b.length),
  );
  const spooled = new Set(events.filter((e) => e.status === "spooling").map((e) => e.layer));
  t.deepEqual([...spooled].sort(), [1, 2]);
  const applied = events.filter((e) => e.status === "applying").map((e) => e.layer);
  t.deepEqual(applied, [0, 1, 2]);
  const top = await layerTree(s, res.layers[2].chainID);
  t.true(top.some((l) => l.startsWith("opq/fresh.txt ")));
  t.false(top.some((l) => l.startsWith("opq/old.txt ")));
  t.false(top.some((l) => l.startsWith("data/gone.txt ")));
});

test("layers already stored are not opened", async (t) => {
  const tars = await fixtureLayers(6);
  const s = await stores(t);
  await importAll(s, sources(tars.slice(0, 2), [0, 0]));
  const opened: number[] = [];
  const events: ProgressEvent[] = [];
  const res = await importAll(s, sources(tars, [0, 0, 0], opened), { progress: (e) => events.push(e) });
  t.deepEqual(opened, [2]);
  t.deepEqual(res.held, chainIDs(tars.map(sha)), "the stored layers are held as the new one is");
  t.deepEqual(
    res.layers.map((l) => l.size !== undefined),
    [true, true, true],
    "stored layers have their size in the record too",
  );
  t.deepEqual(
    events.filter((e) => e.status === "exists").map((e) => e.layer),
    [0, 1],
  );
});

test("a layer that is not its diffID fails the import and releases what it registered", async (t) => {
  const tars = await fixtureLayers(7);
  const s = await stores(t);
  const diffIDs = tars.map(sha);
  diffIDs[2] = sha(Buffer.from("something else"));
  const err = await t.throwsAsync(importAll(s, sources(tars, [0, 5, 0], [], diffIDs), { concurrency: 2 }));
  t.is((err as { code?: string }).code, "ERR_DIGEST_MISMATCH");
  await assertEmpty(t, s);
});
