/** dm.* option parsing: defaults, units, validation, refusals naming the option. */
import test from "ava";
import { humanSize, parseOptions, parseSize } from "./options.js";

test("parseOptions() defaults are Docker's", (t) => {
  const c = parseOptions({});
  t.is(c.loopDataSize, 100 * 1024 ** 3);
  t.is(c.loopMetadataSize, 2 * 1024 ** 3);
  t.is(c.blockSize, 65536);
  t.is(c.minFreeSpacePercent, 10);
  t.true(c.blkDiscard);
  t.is(c.baseSize, undefined);
  t.is(c.target, undefined);
  t.true(Object.isFrozen(c));
});

test("parseSize() reads go-units RAMInBytes forms; humanSize() prints HumanSize", (t) => {
  t.is(parseSize("512M"), 512 * 1024 ** 2);
  t.is(parseSize("2g"), 2 * 1024 ** 3);
  t.is(parseSize("10GiB"), 10 * 1024 ** 3);
  t.is(parseSize("64kb"), 65536);
  t.is(parseSize("4096"), 4096);
  t.throws(() => parseSize("ten"), { code: "ERR_INVALID_OPTION" });
  t.is(humanSize(65536), "65.54kB");
  t.is(humanSize(100 * 1024 ** 3), "107.4GB");
  t.is(humanSize(10 * 1024 ** 3), "10.74GB");
  t.is(humanSize(2 * 1024 ** 3), "2.147GB");
  t.is(humanSize(0), "0B");
  t.is(humanSize(999), "999B");
  t.is(humanSize(1000), "1kB");
});

test("parseOptions() reads every implemented option", (t) => {
  const c = parseOptions({
    "dm.basesize": "20G",
    "DM.LOOPDATASIZE": "200G",
    "dm.loopmetadatasize": "4G",
    "dm.fs": "xfs",
    "dm.mkfsarg": "-K -m crc=1",
    "dm.mountopt": "nodiscard",
    "dm.blkdiscard": "false",
    "dm.blocksize": "512K",
    "dm.override_udev_sync_check": "true",
    "dm.use_deferred_removal": "true",
    "dm.use_deferred_deletion": "true",
    "dm.min_free_space": "5%",
    "dm.xfs_nospace_max_retries": "0",
    "dm.libdm_log_level": "7",
    "dm.target": "userspace",
  });
  t.is(c.baseSize, 20 * 1024 ** 3);
  t.is(c.loopDataSize, 200 * 1024 ** 3);
  t.is(c.fs, "xfs");
  t.deepEqual(c.mkfsArgs, ["-K", "-m", "crc=1"]);
  t.is(c.mountOpts, "nodiscard");
  t.false(c.blkDiscard);
  t.is(c.blockSize, 512 * 1024);
  t.true(c.deferredRemoval);
  t.true(c.deferredDeletion);
  t.is(c.minFreeSpacePercent, 5);
  t.is(c.xfsNospaceMaxRetries, "0");
  t.is(c.logLevel, 7);
  t.is(c.target, "userspace");
});

test("parseOptions() rejects unknown options and bad values, naming the option", (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ "dm.nosuch": "1" }, /unknown option "dm.nosuch=1"/],
    [{ "dm.fs": "btrfs" }, /dm.fs=btrfs/],
    [{ "dm.min_free_space": "10" }, /dm.min_free_space/],
    [{ "dm.min_free_space": "100%" }, /below 100%/],
    [{ "dm.blocksize": "100K" }, /dm.blocksize/],
    [{ "dm.blkdiscard": "maybe" }, /dm.blkdiscard/],
    [{ "dm.datadev": "/dev/sdb" }, /together/],
    [{ "dm.use_deferred_removal": "false", "dm.use_deferred_deletion": "true" }, /requires deferred removal/],
    [{ "dm.libdm_log_level": "9" }, /dm.libdm_log_level/],
    [{ "dm.target": "fuse" }, /dm.target/],
  ];
  for (const [opts, re] of cases) {
    const err = t.throws(() => parseOptions(opts), { code: "ERR_INVALID_OPTION" }, JSON.stringify(opts));
    t.regex(err.message, re);
  }
});

test("direct-lvm options are refused with a reason that names them", (t) => {
  for (const key of [
    "dm.directlvm_device",
    "dm.directlvm_device_force",
    "dm.thinp_percent",
    "dm.thinp_metapercent",
    "dm.thinp_autoextend_percent",
    "dm.thinp_autoextend_threshold",
  ]) {
    const err = t.throws(() => parseOptions({ [key]: "1" }), { code: "ERR_NOT_SUPPORTED" });
    t.true(err.message.includes(key) && /LVM/.test(err.message), err.message);
  }
});

test("dm.blkdiscard is off by default with dm.datadev or dm.thinpooldev, unless set", (t) => {
  t.false(parseOptions({ "dm.thinpooldev": "/dev/mapper/p" }).blkDiscard);
  t.is(parseOptions({ "dm.thinpooldev": "/dev/mapper/p" }).thinPoolDev, "p");
  t.false(parseOptions({ "dm.datadev": "/dev/a", "dm.metadatadev": "/dev/b" }).blkDiscard);
  t.true(parseOptions({ "dm.thinpooldev": "p", "dm.blkdiscard": "true" }).blkDiscard);
});
