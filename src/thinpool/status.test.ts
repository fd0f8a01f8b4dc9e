/** parseStatus(): the one thin-pool status parser, for the kernel's lines (any kernel since 4.x) and the daemon's. */
import test from "ava";
import { parseStatus } from "./status.js";

test("parseStatus() reads a dmsetup status line, prefix included, with every field", (t) => {
  t.deepEqual(
    parseStatus("0 209715200 thin-pool 12 1289/524288 21937/1638400 - rw discard_passdown queue_if_no_space - 1024\n"),
    {
      transactionId: 12,
      usedMetadataBlocks: 1289,
      totalMetadataBlocks: 524288,
      usedDataBlocks: 21937,
      totalDataBlocks: 1638400,
      heldMetadataRoot: null,
      mode: "rw",
      discardPassdown: true,
      errorIfNoSpace: false,
      needsCheck: false,
      metadataLowWatermark: 1024,
    },
  );
});

test("parseStatus() reads the daemon's line (no prefix) and the flags of a full pool", (t) => {
  const s = parseStatus("3 10/100 7/10 17 out_of_data_space no_discard_passdown error_if_no_space needs_check 25");
  t.is(s.transactionId, 3);
  t.is(s.heldMetadataRoot, 17);
  t.is(s.mode, "out_of_data_space");
  t.false(s.discardPassdown);
  t.true(s.errorIfNoSpace);
  t.true(s.needsCheck);
  t.is(s.metadataLowWatermark, 25);
});

test("parseStatus() reads older kernels' shorter lines (no low-water mark, no needs_check)", (t) => {
  const a = parseStatus("0 8 thin-pool 1 10/100 0/10 - rw discard_passdown queue_if_no_space -");
  t.is(a.metadataLowWatermark, 0);
  const b = parseStatus("0 8 thin-pool 1 10/100 0/10 - ro discard_passdown queue_if_no_space");
  t.is(b.mode, "ro");
  t.false(b.needsCheck);
});

test("parseStatus() fails with ERR_POOL_TARGET on a failed pool and on lines of other targets", (t) => {
  const fail = t.throws(() => parseStatus("0 8 thin-pool Fail"), { code: "ERR_POOL_TARGET" });
  t.regex(fail.message, /failed/);
  t.throws(() => parseStatus("0 8 linear 8:1 0"), { code: "ERR_POOL_TARGET" });
  t.throws(() => parseStatus(""), { code: "ERR_POOL_TARGET" });
});
