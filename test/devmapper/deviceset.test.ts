/**
 * DeviceSet behaviour on the userspace target: base size growth and its
 * refusal to shrink, the base UUID check, rollback of an open transaction,
 * dm.min_free_space, per-container size, deferred deletion of a busy device.
 */
import { execFile } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { Transactions } from "../../src/drivers/devmapper/transactions.js";
import { C, mount, statfs, umount2 } from "../../src/native.js";
import { PoolError, ThinPool } from "../../src/thinpool/index.js";
import { thinCheck } from "../thinpool/helpers.js";
import { strata } from "../helpers/cli.js";
import { tempDir } from "../helpers/tmp.js";
import { metadataFile, openDevmapper, thinLs } from "./helpers.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;

async function fsBytes(path: string): Promise<number> {
  const s = await statfs(path);
  return s.blocks * s.frsize;
}

test.serial("dm.basesize grows an existing base (resize2fs) and refuses to shrink it", async (t) => {
  const { root, driver } = await openDevmapper(t);
  await driver.create("small", "");
  const before = await fsBytes(await driver.get("small"));
  await driver.put("small");
  await driver.cleanup();

  const grown = (await openDevmapper(t, { "dm.basesize": "768M" }, root)).driver;
  t.is(Number((await grown.metadata("small")).DeviceSize), 512 * MiB, "existing layers keep their size");
  await grown.create("big", "");
  t.is(Number((await grown.metadata("big")).DeviceSize), 768 * MiB);
  const after = await fsBytes(await grown.get("big"));
  await grown.put("big");
  t.true(after > before * 1.4, `filesystem grew from ${before} to ${after}`);
  t.is((await grown.status()).find(([k]) => k === "Base Device Size")?.[1], "805.3MB");
  await grown.cleanup();

  const { createDevmapper } = await import("../../src/drivers/devmapper/index.js");
  const { driverTestOptions } = await import("../helpers/drivers.js");
  const err = await t.throwsAsync(
    createDevmapper({ root, options: { ...driverTestOptions("devmapper"), "dm.basesize": "256M" } }),
  );
  t.is((err as { code?: string }).code, "ERR_INVALID_OPTION");
  t.regex(err!.message, /Base device size cannot be smaller/);
});

test.serial(
  "raising dm.loopmetadatasize grows the metadata file on restart, as dm.loopdatasize grows data",
  async (t) => {
    const { root, driver } = await openDevmapper(t); // 64M metadata, 2G data
    await driver.create("a", "");
    await driver.cleanup();
    const total = async (d: typeof driver, key: string) => new Map(await d.status()).get(key);

    const grown = (await openDevmapper(t, { "dm.loopmetadatasize": "128M", "dm.loopdatasize": "3G" }, root)).driver;
    t.is(await total(grown, "Metadata Space Total"), "134.2MB");
    t.is(await total(grown, "Data Space Total"), "3.221GB");
    t.true(await grown.exists("a"));
    await grown.create("b", "a");
    const p = await grown.get("b");
    await writeFile(join(p, "f"), "after the growth");
    await grown.put("b");
    await grown.cleanup();
    t.is((await stat(metadataFile(root))).size, 128 * MiB);
    await thinCheck(metadataFile(root));
    t.is((await thinLs(metadataFile(root))).length, 3, "base, a and b");

    // Asked for less: nothing shrinks.
    const same = (await openDevmapper(t, { "dm.loopmetadatasize": "32M" }, root)).driver;
    t.is(await total(same, "Metadata Space Total"), "134.2MB");
    t.is(await readFile(join(await same.get("b"), "f"), "utf8"), "after the growth");
    await same.put("b");
    await same.cleanup();
    t.is((await stat(metadataFile(root))).size, 128 * MiB);
  },
);

test.serial("a base device whose UUID changed is refused (a different pool)", async (t) => {
  const { root, driver } = await openDevmapper(t);
  await driver.cleanup();
  const metaPath = join(root, "devmapper", "metadata", "deviceset-metadata");
  const meta = JSON.parse(await readFile(metaPath, "utf8")) as { BaseDeviceUUID: string };
  t.regex(meta.BaseDeviceUUID, /^[0-9a-f-]{36}$/);
  await writeFile(metaPath, JSON.stringify({ ...meta, BaseDeviceUUID: "00000000-0000-0000-0000-000000000000" }));
  const { createDevmapper } = await import("../../src/drivers/devmapper/index.js");
  const { driverTestOptions } = await import("../helpers/drivers.js");
  const err = await t.throwsAsync(createDevmapper({ root, options: driverTestOptions("devmapper") }));
  t.is((err as { code?: string }).code, "ERR_DM_BASE_UUID");
  await writeFile(metaPath, JSON.stringify(meta));
  await openDevmapper(t, {}, root); // and with the right UUID it opens again
});

test.serial("an open transaction left by a crash is rolled back on start", async (t) => {
  const { root, driver } = await openDevmapper(t);
  const md = driver.deviceSet.md;
  await driver.create("kept", "");
  // What a crash between create_snap and close leaves: the transaction file, the pool's device, its metadata.
  const pool = await ThinPool.open(join(root, "devmapper", "devicemapper"));
  const base = await md.device("");
  const id = Math.max(...(await md.devices()).map((d) => d.device_id)) + 1;
  const tx = await new Transactions(md, pool).open("half", id);
  await pool.message(`create_snap ${id} ${base!.device_id}`);
  await md.saveDevice({
    hash: "half",
    device_id: id,
    size: base!.size,
    transaction_id: tx.open_transaction_id,
    initialized: false,
    deleted: false,
  });
  await driver.cleanup();
  t.true((await thinLs(metadataFile(root))).includes(id), "the half-made device is in the pool");

  const again = (await openDevmapper(t, {}, root)).driver;
  t.false(await again.exists("half"));
  t.true(await again.exists("kept"));
  t.is(await again.deviceSet.md.transaction(), null);
  const ids = (await again.deviceSet.md.devices()).map((d) => d.device_id).sort((a, b) => a - b);
  await again.cleanup();
  t.false((await thinLs(metadataFile(root))).includes(id), "rolled back in the pool");
  t.deepEqual(await thinLs(metadataFile(root)), ids);
});

test.serial("dm.min_free_space refuses new snapshots with Docker's message", async (t) => {
  const { driver } = await openDevmapper(t, { "dm.loopdatasize": "256M", "dm.min_free_space": "80%" });
  await driver.create("filler", "");
  const p = await driver.get("filler");
  await run("dd", ["if=/dev/urandom", `of=${join(p, "fill")}`, "bs=1M", "count=64", "conv=fsync"]);
  await driver.put("filler");
  const err = await t.throwsAsync(driver.create("next", "filler"));
  t.is((err as { code?: string }).code, "ERR_POOL_NO_SPACE");
  t.regex(
    err!.message,
    /^devmapper: Thin Pool has \d+ free data blocks which is less than minimum required \d+ free data blocks/,
  );
  t.false(await driver.exists("next"));
});

test.serial(
  "per-container size: larger than the base grows the filesystem; smaller or unknown options are refused",
  async (t) => {
    const { driver } = await openDevmapper(t);
    await driver.create("img", "");
    await driver.createReadWrite("big", "img", { storageOpt: { size: "1G" } });
    t.is(Number((await driver.metadata("big")).DeviceSize), 1024 * MiB);
    const bytes = await fsBytes(await driver.get("big"));
    await driver.put("big");
    t.true(bytes > 900 * MiB, `container filesystem is ${bytes} bytes`);
    const small = await t.throwsAsync(driver.createReadWrite("small", "img", { storageOpt: { size: "100M" } }));
    t.is((small as { code?: string }).code, "ERR_INVALID_ARGUMENT");
    const other = await t.throwsAsync(driver.createReadWrite("other", "img", { storageOpt: { quota: "1" } }));
    t.is((other as { code?: string }).code, "ERR_INVALID_ARGUMENT");
    t.deepEqual((await driver.list()).sort(), ["big", "img"]);
  },
);

test.serial(
  "deferred deletion: a device kept busy by a leaked mount is marked deleted, counted, and deleted later",
  async (t) => {
    const { driver } = await openDevmapper(t);
    const leak = await tempDir(t, "strata-leak-");
    await driver.create("c", "");
    const p = await driver.get("c");
    await writeFile(join(p, "f"), "x");
    await mount(p, leak, null, C.MS_BIND); // a copy of the mount elsewhere keeps the device open
    let leaked = true;
    t.teardown(async () => {
      if (leaked) await umount2(leak, C.MNT_DETACH).catch(() => {});
    });
    await driver.put("c");
    await driver.remove("c");
    t.false(await driver.exists("c"));
    t.deepEqual(await driver.list(), []);
    const count = () => driver.status().then((s) => s.find(([k]) => k === "Deferred Deleted Device Count")?.[1]);
    t.is(await count(), "1");
    t.is(await readFile(join(leak, "f"), "utf8"), "x", "the leaked mount still works");
    await umount2(leak);
    leaked = false;
    t.is(await driver.deviceSet.cleanupDeleted(), 0);
    t.is(await count(), "0");
    t.is(await driver.deviceSet.md.device("c"), null);
  },
);

test.serial(
  "without deferred deletion, removing a device kept busy fails with the pool family's ERR_POOL_BUSY",
  async (t) => {
    const { driver } = await openDevmapper(t, {
      "dm.use_deferred_removal": "false",
      "dm.use_deferred_deletion": "false",
    });
    const leak = await tempDir(t, "strata-leak-");
    await driver.create("c", "");
    const p = await driver.get("c");
    await mount(p, leak, null, C.MS_BIND);
    t.teardown(() => umount2(leak, C.MNT_DETACH).catch(() => {}));
    await driver.put("c").catch(() => {}); // the device stays open: deactivation may say busy
    const err = await t.throwsAsync(driver.remove("c"));
    t.true(err instanceof PoolError, String(err));
    t.is((err as PoolError).code, "ERR_POOL_BUSY");
    t.true(await driver.exists("c"), "nothing half done: the device is still there");
    await umount2(leak, C.MNT_DETACH);
    await driver.remove("c");
    t.false(await driver.exists("c"));
  },
);

test.serial("unknown and LVM options fail through the CLI with one line and a stable code", async (t) => {
  const dir = await tempDir(t, "strata-dmopt-");
  const bad = await strata(["--root", dir, "--driver", "devmapper", "--storage-opt", "dm.nosuch=1", "info"]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /^strata: Cannot start devmapper: unknown option "dm.nosuch=1" \[ERR_INVALID_OPTION\]\n$/);
  const lvm = await strata([
    "--root",
    dir,
    "--driver",
    "devmapper",
    "--storage-opt",
    "dm.directlvm_device=/dev/sdz",
    "info",
  ]);
  t.not(lvm.code, 0);
  t.regex(lvm.stderr, /dm\.directlvm_device.*LVM/);
});

test.serial("dm.thinpooldev uses a user's (userspace) pool: empty required, never closed by strata", async (t) => {
  const { stopPool } = await import("../thinpool/helpers.js");
  const poolDir = await tempDir(t, "strata-userpool-");
  const pool = await ThinPool.create({ dir: poolDir, dataSize: 1 << 30, metadataSize: 32 << 20 });
  t.teardown(() => stopPool(pool));
  const opts = { "dm.thinpooldev": poolDir, "dm.target": "userspace" };
  const { driver } = await openDevmapper(t, opts);
  const st = new Map(await driver.status());
  t.is(st.get("Pool Name"), poolDir);
  t.false(st.has("Data loop file"), "no loop files of strata's own");
  await driver.create("l", "");
  await driver.cleanup();
  t.is((await pool.info()).devices.length, 2, "base and layer stay in the user's pool, which still answers");

  const err = await t.throwsAsync(openDevmapper(t, opts), { code: "ERR_POOL_NOT_EMPTY" });
  t.regex(err!.message, /not empty/);
});
