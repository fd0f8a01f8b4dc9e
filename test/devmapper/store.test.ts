/**
 * devmapper under the layer store: a container is one snapshot, `strata info`
 * reports true values, and after a full scenario the pool metadata passes
 * thin_check and holds exactly the devices strata's metadata names.
 */
import { randomBytes } from "node:crypto";
import { lstat, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import test from "ava";
import { Differ, initPaths, Mounts, sharedInitID } from "../../src/layer/index.js";
import { readTar } from "../helpers/tar-reader.js";
import { strata } from "../helpers/cli.js";
import { driverTestArgs } from "../helpers/drivers.js";
import { chunks, makeTar, type Spec } from "../helpers/tar.js";
import { tempDir } from "../helpers/tmp.js";
import { metadataFile, openDmStore, run, thinLs } from "./helpers.js";

const tarOf = async (specs: Spec[]) => Readable.from(chunks(await makeTar(specs)));
const base: Spec[] = [
  { name: "etc/" },
  { name: "etc/hosts", content: "from image\n" },
  { name: "etc/os-release", content: "ID=strata\n" },
  { name: "bin/" },
  { name: "bin/sh", content: "sh", mode: 0o755 },
];

test.serial("a container costs one snapshot: one new thin device per create", async (t) => {
  const { store, driver } = await openDmStore(t);
  const img = await store.register(await tarOf(base), "", { ref: "image:base" });
  const before = await driver.deviceSet.md.devices();
  await store.createRWLayer("c1", img.chainID);
  const after = await driver.deviceSet.md.devices();
  t.is(after.length - before.length, 1, "one new device");
  const rec = await store.container("c1");
  const added = after.find((d) => !before.some((b) => b.hash === d.hash))!;
  t.is(added.hash, rec.mountID);
  t.is(rec.initID, sharedInitID(img.cacheID), "the image layer's init layer, shared");
  t.true(rec.initShared);
  // The init content lives in the image layer's init device, which the container snapshots.
  const p = await store.mount("c1");
  try {
    for (const ip of initPaths()) t.truthy(await lstat(join(p, ip)), ip);
    t.is(await readFile(join(p, "etc/os-release"), "utf8"), "ID=strata\n");
    await writeFile(join(p, "etc/new"), "x");
  } finally {
    await store.unmount("c1");
  }
  t.deepEqual(
    (await store.changes("c1")).map((c) => `${c.kind} ${c.path}`),
    ["C /etc", "A /etc/new"],
    "init files never show",
  );
  t.is(Number((await driver.metadata(rec.mountID)).DeviceId), added.device_id);
});

test.serial(
  "the driver's view of a registered image layer is exactly its tar: no init entries in changes, diff, diffSize",
  async (t) => {
    const { store, driver } = await openDmStore(t);
    const img = await store.register(await tarOf(base), "", { ref: "image:base" });
    const child = await store.register(
      await tarOf([{ name: "etc/" }, { name: "etc/hosts", content: "from the child\n" }, { name: "srv/" }]),
      img.chainID,
      { ref: "image:child" },
    );
    // What strata serve gives dockerd: the driver's layers compared by a Differ with holds of its own.
    const holds = new Mounts(driver, await tempDir(t, "strata-holds-"));
    await holds.init();
    t.teardown(() => holds.close());
    const direct = new Differ(driver, holds);
    const changes = async (id: string, parent: string) =>
      (await direct.changes(id, parent)).map((c) => `${c.kind} ${c.path}`);
    t.deepEqual(await changes(img.cacheID, ""), ["A /bin", "A /bin/sh", "A /etc", "A /etc/hosts", "A /etc/os-release"]);
    t.deepEqual(await changes(child.cacheID, img.cacheID), ["C /etc", "C /etc/hosts", "A /srv"]);
    t.is(await direct.diffSize(img.cacheID, ""), "from image\n".length + "ID=strata\n".length + 2);
    const names: string[] = [];
    for await (const e of readTar(await direct.diff(img.cacheID, ""))) {
      names.push(e.header.name);
      await e.skip();
    }
    names.sort();
    t.deepEqual(names, ["bin/", "bin/sh", "etc/", "etc/hosts", "etc/os-release"]);
    const p = await driver.get(img.cacheID);
    t.is(await readFile(join(p, "etc/hosts"), "utf8"), "from image\n", "the image layer keeps the tar's file");
    await driver.put(img.cacheID);
    // The store's containers still see the init content, and their changes never show it.
    await store.createRWLayer("c", child.chainID);
    const cp = await store.mount("c");
    t.is(await readFile(join(cp, "etc/hosts"), "utf8"), "", "init's empty hosts file, for the runtime to bind");
    await store.unmount("c");
    t.deepEqual(await store.changes("c"), []);
    await store.releaseRWLayer("c");
  },
);

test.serial("strata info shows every status field; used space grows with a layer and shrinks after rm", async (t) => {
  const dir = await tempDir(t, "strata-dminfo-");
  const g = ["--root", join(dir, "root"), "--driver", "devmapper", ...driverTestArgs("devmapper")];
  t.teardown(async () => {
    // The pool daemon stops with the last CLI call when nothing is mounted; make sure.
    const { createDevmapper } = await import("../../src/drivers/devmapper/index.js");
    const { driverTestOptions } = await import("../helpers/drivers.js");
    const d = await createDevmapper({ root: join(dir, "root"), options: driverTestOptions("devmapper") });
    await d.cleanup();
  });
  const info = async () => {
    const r = await strata([...g, "--json", "info"]);
    t.is(r.code, 0, r.stderr);
    return new Map((JSON.parse(r.stdout) as { status: Array<[string, string]> }).status);
  };
  const parse = (s: string) => {
    const m = /^([\d.]+)(B|kB|MB|GB|TB)$/.exec(s);
    if (!m) throw new Error(`not a human size: ${s}`);
    return Number(m[1]) * 1000 ** ["B", "kB", "MB", "GB", "TB"].indexOf(m[2]!);
  };
  const s0 = await info();
  t.deepEqual(
    [...s0.keys()],
    [
      "Pool Name",
      "Pool Blocksize",
      "Base Device Size",
      "Backing Filesystem",
      "Udev Sync Supported",
      "Data file",
      "Metadata file",
      "Data loop file",
      "Metadata loop file",
      "Data Space Used",
      "Data Space Total",
      "Data Space Available",
      "Metadata Space Used",
      "Metadata Space Total",
      "Metadata Space Available",
      "Thin Pool Minimum Free Space",
      "Deferred Removal Enabled",
      "Deferred Deletion Enabled",
      "Deferred Deleted Device Count",
      "Library Version",
    ],
  );
  t.regex(s0.get("Pool Name")!, /^strata-\d+:\d+-\d+-pool$/);
  t.is(s0.get("Pool Blocksize"), "65.54kB");
  t.is(s0.get("Base Device Size"), "536.9MB");
  t.is(s0.get("Backing Filesystem"), "ext4");
  t.is(s0.get("Data Space Total"), "2.147GB");
  t.is(s0.get("Metadata Space Total"), "67.11MB");
  t.is(s0.get("Thin Pool Minimum Free Space"), "214.7MB");
  t.is(s0.get("Data loop file"), join(dir, "root", "devmapper", "devicemapper", "data"));
  t.is(s0.get("Deferred Deleted Device Count"), "0");
  t.regex(s0.get("Library Version")!, /userspace/);
  const expectAvail = parse("2.147GB") - parse(s0.get("Data Space Used")!);
  t.true(
    Math.abs(parse(s0.get("Data Space Available")!) - expectAvail) <= 2.147e9 / 1000,
    "available = total - used (within HumanSize's 4 digits)",
  );

  const big = join(dir, "big.tar");
  await writeFile(big, await makeTar([{ name: "blob", content: randomBytes(24 << 20) }]));
  const apply = await strata([...g, "layer", "apply", big]);
  t.is(apply.code, 0, apply.stderr);
  const s1 = await info();
  const grew = parse(s1.get("Data Space Used")!) - parse(s0.get("Data Space Used")!);
  t.true(grew >= 24e6, `used grew by ${grew} bytes`);
  t.true(parse(s1.get("Metadata Space Used")!) > parse(s0.get("Metadata Space Used")!));
  const rm = await strata([...g, "layer", "rm", apply.stdout.trim()]);
  t.is(rm.code, 0, rm.stderr);
  const s2 = await info();
  const shrank = parse(s1.get("Data Space Used")!) - parse(s2.get("Data Space Used")!);
  t.true(shrank >= 24e6, `used shrank by ${shrank} bytes after rm`);
});

test.serial(
  "full scenario: 20 containers, changes, commits, removals; thin_check passes, thin_ls = strata's devices",
  async (t) => {
    const { root, store, driver } = await openDmStore(t);
    const img = await store.register(await tarOf(base), "", { ref: "image:base" });
    const top = await store.register(
      await tarOf([{ name: "app/" }, { name: "app/main", content: "v1" }]),
      img.chainID,
      {
        ref: "image:app",
      },
    );
    const commits: string[] = [];
    for (let i = 0; i < 20; i++) {
      await store.createRWLayer(`c${i}`, i % 2 ? top.chainID : img.chainID);
      const p = await store.mount(`c${i}`);
      try {
        await writeFile(join(p, `file${i}`), randomBytes(64 * 1024));
        await writeFile(join(p, "etc/hosts"), `changed by ${i}\n`);
      } finally {
        await store.unmount(`c${i}`);
      }
      const ch = (await store.changes(`c${i}`)).map((c) => `${c.kind} ${c.path}`);
      t.deepEqual(ch, ["C /etc", "C /etc/hosts", `A /file${i}`]);
      if (i % 5 === 0) commits.push((await store.commit(`c${i}`, { ref: `image:commit${i}` })).chainID);
    }
    for (let i = 0; i < 20; i += 3) await store.releaseRWLayer(`c${i}`);
    await store.removeRef(commits[0] as `sha256:${string}`, "image:commit0");
    const strataIds = (await driver.deviceSet.md.devices()).map((d) => d.device_id).sort((a, b) => a - b);
    const layerIds = await driver.list();
    t.is(layerIds.length, strataIds.length - 1, "every device but the base is a layer");
    t.is(
      layerIds.length,
      2 * (await store.layers()).length + (await store.containers()).length,
      "each image layer has its shared init layer",
    );
    await store.close();
    await driver.cleanup();
    const meta = metadataFile(root);
    await t.notThrowsAsync(run("thin_check", [meta]), "thin_check passes");
    t.deepEqual(await thinLs(meta), strataIds, "thin_ls lists exactly strata's devices");
  },
);
