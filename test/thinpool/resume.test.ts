/**
 * The daemon SIGKILLed alone, during direct writes to an active device
 * (STRATA_POOL_RESUME_RUNS times, default 5): its keeper starts a new daemon
 * on the same FUSE connection, so the loop device keeps working: the write in
 * flight completes without an error, and every block written reads back,
 * also the ones the dead daemon had mapped but not committed (replayed from
 * its journal). thin_check passes afterwards.
 */
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { ThinPool } from "../../src/thinpool/index.js";
import { tempDir } from "../helpers/tmp.js";
import { makePool, run, stopPool, thinCheck } from "./helpers.js";

const RUNS = Number(process.env.STRATA_POOL_RESUME_RUNS ?? 5);
const CHUNK_MIB = 32;

test("SIGKILL of the daemon alone: a new one takes over the connection and loses no write", async (t) => {
  const { pool, dir } = await makePool(t, { dataSize: 1 << 30 });
  const work = await tempDir(t, "strata-resume-");
  await pool.createThin(1);
  const dev = await pool.activate(1, (RUNS + 1) * CHUNK_MIB * 2 ** 20);
  const sums: string[] = [];
  let current = pool;
  for (let r = 0; r < RUNS; r++) {
    const src = join(work, `chunk${r}`);
    await writeFile(src, randomBytes(CHUNK_MIB << 20));
    sums.push((await run("sha256sum", [src])).stdout.slice(0, 64));
    const dd = run("dd", [`if=${src}`, `of=${dev}`, "bs=1M", `seek=${r * CHUNK_MIB}`, "oflag=direct", "status=none"]);
    await new Promise((res) => setTimeout(res, 30 + Math.random() * 120));
    const old = current.pid;
    process.kill(old, "SIGKILL");
    await t.notThrowsAsync(dd, `run ${r}: the write in flight completes`);
    current = await ThinPool.open(dir);
    t.not(current.pid, old, `run ${r}: a new daemon serves`);
    t.is(await current.deviceOf(1), dev, `run ${r}: the same loop device`);
  }
  for (let r = 0; r < RUNS; r++) {
    const out = join(work, `back${r}`);
    await run("dd", [`if=${dev}`, `of=${out}`, "bs=1M", `skip=${r * CHUNK_MIB}`, `count=${CHUNK_MIB}`, "iflag=direct"]);
    t.is((await run("sha256sum", [out])).stdout.slice(0, 64), sums[r], `chunk ${r} reads back`);
  }
  const log = await readFile(current.layout.log, "utf8");
  const takeovers = log.match(/took over serving/g)?.length ?? 0;
  t.is(takeovers, RUNS, "each kill was followed by a takeover");
  t.true(/mappings since the last commit replayed/.test(log), "some takeover replayed uncommitted mappings");
  await current.deactivate(1);
  await stopPool(current);
  await thinCheck(current.layout.metadataFile);
  t.is(pool.layout.dir, current.layout.dir);
});
