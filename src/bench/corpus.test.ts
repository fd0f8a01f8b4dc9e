import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { cachedTar, imageLayerEntries, smallFileEntries } from "./corpus.js";
import { Prng } from "./prng.js";

test("Prng gives the same sequence for the same seed and another for another seed", (t) => {
  const a = new Prng(7).bytes(64);
  t.deepEqual(new Prng(7).bytes(64), a);
  t.notDeepEqual(new Prng(8).bytes(64), a);
});

test("cachedTar() generates the same bytes in two places and reuses the cache", async (t) => {
  const a = await mkdtemp(join(tmpdir(), "strata-corpus-"));
  const b = await mkdtemp(join(tmpdir(), "strata-corpus-"));
  t.teardown(() => Promise.all([rm(a, { recursive: true, force: true }), rm(b, { recursive: true, force: true })]));
  const x = await cachedTar(a, "small", { n: 200, seed: 1 }, () => smallFileEntries(200, 1));
  const y = await cachedTar(b, "small", { n: 200, seed: 1 }, () => smallFileEntries(200, 1));
  t.is(x.sha256, y.sha256);
  t.is(x.files, 200);
  let calls = 0;
  const again = await cachedTar(a, "small", { n: 200, seed: 1 }, () => {
    calls++;
    return smallFileEntries(200, 1);
  });
  t.is(calls, 0);
  t.is(again.sha256, x.sha256);
  const l1 = await cachedTar(a, "img-l1", { files: 5, seed: 1 }, () => imageLayerEntries(1, 5, 1));
  t.is(l1.files, 7, "5 files, gone.dat and the whiteout of the layer below's gone.dat");
});
