/** Pools made by thin_restore from the reference XMLs open in the engine and read back their mapped blocks. */
import { copyFile, open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import test from "ava";
import { ThinPool } from "../../src/thinpool/index.js";
import { tempDir } from "../helpers/tmp.js";
import { run, stopPool, thinCheck, thinDump } from "./helpers.js";

const REFERENCE = "/work/shared/reference/dm-thin";
const BLOCK = 65536;

/** Data block `b` holds its own number in every 8-byte word, so a read shows which block it came from. */
function blockContent(b: number): Buffer {
  const buf = Buffer.alloc(BLOCK);
  for (let i = 0; i < BLOCK; i += 8) buf.writeBigUInt64LE(BigInt(b) + 1n, i);
  return buf;
}

for (const sample of ["sample.xml", "sample3dev.xml"]) {
  test(`thin_restore of ${sample} opens in the engine and reads back every mapped block`, async (t) => {
    const dir = await tempDir(t, "strata-restore-");
    const meta = join(dir, "meta.bin");
    const data = join(dir, "data.bin");
    await writeFile(meta, "");
    await run("truncate", ["-s", "4M", meta]);
    await copyFile(join(REFERENCE, sample), join(dir, sample));
    await run("thin_restore", ["-i", join(dir, sample), "-o", meta]);
    const expected = await thinDump(meta);
    const nrData = Number(/nr_data_blocks="(\d+)"/.exec((await run("thin_dump", [meta])).stdout)?.[1]);
    const fh = await open(data, "w");
    for (let b = 0; b < nrData; b++) await fh.write(blockContent(b), 0, BLOCK, b * BLOCK);
    await fh.close();

    const pool = await ThinPool.open(join(dir, "pool"), { dataFile: data, metadataFile: meta });
    t.teardown(() => stopPool(pool));
    const info = await pool.info();
    t.deepEqual(
      info.devices.map((d) => [d.id, d.mappedBlocks]),
      expected.devices.map((d) => [d.id, d.mappedBlocks]),
    );
    for (const dev of expected.devices) {
      const maxVb = Math.max(...dev.map.keys());
      const loop = await pool.activate(dev.id, (maxVb + 2) * BLOCK);
      const lh = await open(loop, "r");
      const buf = Buffer.alloc(BLOCK);
      let checked = 0;
      for (let vb = 0; vb <= maxVb + 1; vb++) {
        await lh.read(buf, 0, BLOCK, vb * BLOCK);
        const want = dev.map.has(vb) ? blockContent(dev.map.get(vb)!) : Buffer.alloc(BLOCK);
        if (!buf.equals(want)) t.fail(`device ${dev.id} block ${vb} differs`);
        checked++;
      }
      await lh.close();
      await pool.deactivate(dev.id);
      t.is(checked, maxVb + 2);
    }
    // A message makes the engine commit: the metadata is rewritten in its own layout.
    await pool.setTransactionId(expected.transaction, expected.transaction + 1);
    await stopPool(pool);
    await thinCheck(meta);
    const after = await thinDump(meta);
    t.deepEqual(
      after.devices.map((d) => [d.id, d.mappedBlocks, d.creationTime, d.snapTime, [...d.map]]),
      expected.devices.map((d) => [d.id, d.mappedBlocks, d.creationTime, d.snapTime, [...d.map]]),
    );
    t.is(after.transaction, expected.transaction + 1);
  });
}
