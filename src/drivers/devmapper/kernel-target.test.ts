/**
 * The kernel target: dmsetup call sequences (dmsetup itself is passed in,
 * since this machine has no device-mapper; loop devices and files are real),
 * and a live pool where /dev/mapper/control answers; skipped here with the reason.
 */
import { mkdtemp, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import { attachLoop, detachLoop } from "../../native.js";
import { kernelTargetAvailable, KernelTarget } from "./kernel-target.js";

const avail = await kernelTargetAvailable();
if (!avail.ok) console.log(`kernel target tests skipped: the kernel target cannot run here: ${avail.reason}`);

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

test("after a restart, loop files smaller than the options ask are grown and the pool table reloaded", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "strata-dmk-grow-"));
  const loops: string[] = [];
  t.teardown(async () => {
    for (const l of loops) await detachLoop(l).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  // What a pool made earlier with 64 MiB data and 4 MiB metadata left: its two loop devices.
  await writeFile(join(dir, "data"), "");
  await truncate(join(dir, "data"), 64 << 20);
  await writeFile(join(dir, "metadata"), "");
  await truncate(join(dir, "metadata"), 4 << 20);
  const data = (await attachLoop(join(dir, "data"), { directIO: false, autoclear: false })).device;
  loops.push(data);
  const meta = (await attachLoop(join(dir, "metadata"), { directIO: false, autoclear: false })).device;
  loops.push(meta);
  const calls: string[][] = [];
  const dmsetup = async (args: string[]) => {
    calls.push(args);
    if (args[0] === "table") return "0 131072 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing\n";
    return "";
  };
  const capacity: string[] = [];
  const spec = {
    name: "p",
    loopDir: dir,
    dataSize: 128 << 20,
    metadataSize: 16 << 20,
    blockSize: 65536,
    dataDev: "",
    metadataDev: "",
    external: false,
  };
  await new KernelTarget(dmsetup, 2, async (dev) => void capacity.push(dev)).open(spec);
  t.is((await stat(join(dir, "data"))).size, 128 << 20);
  t.is((await stat(join(dir, "metadata"))).size, 16 << 20, "the metadata file grows too");
  t.deepEqual(capacity.sort(), [data, meta].sort(), "both loop devices learn their new size");
  t.deepEqual(calls.slice(1), [
    ["suspend", "p"],
    ["reload", "p", "--table", "0 262144 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing"],
    ["resume", "p"],
  ]);

  // Asked for less than there is: nothing shrinks, nothing is reloaded.
  calls.length = 0;
  capacity.length = 0;
  await new KernelTarget(dmsetup, 2, async (dev) => void capacity.push(dev)).open({ ...spec, dataSize: 1 << 20 });
  t.deepEqual(calls, [["table", "p"]]);
  t.deepEqual(capacity, []);
  t.is((await stat(join(dir, "data"))).size, 128 << 20);
});

(avail.ok ? test : test.skip)("KernelTarget: a live pool, thin device and snapshot through dmsetup", async (t) => {
  // Where dm works, the devmapper conformance suite runs on the kernel target by
  // automatic choice; this case checks the raw pool round trip.
  const k = new KernelTarget();
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
