/**
 * The kernel target: command construction and status parsing (pure), and a
 * live pool where /dev/mapper/control answers; skipped here with the reason.
 */
import test from "ava";
import {
  createArgs,
  dmError,
  driverSupportsDeferred,
  kernelTargetAvailable,
  KernelTarget,
  messageArgs,
  parsePoolStatus,
  parsePoolTable,
  parseVersion,
  poolTable,
  removeArgs,
  thinTable,
} from "./kernel-target.js";

const avail = await kernelTargetAvailable();
if (!avail.ok) console.log(`kernel target tests skipped: the kernel target cannot run here: ${avail.reason}`);

test("poolTable() is Docker's thin-pool table with 32768 low water and skip_block_zeroing", (t) => {
  t.is(
    poolTable(100 * 1024 ** 3, "/dev/loop1", "/dev/loop0", 65536),
    "0 209715200 thin-pool /dev/loop1 /dev/loop0 128 32768 1 skip_block_zeroing",
  );
  t.is(
    poolTable(2 * 1024 ** 3, "7:1", "7:0", 512 * 1024),
    "0 4194304 thin-pool 7:1 7:0 1024 32768 1 skip_block_zeroing",
  );
});

test("thinTable() maps a device id of the pool with its size in sectors", (t) => {
  t.is(thinTable("strata-8:1-42-pool", 7, 10 * 1024 ** 3), "0 20971520 thin /dev/mapper/strata-8:1-42-pool 7");
});

test("dmsetup argument lists: create, message, remove with --deferred or --retry", (t) => {
  t.deepEqual(createArgs("p", "0 8 thin /dev/mapper/x 1"), ["create", "p", "--table", "0 8 thin /dev/mapper/x 1"]);
  t.deepEqual(messageArgs("pool", "create_snap 3 1"), ["message", "pool", "0", "create_snap 3 1"]);
  t.deepEqual(messageArgs("pool", "set_transaction_id 4 5"), ["message", "pool", "0", "set_transaction_id 4 5"]);
  t.deepEqual(removeArgs("dev", true), ["remove", "--deferred", "dev"]);
  t.deepEqual(removeArgs("dev", false), ["remove", "--retry", "dev"]);
});

test("dm.libdm_log_level above notice makes every dmsetup call verbose", async (t) => {
  const calls: string[][] = [];
  const record = async (args: string[]) => {
    calls.push(args);
    return "Library version:   1.02.185 (2022-05-18)\nDriver version:    4.48.0\n";
  };
  await new KernelTarget(record, 7).libraryVersion();
  await new KernelTarget(record, 2).libraryVersion();
  t.deepEqual(calls, [["-v", "-v", "-v", "version"], ["version"]]);
});

test("parsePoolStatus() reads transaction, metadata and data blocks of a dmsetup status line", (t) => {
  const s = parsePoolStatus(
    "0 209715200 thin-pool 12 1289/524288 21937/1638400 - rw discard_passdown queue_if_no_space - 1024\n",
    128,
  );
  t.deepEqual(s, {
    transactionId: 12,
    usedMetadataBlocks: 1289,
    totalMetadataBlocks: 524288,
    usedDataBlocks: 21937,
    totalDataBlocks: 1638400,
    dataBlockSize: 65536,
    mode: "rw",
  });
  t.is(
    parsePoolStatus(
      "0 8 thin-pool 0 10/100 0/10 - out_of_data_space no_discard_passdown error_if_no_space needs_check 0",
      1024,
    ).mode,
    "out_of_data_space",
  );
  t.throws(() => parsePoolStatus("0 8 thin-pool Fail", 128), { code: "ERR_DM_TARGET" });
  t.throws(() => parsePoolStatus("0 8 linear 8:1 0", 128), { code: "ERR_DM_TARGET" });
});

test("parsePoolTable() finds the block size; a table of another target is not a thin pool", (t) => {
  t.deepEqual(parsePoolTable("0 4194304 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing"), {
    metadataDev: "7:1",
    dataDev: "7:0",
    blockSectors: 128,
  });
  const err = t.throws(() => parsePoolTable("0 8 linear 8:1 0"));
  t.regex(err.message, /not a thin pool/);
});

test("parseVersion() and the deferred-removal rule (dm driver >= 4.27.0)", (t) => {
  const v = parseVersion("Library version:   1.02.185 (2022-05-18)\nDriver version:    4.48.0\n");
  t.is(v.library, "1.02.185 (2022-05-18)");
  t.deepEqual(v.driver, [4, 48, 0]);
  t.true(driverSupportsDeferred(v.driver));
  t.false(driverSupportsDeferred([4, 26, 9]));
  t.true(driverSupportsDeferred([4, 27, 0]));
  t.deepEqual(parseVersion("Library version:   1.02.185 (2022-05-18)\n").driver, [0, 0, 0]);
});

test("dmError() maps dmsetup's messages to stable codes", (t) => {
  t.is(
    dmError(["remove", "x"], "device-mapper: remove ioctl on x failed: Device or resource busy").code,
    "ERR_DM_BUSY",
  );
  t.is(dmError(["message"], "device-mapper: message ioctl on p failed: File exists").code, "ERR_DM_EXISTS");
  t.is(dmError(["info", "x"], "Device x not found\nCommand failed.\nDevice does not exist.").code, "ERR_DM_NOT_FOUND");
  t.is(dmError(["message"], "device-mapper: message ioctl on p failed: No data available").code, "ERR_DM_NOT_FOUND");
  t.is(dmError(["create"], "something else").code, "ERR_DM_TARGET");
});

(avail.ok ? test : test.skip)("KernelTarget: a live pool, thin device and snapshot through dmsetup", async (t) => {
  // Where dm works, the devmapper conformance suite runs on the kernel target by
  // automatic choice; this case checks the raw pool round trip.
  const k = new KernelTarget();
  const { mkdtemp, rm } = await import("node:fs/promises");
  const dir = await mkdtemp("/tmp/strata-dmk-");
  const name = `strata-test-${process.pid}-pool`;
  t.teardown(async () => {
    await k.close({ removePool: true }).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  await k.open({
    name,
    loopDir: dir,
    dataSize: 256 << 20,
    metadataSize: 16 << 20,
    blockSize: 65536,
    dataDev: "",
    metadataDev: "",
    external: false,
  });
  await k.message("create_thin 1");
  await k.message("set_transaction_id 0 1");
  t.is((await k.status()).transactionId, 1);
  const dev = await k.activate(`strata-test-${process.pid}-1`, 1, 64 << 20);
  t.is(dev, `/dev/mapper/strata-test-${process.pid}-1`);
  await k.suspend(`strata-test-${process.pid}-1`);
  await k.message("create_snap 2 1");
  await k.resume(`strata-test-${process.pid}-1`);
  await k.deactivate(`strata-test-${process.pid}-1`, 1, { deferred: false });
  await k.message("delete 2");
  await k.message("delete 1");
});
