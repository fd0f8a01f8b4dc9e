/** The pool engine through its daemon: messages, copy-on-write, errors, checked with thin_check/thin_dump/thin_ls/thin_delta. */
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { PoolError } from "../../src/thinpool/index.js";
import { makePool, run, stopPool, thinCheck, thinDump } from "./helpers.js";

const BLOCK = 65536;

/** A block-sized buffer whose every byte is `tag`. */
const pattern = (tag: number) => Buffer.alloc(BLOCK, tag);

async function writeBlock(device: string, vblock: number, data: Buffer) {
  const fh = await open(device, "r+");
  try {
    await fh.write(data, 0, data.length, vblock * BLOCK);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readBlock(device: string, vblock: number): Promise<Buffer> {
  const fh = await open(device, "r");
  try {
    const buf = Buffer.alloc(BLOCK);
    await fh.read(buf, 0, BLOCK, vblock * BLOCK);
    return buf;
  } finally {
    await fh.close();
  }
}

test("create_thin, writes, create_snap and copy-on-write match thin_dump, thin_ls and thin_delta", async (t) => {
  const { pool } = await makePool(t);
  await pool.createThin(0);
  const dev0 = await pool.activate(0, 64 << 20);
  t.regex(dev0, /^\/dev\/loop\d+$/);
  for (const vb of [0, 1, 2, 10]) await writeBlock(dev0, vb, pattern(vb + 1));
  t.deepEqual(await readBlock(dev0, 5), Buffer.alloc(BLOCK), "an unmapped block reads as zeros");

  await pool.createSnap(1, 0);
  const dev1 = await pool.activate(1, 64 << 20);
  await writeBlock(dev0, 1, pattern(0xaa)); // CoW on the origin
  await writeBlock(dev1, 2, pattern(0xbb)); // CoW on the snapshot
  await writeBlock(dev1, 20, pattern(0xcc)); // a new block on the snapshot only
  t.deepEqual(await readBlock(dev0, 1), pattern(0xaa));
  t.deepEqual(await readBlock(dev1, 1), pattern(2), "the snapshot keeps the old data");
  t.deepEqual(await readBlock(dev0, 2), pattern(3), "the origin keeps its data");
  t.deepEqual(await readBlock(dev1, 2), pattern(0xbb));
  t.deepEqual(await readBlock(dev0, 20), Buffer.alloc(BLOCK));

  // Copy-on-write leaves each side the only owner of its old or new copy of blocks 1 and 2.
  const info = await pool.info();
  t.deepEqual(
    info.devices.map((d) => [d.id, d.mappedBlocks, d.exclusiveBlocks]),
    [
      [0, 4, 2],
      [1, 5, 3],
    ],
  );
  t.is(info.time, 1, "create_snap advances the pool time");
  await pool.setTransactionId(0, 7);
  const status = await pool.status();
  t.is(status.transactionId, 7);
  t.is(status.usedDataBlocks, 7);
  t.is(status.mode, "rw");
  const meta = pool.layout.metadataFile;
  await stopPool(pool);

  t.regex(await thinCheck(meta), /checking space map counts/);
  const dump = await thinDump(meta);
  t.is(dump.transaction, 7);
  t.is(dump.time, 1);
  const [d0, d1] = dump.devices;
  t.deepEqual([d0.id, d0.mappedBlocks, d0.creationTime, d0.snapTime], [0, 4, 0, 1]);
  t.deepEqual([d1.id, d1.mappedBlocks, d1.creationTime, d1.snapTime], [1, 5, 1, 1]);
  t.deepEqual(
    [...d0.map.keys()].sort((a, b) => a - b),
    [0, 1, 2, 10],
  );
  t.deepEqual(
    [...d1.map.keys()].sort((a, b) => a - b),
    [0, 1, 2, 10, 20],
  );
  t.is(d0.map.get(0), d1.map.get(0), "untouched blocks stay shared");
  t.is(d0.map.get(10), d1.map.get(10));
  t.not(d0.map.get(1), d1.map.get(1), "written blocks are copied");
  t.not(d0.map.get(2), d1.map.get(2));

  const ls = (await run("thin_ls", ["--no-headers", "-o", "DEV,MAPPED_BLOCKS,EXCLUSIVE_BLOCKS", meta])).stdout;
  const rows = ls
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number));
  t.deepEqual(rows, [
    [0, 4, 2],
    [1, 5, 3],
  ]);
  const delta = (await run("thin_delta", ["--snap1", "0", "--snap2", "1", meta])).stdout;
  t.regex(delta, /<different begin="1" .*length="2"/);
  t.regex(delta, /<right_only begin="20" .*length="1"/);
});

test("messages fail with typed errors and leave the pool consistent", async (t) => {
  const { pool } = await makePool(t);
  await pool.createThin(3);
  const code = async (p: Promise<unknown>) => ((await t.throwsAsync(p)) as PoolError).code;
  t.is(await code(pool.createThin(3)), "ERR_POOL_DEVICE_EXISTS");
  t.is(await code(pool.createSnap(4, 99)), "ERR_POOL_DEVICE_NOT_FOUND");
  t.is(await code(pool.deleteDevice(99)), "ERR_POOL_DEVICE_NOT_FOUND");
  t.is(await code(pool.setTransactionId(5, 6)), "ERR_POOL_INVALID");
  t.is(await code(pool.message("frobnicate 1")), "ERR_POOL_INVALID");
  t.is(await code(pool.createThin(1 << 24)), "ERR_POOL_INVALID");
  await pool.activate(3, 8 << 20);
  t.is(await code(pool.deleteDevice(3)), "ERR_POOL_BUSY");
  await pool.deactivate(3);
  await pool.deleteDevice(3);
  t.deepEqual((await pool.info()).devices, []);
  const meta = pool.layout.metadataFile;
  await stopPool(pool);
  await thinCheck(meta);
});

test("discard unmaps blocks, returns them to the pool and punches holes in the data file", async (t) => {
  const { pool } = await makePool(t);
  await pool.createThin(0);
  const dev = await pool.activate(0, 32 << 20);
  await run("dd", ["if=/dev/urandom", `of=${dev}`, "bs=1M", "count=16", "oflag=direct", "conv=fsync"]);
  t.is((await pool.status()).usedDataBlocks, 256);
  await pool.commit();
  const before = (await run("du", ["-B1", pool.layout.dataFile])).stdout;
  await run("blkdiscard", ["-o", String(4 << 20), "-l", String(8 << 20), dev]);
  await pool.commit();
  t.is((await pool.status()).usedDataBlocks, 128);
  const after = (await run("du", ["-B1", pool.layout.dataFile])).stdout;
  t.true(
    parseInt(after, 10) <= parseInt(before, 10) - (8 << 20),
    `data file shrank: ${before.trim()} -> ${after.trim()}`,
  );
  const fh = await open(dev, "r");
  const buf = Buffer.alloc(8 << 20);
  await fh.read(buf, 0, buf.length, 4 << 20);
  await fh.close();
  t.true(buf.equals(Buffer.alloc(8 << 20)), "discarded range reads as zeros");
  const meta = pool.layout.metadataFile;
  await stopPool(pool);
  await thinCheck(meta);
  t.is((await thinDump(meta)).devices[0].map.size, 128);
});

test("a full pool fails writes with ENOSPC, stays consistent, and grows", async (t) => {
  const { pool } = await makePool(t, { dataSize: 1 << 20 }); // 16 blocks
  await pool.createThin(0);
  await pool.activate(0, 8 << 20);
  const file = join(pool.layout.mountPoint, "0");
  const fh = await open(file, "r+");
  t.teardown(() => fh.close().catch(() => {}));
  await fh.write(Buffer.alloc(1 << 20, 1), 0, 1 << 20, 0);
  const err = (await t.throwsAsync(fh.write(Buffer.alloc(BLOCK, 2), 0, BLOCK, 2 << 20))) as NodeJS.ErrnoException;
  t.is(err.code, "ENOSPC");
  const status = await pool.status();
  t.is(status.mode, "out_of_data_space");
  t.is(status.usedDataBlocks, 16);
  await pool.commit();
  await thinCheck(pool.layout.metadataFile);
  await pool.grow(2 << 20);
  t.is((await stat(pool.layout.dataFile)).size, 2 << 20);
  await fh.write(Buffer.alloc(BLOCK, 2), 0, BLOCK, 2 << 20);
  const s2 = await pool.status();
  t.deepEqual([s2.mode, s2.usedDataBlocks, s2.totalDataBlocks], ["rw", 17, 32]);
  await fh.close();
  const meta = pool.layout.metadataFile;
  await stopPool(pool);
  await thinCheck(meta);
  t.deepEqual(await readFile(file).catch((e: NodeJS.ErrnoException) => e.code), "ENOENT");
});

test("snapshots share their origin's committed tree across a reopen, and copy-on-write still splits them", async (t) => {
  const { pool, dir } = await makePool(t);
  await pool.createThin(0);
  const dev0 = await pool.activate(0, 64 << 20);
  const fill = Buffer.alloc(600 * BLOCK);
  for (let vb = 0; vb < 600; vb++) fill.fill(vb & 0xff, vb * BLOCK, (vb + 1) * BLOCK);
  await writeBlock(dev0, 0, fill);
  await pool.deactivate(0);
  await pool.createSnap(1, 0);
  await pool.createSnap(2, 0); // three devices on one subtree: metadata count 3
  await pool.commit();
  await thinCheck(pool.layout.metadataFile);
  await stopPool(pool);
  await thinCheck(pool.layout.metadataFile);

  const { ThinPool } = await import("../../src/thinpool/index.js");
  const again = await ThinPool.open(dir);
  t.teardown(() => stopPool(again));
  t.deepEqual(
    (await again.info()).devices.map((d) => [d.id, d.mappedBlocks, d.exclusiveBlocks]),
    [
      [0, 600, 0],
      [1, 600, 0],
      [2, 600, 0],
    ],
  );
  const dev1 = await again.activate(1, 64 << 20);
  await writeBlock(dev1, 7, pattern(0xee));
  t.deepEqual(await readBlock(dev1, 7), pattern(0xee));
  t.deepEqual(await readBlock(dev1, 8), pattern(8));
  await again.deactivate(1);
  const dev2 = await again.activate(2, 64 << 20);
  t.deepEqual(await readBlock(dev2, 7), pattern(7));
  await again.deactivate(2);
  await stopPool(again);
  await thinCheck(again.layout.metadataFile);
  const dump = await thinDump(again.layout.metadataFile);
  t.is(dump.devices[0].map.get(7), dump.devices[2].map.get(7));
  t.not(dump.devices[0].map.get(7), dump.devices[1].map.get(7));
});
