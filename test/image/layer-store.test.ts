/**
 * The image pipeline over the real LayerStore (vfs driver): load, pull with
 * a corrupt blob, save, rmi; `check` stays clean and failures leave no layer.
 */
import test from "ava";
import type { ExecutionContext } from "ava";
import { createHash } from "node:crypto";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import { createVfs } from "../../src/drivers/vfs/index.js";
import {
  checkImageRefs,
  IMAGE_REF,
  ImageStore,
  importLayers,
  type LayerSource,
  layerStoreSink,
  loadImages,
  pullImage,
  releaseImageLayers,
  saveDockerArchive,
  withImport,
} from "../../src/image/index.js";
import { check, type Digest, LayerStore } from "../../src/layer/index.js";
import { tempDir } from "../helpers/tmp.js";
import { makeTar } from "../helpers/tar.js";
import { fixtureLayers, writeFixtureLayout } from "./fixture.js";
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
  for (const l of rec.layers)
    t.deepEqual(await a.layers.db.refs(l.chainID as Digest), [IMAGE_REF], "only the image ref");
  t.deepEqual((await checkImageRefs(a.layers, a.store, false)).problems, []);
  const out = join(await tempDir(t), "saved.tar");
  await saveDockerArchive(a.store, a.sink, ["ls/img:1"], out);
  const b = await open(t);
  const [again] = await loadImages(out, b.sink, b.store);
  t.is(again.id, rec.id);
  const res = await a.store.remove("ls/img:1");
  await releaseImageLayers(a.layers, res.unusedChainIDs);
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
  const { image: rec } = await pullImage(`${reg.addr}/ls/img:v1`, a.sink, a.store);
  t.is(rec.id, fx.configDigest);
  t.is((await a.layers.layers()).length, 3);
});

test("a reused layer is held like a registered one: by the import, then by image, and rmi keeps it for others", async (t) => {
  const dir = await tempDir(t);
  const a = await open(t);
  const tars = await fixtureLayers(23);
  const fxA = await writeFixtureLayout(join(dir, "a"), "v1", 23, tars);
  const other = await makeTar([{ name: "b/" }, { name: "b/only", content: "image b" }]);
  const fxB = await writeFixtureLayout(join(dir, "b"), "v1", 23, [tars[0], tars[1], other]);
  // The bottom layer is already there, held by a user ref only (`strata layer apply`).
  const bottom = await a.layers.register(Readable.from([tars[0]]), "", { ref: "user" });
  const [recA] = await loadImages(fxA.dir, a.sink, a.store, { tag: "reuse/a:1" });
  const [recB] = await loadImages(fxB.dir, a.sink, a.store, { tag: "reuse/b:1" });
  const refs = (c: string) => a.layers.db.refs(c as Digest).then((r) => r.sort());
  t.deepEqual(await refs(bottom.chainID), [IMAGE_REF, "user"], "the reused user layer got the image ref too");
  for (const l of [...recA.layers, ...recB.layers].filter((l) => l.chainID !== bottom.chainID))
    t.deepEqual(await refs(l.chainID), [IMAGE_REF]);
  t.deepEqual((await checkImageRefs(a.layers, a.store, false)).problems, []);

  const res = await a.store.remove("reuse/a:1");
  t.deepEqual(res.unusedChainIDs, [recA.layers[2].chainID], "the shared layers stay in use by b");
  await releaseImageLayers(a.layers, res.unusedChainIDs);
  t.deepEqual((await a.layers.layers()).map((l) => l.chainID).sort(), recB.layers.map((l) => l.chainID).sort());
  const resB = await a.store.remove("reuse/b:1");
  await releaseImageLayers(a.layers, resB.unusedChainIDs);
  t.deepEqual(
    (await a.layers.layers()).map((l) => l.chainID),
    [bottom.chainID],
    "the user layer outlives the images",
  );
  t.deepEqual(await refs(bottom.chainID), ["user"]);
  t.deepEqual(await check(a.layers, false), []);
  t.deepEqual((await checkImageRefs(a.layers, a.store, false)).problems, []);
});

test("a failed import drops only its own holds: reused layers keep their image ref", async (t) => {
  const dir = await tempDir(t);
  const a = await open(t);
  const tars = await fixtureLayers(24);
  const fxA = await writeFixtureLayout(join(dir, "a"), "v1", 24, tars);
  const [recA] = await loadImages(fxA.dir, a.sink, a.store, { tag: "fail/a:1" });
  const bad = await makeTar([{ name: "bad/" }, { name: "bad/f", content: "x" }]);
  const fxB = await writeFixtureLayout(join(dir, "b"), "v1", 24, [tars[0], tars[1], bad]);
  // Corrupt the top blob of b: the import fails after holding the two shared layers.
  const blobs = join(fxB.dir, "blobs", "sha256");
  const manifestFiles = await readdir(blobs);
  const gz = gzipSync(bad);
  const victim = manifestFiles.find((n) => n === createHash("sha256").update(gz).digest("hex"));
  t.truthy(victim);
  await writeFile(join(blobs, victim!), Buffer.concat([gz.subarray(0, gz.length - 8), Buffer.alloc(8)]));
  await t.throwsAsync(loadImages(fxB.dir, a.sink, a.store, { tag: "fail/b:1" }));
  t.deepEqual((await a.layers.layers()).map((l) => l.chainID).sort(), recA.layers.map((l) => l.chainID).sort());
  for (const l of recA.layers) t.deepEqual(await a.layers.db.refs(l.chainID as Digest), [IMAGE_REF]);
  t.deepEqual((await checkImageRefs(a.layers, a.store, false)).problems, []);
});

test("a pull's spool lives in the store's tmp/ while upper layers wait, and is gone afterwards", async (t) => {
  const tars = await fixtureLayers(7);
  const a = await open(t);
  const tmp = join(a.layers.db.dir, "tmp");
  const seen: string[][] = [];
  // Layer 0 trickles in, so layers 1 and 2 arrive first and are spooled.
  const sources: LayerSource[] = tars.map((tar, i) => ({
    diffID: `sha256:${createHash("sha256").update(tar).digest("hex")}`,
    label: `layer${i}`,
    open: async () =>
      Readable.from(
        (async function* () {
          const gz = gzipSync(tar);
          for (let o = 0; o < gz.length; o += 16384) {
            if (i === 0) await sleep(15);
            yield gz.subarray(o, o + 16384);
          }
        })(),
      ),
  }));
  await withImport(a.sink, {}, async (tx) => {
    await importLayers(tx, sources, {
      concurrency: 3,
      progress: (e) => {
        if (e.status === "spooling") void readdir(tmp).then((names) => seen.push(names));
      },
    });
    await tx.release();
  });
  t.true(seen.length > 0, "some layer was spooled");
  t.true(
    seen.some((names) => names.some((n) => n.startsWith("spool.tmp-"))),
    `spool dir under the store: ${JSON.stringify(seen)}`,
  );
  t.deepEqual(await readdir(tmp), [], "spool removed");
});
