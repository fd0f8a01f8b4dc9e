/** The pool daemon's life cycle: it outlives the starting command, bad input fails cleanly, a crash is recovered. */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { PoolError, ThinPool, loopsBackedUnder } from "../../src/thinpool/index.js";
import { tempDir } from "../helpers/tmp.js";
import { killDaemon, makePool, stopPool, thinCheck } from "./helpers.js";

const execFileP = promisify(execFile);
const poolModule = fileURLToPath(new URL("../../src/thinpool/index.js", import.meta.url));

test("the daemon started by one process outlives it and serves the next one", async (t) => {
  const dir = await tempDir(t, "strata-pool-");
  t.teardown(async () => {
    const p = await ThinPool.open(dir).catch(() => null);
    if (p) await stopPool(p);
  });
  const script = `
    const { ThinPool } = await import(${JSON.stringify(poolModule)});
    const pool = await ThinPool.create({ dir: ${JSON.stringify(dir)}, dataSize: 64 << 20, metadataSize: 8 << 20 });
    await pool.createThin(5);
    console.log(pool.pid);`;
  const { stdout } = await execFileP(process.execPath, ["--input-type=module", "-e", script]);
  const pid = Number(stdout.trim());
  t.true(pid > 0);
  const pool = await ThinPool.open(dir);
  t.is(pool.pid, pid, "the same daemon answers");
  t.deepEqual(
    (await pool.info()).devices.map((d) => d.id),
    [5],
  );
  await pool.close();
  // Gone, or a zombie waiting for init to reap it (it is not our child).
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  t.true(stat === "" || /\) Z /.test(stat), "close stops the daemon");
  await thinCheck(pool.layout.metadataFile);
});

test("bad input fails with one clear typed error and leaves nothing half done", async (t) => {
  const dir = await tempDir(t, "strata-pool-");
  const code = async (p: Promise<unknown>) => ((await t.throwsAsync(p)) as PoolError).code;
  t.is(await code(ThinPool.create({ dir, dataSize: 1 << 20, blockSize: 4096 })), "ERR_POOL_INVALID");
  t.is(await code(ThinPool.create({ dir, dataSize: 1000 })), "ERR_POOL_INVALID");
  t.is(await code(ThinPool.open(join(dir, "nothing"))), "ERR_POOL_NOT_FOUND");
  const { pool, dir: poolDir } = await makePool(t);
  t.is(await code(ThinPool.create({ dir: poolDir, dataSize: 1 << 20 })), "ERR_POOL_EXISTS");
  t.is(await code(pool.activate(42, 1 << 20)), "ERR_POOL_DEVICE_NOT_FOUND");
  await pool.createThin(1);
  t.is(await code(pool.activate(1, 1000)), "ERR_POOL_INVALID");

  // Metadata that is not dm-thin: the daemon refuses it with its reason.
  const junk = join(dir, "junk-meta");
  await writeFile(junk, Buffer.alloc(1 << 20, 0x5a));
  const err = (await t.throwsAsync(
    ThinPool.open(join(dir, "junk"), { dataFile: join(dir, "junk-data"), metadataFile: junk }),
  )) as PoolError;
  t.true(err instanceof PoolError);
  t.regex(err.message, /superblock block 0 has a bad checksum|cannot open/);
});

test("after SIGKILL of the keeper and the daemon the next command detaches stale loops, cleans the mount and reopens the last commit", async (t) => {
  const { pool, dir } = await makePool(t);
  await pool.createThin(1);
  const dev = await pool.activate(1, 16 << 20);
  const maxKib = await readFile(`/sys/block/${dev.replace("/dev/", "")}/queue/max_sectors_kb`, "utf8");
  t.is(maxKib.trim(), "1024", "loop requests are capped at the daemon's FUSE request size");
  await pool.createThin(2);
  const oldPid = pool.pid;
  await killDaemon(pool); // keeper too: nothing takes over

  t.deepEqual(
    (await loopsBackedUnder(pool.layout.mountPoint)).map((l) => l.device),
    [dev],
    "the loop is still bound before recovery",
  );
  const again = await ThinPool.open(dir);
  t.not(again.pid, oldPid);
  t.deepEqual(await loopsBackedUnder(pool.layout.mountPoint), []);
  t.deepEqual(
    (await again.info()).devices.map((d) => d.id),
    [1, 2],
  );
  await again.activate(1, 16 << 20);
  await stopPool(again);
  await thinCheck(again.layout.metadataFile);
});
