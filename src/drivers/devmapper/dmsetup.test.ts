/** dmsetup for the kernel target: command lines, tables, version and error mapping (pure functions). */
import test from "ava";
import { PoolError } from "../../thinpool/index.js";
import {
  createArgs,
  dmError,
  driverSupportsDeferred,
  messageArgs,
  parsePoolTable,
  parseVersion,
  poolTable,
  reloadArgs,
  removeArgs,
  thinTable,
} from "./dmsetup.js";

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

test("dmsetup argument lists: create, message, remove with --deferred or --retry, reload", (t) => {
  t.deepEqual(createArgs("p", "0 8 thin /dev/mapper/x 1"), ["create", "p", "--table", "0 8 thin /dev/mapper/x 1"]);
  t.deepEqual(messageArgs("pool", "create_snap 3 1"), ["message", "pool", "0", "create_snap 3 1"]);
  t.deepEqual(messageArgs("pool", "set_transaction_id 4 5"), ["message", "pool", "0", "set_transaction_id 4 5"]);
  t.deepEqual(removeArgs("dev", true), ["remove", "--deferred", "dev"]);
  t.deepEqual(removeArgs("dev", false), ["remove", "--retry", "dev"]);
  t.deepEqual(reloadArgs("p", "0 8 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing"), [
    "reload",
    "p",
    "--table",
    "0 8 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing",
  ]);
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

test("dmError() maps dmsetup's messages to the pool error family, as the userspace pool's errnos are", (t) => {
  const busy = dmError(["remove", "x"], "device-mapper: remove ioctl on x failed: Device or resource busy");
  t.true(busy instanceof PoolError);
  t.is(busy.code, "ERR_POOL_BUSY");
  t.is(dmError(["message"], "device-mapper: message ioctl on p failed: File exists").code, "ERR_POOL_DEVICE_EXISTS");
  t.is(
    dmError(["info", "x"], "Device x not found\nCommand failed.\nDevice does not exist.").code,
    "ERR_POOL_DEVICE_NOT_FOUND",
  );
  t.is(
    dmError(["message"], "device-mapper: message ioctl on p failed: No data available").code,
    "ERR_POOL_DEVICE_NOT_FOUND",
  );
  t.is(
    dmError(["message"], "device-mapper: message ioctl on p failed: No space left on device").code,
    "ERR_POOL_NO_SPACE",
  );
  t.is(dmError(["create"], "something else").code, "ERR_POOL_TARGET");
});
