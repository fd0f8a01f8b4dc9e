/**
 * The daemon's read-ahead for sequential reads: direct sequential reads see
 * every write, discard and snapshot that completed before them, whether the
 * bytes come from a read-ahead window or from the pool.
 */
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { tempDir } from "../helpers/tmp.js";
import { makePool, run, stopPool, thinCheck } from "./helpers.js";

const MiB = 1 << 20;

/** `count` MiB of `dev` from MiB `skip`, read with direct I/O one MiB at a time (a sequential stream). */
async function readDirect(dev: string, skip: number, count: number, out: string): Promise<Buffer> {
  await run("dd", [`if=${dev}`, `of=${out}`, "bs=1M", `skip=${skip}`, `count=${count}`, "iflag=direct", "status=none"]);
  return readFile(out);
}

async function writeDirect(dev: string, seek: number, data: Buffer, file: string): Promise<void> {
  await writeFile(file, data);
  await run("dd", [
    `if=${file}`,
    `of=${dev}`,
    "bs=1M",
    `seek=${seek}`,
    "oflag=direct",
    "conv=fsync,notrunc",
    "status=none",
  ]);
}

test("sequential direct reads see writes, discards and snapshots made between them", async (t) => {
  const { pool } = await makePool(t);
  const work = await tempDir(t);
  const tmp = (n: string) => join(work, n);
  await pool.createThin(0);
  const dev = await pool.activate(0, 64 << 20);
  const data = randomBytes(32 * MiB);
  await writeDirect(dev, 0, data, tmp("in"));
  t.true((await readDirect(dev, 0, 32, tmp("a"))).equals(data), "first sequential read");

  // Read MiB 0-8 (a window now holds some MiB of what follows, within 1-12), overwrite MiB 4-16, read it again.
  await readDirect(dev, 0, 8, tmp("b"));
  const patch = randomBytes(12 * MiB);
  await writeDirect(dev, 4, patch, tmp("patch"));
  patch.copy(data, 4 * MiB);
  t.true((await readDirect(dev, 4, 12, tmp("c"))).equals(data.subarray(4 * MiB, 16 * MiB)), "the write is seen");

  // Same with a discard inside the window.
  await readDirect(dev, 16, 4, tmp("d"));
  await run("blkdiscard", ["-o", String(18 * MiB), "-l", String(10 * MiB), dev]);
  data.fill(0, 18 * MiB, 28 * MiB);
  t.true((await readDirect(dev, 18, 10, tmp("e"))).equals(data.subarray(18 * MiB, 28 * MiB)), "the discard is seen");

  // A snapshot, then a write to the origin: the snapshot keeps the old bytes, the origin reads the new.
  await pool.message("create_snap 1 0");
  const snap = await pool.activate(1, 64 << 20);
  const old = data.subarray(0, 8 * MiB);
  await readDirect(snap, 0, 2, tmp("f"));
  await readDirect(dev, 0, 2, tmp("g"));
  const fresh = randomBytes(4 * MiB);
  await writeDirect(dev, 3, fresh, tmp("fresh"));
  t.true((await readDirect(snap, 2, 6, tmp("h"))).equals(old.subarray(2 * MiB)), "the snapshot keeps its bytes");
  const want = Buffer.concat([old.subarray(2 * MiB, 3 * MiB), fresh, old.subarray(7 * MiB)]);
  t.true((await readDirect(dev, 2, 6, tmp("i"))).equals(want), "the origin reads the new bytes");

  await pool.deactivate(1);
  await pool.deactivate(0);
  const meta = pool.layout.metadataFile;
  await stopPool(pool);
  await thinCheck(meta);
});
