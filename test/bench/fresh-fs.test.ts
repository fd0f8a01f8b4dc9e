/**
 * The fresh-filesystem module and the side-by-side runner on real loop
 * devices and mounts: every filesystem is gone afterwards (no mount, no loop
 * device, no directory), also when the timed command or the caller fails.
 */
import { access, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import test from "ava";
import { FreshFs, dropCaches, withFreshFs } from "../../src/bench/fresh-fs.js";
import { type Contender, commandContender, formatCaseResults, runCase } from "../../src/bench/side-by-side.js";
import { timeCall, timeCommand } from "../../src/bench/timer.js";
import { C, mount, umount2 } from "../../src/native.js";
import { mountsUnder } from "../../src/util/mountinfo.js";

const SMALL = { size: 512 * 2 ** 20 };

/** Loop devices whose backing file lies under `dir`. */
async function loopsUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const dev of await readdir("/sys/block")) {
    if (!dev.startsWith("loop")) continue;
    const backing = await readFile(`/sys/block/${dev}/loop/backing_file`, "utf8").catch(() => "");
    if (backing.trim().startsWith(`${dir}/`)) out.push(dev);
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Asserts that nothing of the fresh filesystem at `mnt` is left. */
async function assertGone(t: import("ava").ExecutionContext, mnt: string): Promise<void> {
  const dir = dirname(mnt);
  t.deepEqual(await mountsUnder(dir), [], "no mount left");
  t.deepEqual(await loopsUnder(dir), [], "no loop device left");
  t.false(await exists(dir), "its directory is removed");
}

test("FreshFs.create() mounts a new ext4 on its own loop device and dispose() removes every trace", async (t) => {
  const fs = await FreshFs.create(SMALL);
  let disposed = false;
  t.teardown(() => (disposed ? undefined : fs.dispose()));
  t.deepEqual(await mountsUnder(fs.path), [fs.path]);
  t.is((await loopsUnder(dirname(fs.path))).length, 1);
  t.regex(await readFile("/proc/self/mountinfo", "utf8"), new RegExp(` ${fs.path} .* - ext4 ${fs.device} `));
  t.deepEqual(await readdir(fs.path), ["lost+found"], "a new, empty filesystem");
  // Something a run left mounted inside it goes too.
  await mkdir(join(fs.path, "inner"));
  await mount("tmpfs", join(fs.path, "inner"), "tmpfs", 0, "size=1m");
  await writeFile(join(fs.path, "inner", "f"), "x");
  await fs.dispose();
  disposed = true;
  await assertGone(t, fs.path);
  await fs.dispose(); // twice is harmless
});

test("FreshFs.create() makes xfs when asked", async (t) => {
  await withFreshFs({ ...SMALL, type: "xfs" }, async (fs) => {
    t.regex(await readFile("/proc/self/mountinfo", "utf8"), new RegExp(` ${fs.path} .* - xfs `));
    t.regex(fs.describe(), /^xfs /);
  });
});

test("FreshFs.create() refuses an unknown type or a tiny size with ERR_INVALID_OPTION", async (t) => {
  await t.throwsAsync(FreshFs.create({ type: "btrfs" as "xfs" }), { code: "ERR_INVALID_OPTION" });
  await t.throwsAsync(FreshFs.create({ size: 1 << 20 }), { code: "ERR_INVALID_OPTION" });
});

test("FreshFs.create() leaves nothing behind when mkfs fails", async (t) => {
  // A parent on a 64 KiB tmpfs: the sparse loop file fits, mkfs's metadata does not.
  const parent = await mkdtemp("/var/tmp/strata-freshfs-test-");
  t.teardown(async () => {
    await umount2(parent, C.MNT_DETACH).catch(() => undefined);
    await rm(parent, { recursive: true, force: true });
  });
  await mount("tmpfs", parent, "tmpfs", 0, "size=64k");
  await t.throwsAsync(FreshFs.create({ ...SMALL, parent }), { code: "ERR_FRESH_FS", message: /mkfs.ext4/ });
  t.deepEqual(await readdir(parent), [], "the temporary directory is removed");
  t.deepEqual(await loopsUnder(parent), []);
});

test("withFreshFs() removes the filesystem when the run throws, and rethrows the run's error", async (t) => {
  let mnt = "";
  const err = await t.throwsAsync(
    withFreshFs(SMALL, async (fs) => {
      mnt = fs.path;
      await writeFile(join(fs.path, "half-done"), "x");
      throw new Error("the run failed");
    }),
  );
  t.is(err?.message, "the run failed");
  await assertGone(t, mnt);
});

test("runCase() with a failing command removes its filesystem and reports the command with ERR_BENCH_COMMAND", async (t) => {
  const seen: string[] = [];
  const failing = commandContender("fails", (fs) => {
    seen.push(fs.path);
    return ["sh", ["-c", `mkdir ${fs.path}/x && echo 'no such layer' >&2 && exit 3`]];
  });
  const err = await t.throwsAsync(
    runCase(
      { name: "broken", contenders: [failing], reference: "fails" },
      {
        rounds: 2,
        fs: SMALL,
      },
    ),
  );
  t.is((err as { code?: string }).code, "ERR_BENCH_COMMAND");
  t.regex(err!.message, /exit 3: no such layer/);
  t.is(seen.length, 1, "the first failure stops the case");
  await assertGone(t, seen[0]!);
});

test("runCase() alternates the order, runs each contender on its own cold filesystem and takes medians", async (t) => {
  const order: string[] = [];
  const mounts = new Set<string>();
  const contender = (name: string, seconds: number): Contender =>
    commandContender(name, (fs) => ["sh", ["-c", `sleep ${seconds}; echo ${name} > ${fs.path}/out`]], {
      prepare: async (fs) => {
        order.push(name);
        mounts.add(fs.path);
        t.deepEqual(await readdir(fs.path), ["lost+found"], "each run starts on an empty filesystem");
      },
      finish: async (fs) => {
        t.is((await readFile(join(fs.path, "out"), "utf8")).trim(), name);
      },
    });
  const r = await runCase(
    { name: "sleep", contenders: [contender("fast", 0.05), contender("slow", 0.25)], reference: "slow" },
    { rounds: 3, fs: SMALL },
  );
  t.deepEqual(order, ["fast", "slow", "slow", "fast", "fast", "slow"]);
  t.is(mounts.size, 6, "a new filesystem for every run");
  for (const m of mounts) await assertGone(t, m);
  const [fast, slow] = r.results;
  t.is(fast!.samples.length, 3);
  t.true(fast!.median.wall >= 0.05 && slow!.median.wall >= 0.25);
  t.true(fast!.median.synced >= fast!.median.wall);
  t.true(fast!.ratio > 0 && fast!.ratio < 1, `fast / slow = ${fast!.ratio}`);
  t.is(slow!.ratio, 1);
  const table = formatCaseResults([r], { rounds: 3, fs: SMALL });
  t.regex(table, /Filesystem: ext4 \(mkfs.ext4 defaults, journal on\)/);
  t.regex(table, /\| sleep \| slow \(reference\) \|/);
});

test("timeCommand() counts the child's CPU and timeCall() this process's", async (t) => {
  const busy = await timeCommand("sh", ["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"]);
  t.true(busy.user > 0.05, `user ${busy.user}`);
  t.true(busy.user + busy.sys <= busy.wall + 0.05, "one single-threaded child: CPU ≤ wall");
  const { sample, result } = await timeCall(async () => {
    let x = 0;
    for (let i = 0; i < 3e7; i++) x += i;
    return x;
  });
  t.true(result > 0);
  t.true(sample.user > 0.005, `user ${sample.user}`);
  t.is(sample.synced, sample.wall, "no sync asked");
  await t.throwsAsync(timeCommand("/nonexistent/tool", []), { code: "ERR_BENCH_COMMAND" });
});

test("dropCaches() empties the page cache", async (t) => {
  await withFreshFs(SMALL, async (fs) => {
    const f = join(fs.path, "cached");
    await writeFile(f, Buffer.alloc(32 << 20, 1));
    const cachedKiB = async () => Number(/^Cached:\s+(\d+)/m.exec(await readFile("/proc/meminfo", "utf8"))![1]);
    const before = await cachedKiB();
    await dropCaches();
    t.true((await cachedKiB()) < before, "Cached shrank");
  });
});
