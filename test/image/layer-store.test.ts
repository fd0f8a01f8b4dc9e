/**
 * The image pipeline over the real LayerStore (vfs driver): load, pull with
 * a corrupt blob, save, rmi; `check` stays clean and failures leave no layer.
 */
import test from "ava";
import type { ExecutionContext } from "ava";
import { join } from "node:path";
import { createVfs } from "../../src/drivers/vfs/index.js";
import { saveDockerArchive } from "../../src/image/docker-archive.js";
import { ImageStore } from "../../src/image/image-store.js";
import { layerStoreSink } from "../../src/image/layer-store-sink.js";
import { loadImages } from "../../src/image/load.js";
import { pullImage } from "../../src/image/registry/pull.js";
import { check, LayerStore } from "../../src/layer/index.js";
import { tempDir } from "../helpers/tmp.js";
import { writeFixtureLayout } from "./fixture.js";
import { type Action, startProxy } from "./proxy.js";
import { skopeo, startRegistry } from "./peers.js";

async function open(t: ExecutionContext) {
  const root = await tempDir(t, "strata-imgls-");
  const driver = await createVfs({ root, options: {} });
  const layers = await LayerStore.open(root, driver);
  t.teardown(async () => {
    await layers.close();
    await driver.cleanup();
  });
  const store = await ImageStore.open(join(root, "image"));
  t.teardown(() => store.close());
  return { layers, sink: layerStoreSink(layers), store };
}

test("load, save and rmi over the LayerStore keep check clean and remove the layers at the end", async (t) => {
  const fx = await writeFixtureLayout(await tempDir(t), "v1", 21);
  const a = await open(t);
  const [rec] = await loadImages(fx.dir, a.sink, a.store, { tag: "ls/img:1" });
  t.deepEqual((await a.layers.layers()).map((l) => l.chainID).sort(), rec.layers.map((l) => l.chainID).sort());
  t.deepEqual(await check(a.layers, false), []);
  const out = join(await tempDir(t), "saved.tar");
  await saveDockerArchive(a.store, a.sink, ["ls/img:1"], out);
  const b = await open(t);
  const [again] = await loadImages(out, b.sink, b.store);
  t.is(again.id, rec.id);
  const res = await a.store.remove("ls/img:1");
  for (const c of [...res.unusedChainIDs].reverse()) await a.sink.release?.(c);
  t.deepEqual(await a.layers.layers(), []);
  t.deepEqual(await check(a.layers, false), []);
});

test("a pull with a corrupt blob leaves the LayerStore empty and clean", async (t) => {
  const reg = await startRegistry(t);
  const fx = await writeFixtureLayout(await tempDir(t), "v1", 22);
  await skopeo("copy", `oci:${fx.dir}:v1`, `docker://${reg.addr}/ls/img:v1`, "--dest-tls-verify=false");
  const m = JSON.parse(await skopeo("inspect", "--tls-verify=false", "--raw", `docker://${reg.addr}/ls/img:v1`));
  const victim = m.layers[2].digest as string;
  const proxy = await startProxy(t, reg.addr, (req): Action =>
    (req.url ?? "").endsWith(victim) ? { kind: "corrupt", at: 50 } : { kind: "forward" },
  );
  const a = await open(t);
  const err = await t.throwsAsync(
    pullImage(`${proxy.addr}/ls/img:v1`, a.sink, a.store, { attempts: 2, backoffMs: 10 }),
  );
  t.is((err as { code?: string }).code, "ERR_DIGEST_MISMATCH");
  t.deepEqual(await a.layers.layers(), []);
  t.deepEqual(await check(a.layers, false), []);
  t.deepEqual(await a.store.ids(), []);
  const rec = await pullImage(`${reg.addr}/ls/img:v1`, a.sink, a.store);
  t.is(rec.id, fx.configDigest);
  t.is((await a.layers.layers()).length, 3);
});
