/** LayerStore behaviour, run against every driver supported on this machine. */
import { spawn } from "node:child_process";
import { lstat, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import test from "ava";
import { readTar } from "../helpers/tar-reader.js";
import { builtinDrivers } from "../../src/drivers/index.js";
import { chainID, check, type Digest, initPaths, LayerStore, MAX_LAYER_DEPTH } from "../../src/layer/index.js";
import { mountPoints } from "../../src/util/mountinfo.js";
import { CLI } from "../helpers/cli.js";
import { driverTestArgs, driverTestOptions, supportedDrivers, teardownDriver } from "../helpers/drivers.js";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

const drivers = await supportedDrivers();

async function openStore(t: import("ava").ExecutionContext, name: string, root?: string) {
  const r = root ?? (await tempDir(t, "strata-store-"));
  const driver = await builtinDrivers()
    .get(name)
    .factory({ root: r, options: driverTestOptions(name) });
  const store = await LayerStore.open(r, driver);
  t.teardown(async () => {
    await store.close();
    await teardownDriver(driver);
  });
  return { root: r, driver, store };
}

/** Whether a layer path is mounted: the path itself, or (devmapper's rootfs/) its parent. */
async function isMounted(path: string): Promise<boolean> {
  const table = await mountPoints();
  return table.has(path) || table.has(dirname(path));
}

const tarOf = async (specs: Spec[]) => Readable.from(chunks(await makeTar(specs)));
const base: Spec[] = [
  { name: "etc/" },
  { name: "etc/hosts", content: "from image\n" },
  { name: "bin/" },
  { name: "bin/sh", content: "sh", mode: 0o755 },
];

for (const name of drivers) {
  test(`${name}: the same tar registered twice is one layer with Docker's chainIDs`, async (t) => {
    const { store, driver } = await openStore(t, name);
    const a = await store.register(await tarOf(base), "");
    const b = await store.register(await tarOf(base), "");
    t.is(a.chainID, b.chainID);
    t.is(a.cacheID, b.cacheID, "the existing layer is kept, the new copy discarded");
    t.is((await store.layers()).length, 1);
    t.is((await driver.list()).length, driver.capabilities.sharedInit ? 2 : 1, "one layer (and its shared init)");
    t.is(a.chainID, a.diffID, "bottom layer: chainID = diffID");
    const top = await store.register(await tarOf([{ name: "x", content: "1" }]), a.chainID);
    t.is(top.chainID, chainID(a.chainID, top.diffID));
    t.is(top.depth, 2);
  });

  test(`${name}: release at zero deletes and walks up; children and containers hold parents`, async (t) => {
    const { store, driver } = await openStore(t, name);
    const a = await store.register(await tarOf(base), "");
    const b = await store.register(await tarOf([{ name: "y", content: "2" }]), a.chainID);
    await store.createRWLayer("c1", b.chainID);
    t.deepEqual(await store.release(a.chainID), [], "a is held by its child b");
    t.deepEqual(await store.release(b.chainID), [], "b is held by container c1");
    await t.throwsAsync(store.release(b.chainID), { code: "ERR_LAYER_NOT_RETAINED" });
    const deleted = await store.releaseRWLayer("c1");
    t.deepEqual(deleted, [b.chainID, a.chainID]);
    t.deepEqual(await store.layers(), []);
    t.deepEqual(await driver.list(), []);
  });

  test(`${name}: mount counts: two holders, one releases, still mounted; ERR_ACTIVE_MOUNT while held`, async (t) => {
    const { store } = await openStore(t, name);
    const a = await store.register(await tarOf(base), "", { ref: "user" });
    const c = await store.createRWLayer("c", a.chainID);
    const p1 = await store.mount("c");
    const p2 = await store.mounts.acquire(c.mountID); // a second, process-held holder
    t.is(p1, p2);
    t.is(await store.mounts.count(c.mountID), 2);
    await store.unmount("c");
    t.is(await store.mounts.count(c.mountID), 1);
    t.is(await readFile(join(p1, "bin/sh"), "utf8"), "sh", "still mounted after one release");
    await t.throwsAsync(store.releaseRWLayer("c"), { code: "ERR_ACTIVE_MOUNT" });
    await store.mounts.release(c.mountID);
    t.is(await store.mounts.count(c.mountID), 0);
    if (!store.driver.capabilities.mountless) t.false(await isMounted(p1), "unmounted at zero");
    await store.releaseRWLayer("c");
  });

  test(`${name}: diff and commit of a mounted container leave it mounted; init files never show`, async (t) => {
    const { store } = await openStore(t, name);
    const a = await store.register(await tarOf(base), "", { ref: "user" });
    await store.createRWLayer("c", a.chainID);
    const p = await store.mount("c");
    for (const ip of initPaths()) t.truthy(await lstat(join(p, ip)), `init path ${ip} present in the container`);
    t.is(await readFile(join(p, "etc/hosts"), "utf8"), "", "init replaces /etc/hosts");
    await writeFile(join(p, "etc/new"), "n");
    await mkdir(join(p, "data"));
    const changes = (await store.changes("c")).map((c) => `${c.kind} ${c.path}`);
    t.deepEqual(changes, ["A /data", "C /etc", "A /etc/new"]);
    const names: string[] = [];
    for await (const e of readTar(await store.diffTar("c"))) {
      names.push(e.header.name);
      await e.skip();
    }
    t.deepEqual(names, ["data/", "etc/", "etc/new"]);
    const committed = await store.commit("c", { ref: "image:c" });
    t.is(await store.mounts.count((await store.container("c")).mountID), 1, "still held once");
    t.is(await readFile(join(p, "etc/new"), "utf8"), "n", "still mounted and readable");
    if (!store.driver.capabilities.mountless) t.true(await isMounted(p));
    t.is(committed.parent, a.chainID);
    await store.unmount("c");
    await store.releaseRWLayer("c");
  });

  test(`${name}: a holder killed with SIGKILL is repaired from the holds and the mount table`, async (t) => {
    const { root, store } = await openStore(t, name);
    const a = await store.register(await tarOf(base), "", { ref: "user" });
    const c = await store.createRWLayer("c", a.chainID);
    // A separate process takes a process hold and is killed before releasing it.
    const child = spawn(process.execPath, [
      "--input-type=module",
      "-e",
      `import { LayerStore } from ${JSON.stringify(join(CLI, "../../layer/index.js"))};
       import { builtinDrivers } from ${JSON.stringify(join(CLI, "../../drivers/index.js"))};
       const d = await builtinDrivers().get(${JSON.stringify(name)}).factory({ root: ${JSON.stringify(root)}, options: ${JSON.stringify(driverTestOptions(name))} });
       const s = await LayerStore.open(${JSON.stringify(root)}, d);
       console.log(await s.mounts.acquire(${JSON.stringify(c.mountID)}));
       setInterval(() => {}, 1000);`,
    ]);
    const path = await new Promise<string>((resolve, reject) => {
      child.stdout.once("data", (d) => resolve(String(d).trim()));
      child.once("exit", (code) => reject(new Error(`holder exited ${code}`)));
    });
    t.truthy(path);
    t.is(await store.mounts.count(c.mountID), 1);
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    t.is(await store.mounts.count(c.mountID), 0, "a dead holder does not count");
    const { store: again } = await openStore(t, name, root); // opening recovers
    if (!store.driver.capabilities.mountless) t.false(await isMounted(path), "the orphan mount is gone");
    t.deepEqual(await check(again, false), []);
    await again.releaseRWLayer("c");
  });

  test(`${name}: ${MAX_LAYER_DEPTH} layers deep works, one more is a clear error`, async (t) => {
    const { store } = await openStore(t, name);
    let parent: Digest | "" = "";
    for (let i = 0; i < MAX_LAYER_DEPTH; i++) {
      parent = (await store.register(await tarOf([{ name: `f${i}`, content: String(i) }]), parent, { ref: "user" }))
        .chainID;
    }
    t.is((await store.layer(parent as Digest)).depth, MAX_LAYER_DEPTH);
    const err = await t.throwsAsync(store.register(await tarOf([{ name: "one-more" }]), parent));
    t.is((err as { code?: string }).code, "ERR_MAX_DEPTH");
    t.is((await store.layers()).length, MAX_LAYER_DEPTH, "nothing half stored");
    t.deepEqual(await check(store, false), []);
  });

  test(`${name}: tarStream re-assembles the exact original tar and catches a tampered layer`, async (t) => {
    const { store } = await openStore(t, name);
    // Extra zero blocks after the end marker are part of the diffID, so they must come back too.
    const original = Buffer.concat([
      await makeTar([...base, { name: "big", content: Buffer.alloc(70_001, 3) }]),
      Buffer.alloc(8192),
    ]);
    const l = await store.register(Readable.from(chunks(original)), "", { ref: "user" });
    const parts: Buffer[] = [];
    for await (const c of await store.tarStream(l.chainID)) parts.push(c as Buffer);
    t.true(Buffer.concat(parts).equals(original));
    t.is(await store.mounts.count(l.cacheID), 0, "the export released its hold");
    const p = await store.mounts.acquire(l.cacheID);
    await writeFile(join(p, "bin/sh"), "XX"); // same size, other bytes
    await store.mounts.release(l.cacheID);
    const err = await t.throwsAsync(async () => {
      for await (const _ of await store.tarStream(l.chainID));
    });
    t.is((err as { code?: string }).code, "ERR_DIGEST_MISMATCH");
  });

  test(`${name}: a tar stream that failed before register is called is an error, not a hang`, async (t) => {
    const { store, driver } = await openStore(t, name);
    const failed = new PassThrough();
    failed.on("error", () => {}); // the producer saw it; register must see it too
    failed.destroy(new Error("digest mismatch upstream"));
    await new Promise((r) => setImmediate(r));
    await t.throwsAsync(store.register(failed, ""), { message: /digest mismatch upstream/ });
    const closed = new PassThrough();
    closed.write(await makeTar(base));
    closed.destroy(); // closed early without an error
    await t.throwsAsync(store.register(closed, ""));
    t.deepEqual(await store.layers(), []);
    t.deepEqual(await driver.list(), []);
  });

  test(`${name}: a bad tar stores nothing`, async (t) => {
    const { store, driver } = await openStore(t, name);
    const evil = await makeTar([{ name: "../escape", content: "x" }]);
    await t.throwsAsync(store.register(Readable.from(chunks(evil)), ""), { code: "ERR_BREAKOUT" });
    const truncated = (await makeTar(base)).subarray(0, 700);
    await t.throwsAsync(store.register(Readable.from(chunks(truncated)), ""), { code: "ERR_TAR_FORMAT" });
    t.deepEqual(await store.layers(), []);
    t.deepEqual(await driver.list(), []);
  });

  test(`${name}: concurrent strata processes register the same and different layers`, async (t) => {
    const root = await tempDir(t, "strata-conc-");
    const dir = await tempDir(t);
    const same = join(dir, "same.tar");
    await writeFile(same, await makeTar(base));
    const files = [same, same, same];
    for (let i = 0; i < 3; i++) {
      const f = join(dir, `d${i}.tar`);
      await writeFile(f, await makeTar([{ name: `only-${i}`, content: String(i) }]));
      files.push(f);
    }
    const runs = await Promise.all(
      files.map(
        (f) =>
          new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
            const p = spawn(process.execPath, [
              CLI,
              "--root",
              root,
              "--driver",
              name,
              ...driverTestArgs(name),
              "layer",
              "apply",
              f,
            ]);
            let out = "";
            let err = "";
            p.stdout.on("data", (d) => (out += d));
            p.stderr.on("data", (d) => (err += d));
            // "close", not "exit": at "exit" the child's stdout may still hold its chainID.
            p.on("close", (code) => resolve({ code, out, err }));
          }),
      ),
    );
    for (const r of runs) t.is(r.code, 0, r.err);
    const ids = runs.map((r) => r.out.trim());
    t.is(new Set(ids.slice(0, 3)).size, 1, `the same tar gives one chainID: ${ids.join(" ")}`);
    t.is(new Set(ids).size, 4, `chainIDs: ${ids.join(" ")}; stderr: ${runs.map((r) => r.err.trim()).join(" | ")}`);
    const { store, driver } = await openStore(t, name, root);
    t.is((await store.layers()).length, 4);
    t.is((await driver.list()).length, driver.capabilities.sharedInit ? 8 : 4, "duplicates were discarded");
    t.deepEqual(await check(store, false), []);
  });
}
