/**
 * `check` sees what is on disk and what the kernel has mounted, and one
 * `--repair` is enough (issues 18 and 19); read-only commands leave the
 * store as they found it.
 */
import { spawnSync } from "node:child_process";
import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import test, { type ExecutionContext } from "ava";
import { builtinDrivers } from "../../src/drivers/index.js";
import { LayerStore } from "../../src/layer/index.js";
import { C, umount2 } from "../../src/native.js";
import { currentProcess } from "../../src/util/process.js";
import { strata } from "../helpers/cli.js";
import { chunks, makeTar } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";

async function openStore(t: ExecutionContext, name: string, root?: string) {
  const r = root ?? (await tempDir(t, "strata-check-"));
  const driver = await builtinDrivers().get(name).factory({ root: r, options: {} });
  const store = await LayerStore.open(r, driver);
  t.teardown(async () => {
    await store.close();
    await driver.cleanup();
  });
  return { root: r, driver, store };
}

const tar = async () => Readable.from(chunks(await makeTar([{ name: "etc/" }, { name: "etc/os", content: "x" }])));

/** The identity of a process that has exited (pid + a start time that no live process has). */
function deadOwner(): string {
  const child = spawnSync(process.execPath, ["-e", "0"]);
  return `${child.pid}.1`;
}

for (const name of ["vfs", "overlay"]) {
  test(`${name}: one check --repair is enough after a container's driver layer goes missing`, async (t) => {
    const { store, driver } = await openStore(t, name);
    const img = await store.register(await tar(), "", { ref: "user" });
    const c = await store.createRWLayer("c1", img.chainID);
    await driver.remove(c.mountID); // lost behind the store's back
    const found = await store.check(true);
    t.true(found.some((p) => p.kind === "container-missing-layer"));
    t.deepEqual(await store.check(false), [], "nothing left for a second pass");
    t.deepEqual(await store.containers(), []);
    t.deepEqual(await driver.list(), [img.cacheID], "the init layer went with its container");
  });

  test(`${name}: releasing a container layer twice is a no-op, as in Docker`, async (t) => {
    const { store } = await openStore(t, name);
    const img = await store.register(await tar(), "", { ref: "user" });
    await store.createRWLayer("c1", img.chainID);
    await store.releaseRWLayer("c1");
    t.deepEqual(await store.releaseRWLayer("c1"), []);
    t.deepEqual(await store.releaseRWLayer("never-was"), []);
    t.deepEqual(await store.check(false), []);
  });

  test(`${name}: temporary files of atomic writes left by a killed process are reported, then removed by --repair`, async (t) => {
    const { store } = await openStore(t, name);
    const owner = deadOwner();
    const intents = join(store.db.dir, "intents");
    const holds = join(store.db.dir, "holds");
    // What a process killed between writing and renaming leaves (issue 18: `layer apply /missing.tar`).
    await writeFile(join(intents, `.0a1b.json.tmp-${owner}-deadbeef`), '{"kind":"reg');
    await writeFile(join(holds, `.0a1b.json.tmp-${owner}-deadbeef`), "{");
    // A write in progress in a live process is not a leftover.
    const me = await currentProcess();
    const live = `.0c0d.json.tmp-${me.pid}.${me.start}-cafe`;
    await writeFile(join(intents, live), "{");
    const found = await store.check(false);
    t.deepEqual(found.map((p) => `${p.kind} ${p.subject}`).sort(), [
      `leftover holds/.0a1b.json.tmp-${owner}-deadbeef`,
      `leftover intents/.0a1b.json.tmp-${owner}-deadbeef`,
    ]);
    await store.check(true);
    t.deepEqual(await readdir(intents), [live]);
    t.deepEqual(await readdir(holds), []);
    await rm(join(intents, live));
    t.deepEqual(await store.check(false), []);
  });
}

test("opening a store sweeps the temporary files of dead writers and reports them", async (t) => {
  const { root, store } = await openStore(t, "vfs");
  const leftover = `.0a1b.json.tmp-${deadOwner()}-deadbeef`;
  await writeFile(join(store.db.dir, "intents", leftover), '{"kind":"reg');
  const again = await openStore(t, "vfs", root);
  t.deepEqual(again.store.recovery.sweptWrites, [`intents/${leftover}`]);
  t.deepEqual(await readdir(join(store.db.dir, "intents")), []);
});

test("overlay: check reports a hold whose mount was removed from outside; --repair mounts it again", async (t) => {
  const { store } = await openStore(t, "overlay");
  const img = await store.register(await tar(), "", { ref: "user" });
  await store.createRWLayer("c1", img.chainID);
  const path = await store.mount("c1");
  t.deepEqual(await store.check(false), []);
  await umount2(path, C.MNT_DETACH); // an external umount
  const found = await store.check(false);
  t.deepEqual(
    found.map((p) => p.kind),
    ["hold-without-mount"],
  );
  const repaired = await store.check(true);
  t.regex(repaired[0]!.detail, /mounted again/);
  t.deepEqual(await store.check(false), []);
  t.deepEqual(await readdir(join(path, "etc")), ["hostname", "hosts", "mtab", "os", "resolv.conf"]);
  await store.unmount("c1");
  await store.releaseRWLayer("c1");
});

test("a read-only command with --driver vfs on an overlay store creates no vfs home; plain commands still work", async (t) => {
  const dir = await tempDir(t, "strata-check-cli-");
  const root = join(dir, "root");
  const file = join(dir, "l.tar");
  await writeFile(file, await makeTar([{ name: "a", content: "1" }]));
  t.is((await strata(["--root", root, "--driver", "overlay", "layer", "apply", file])).code, 0);
  for (const cmd of [["images"], ["layer", "ls"], ["ps"], ["check"], ["info"]]) {
    const r = await strata(["--root", root, "--driver", "vfs", ...cmd]);
    t.is(r.code, 0, r.stderr);
  }
  t.false((await readdir(root)).includes("vfs"), "no vfs home made by read-only commands");
  // Even a vfs home with layers in it does not make the store ambiguous (Docker skips vfs in its scan).
  t.is((await strata(["--root", root, "--driver", "vfs", "layer", "apply", file])).code, 0);
  const plain = await strata(["--root", root, "layer", "ls"]);
  t.is(plain.code, 0, plain.stderr);
  t.regex(plain.stdout, /CHAINID/);
  await rm(join(root, "vfs"), { recursive: true, force: true });
});
