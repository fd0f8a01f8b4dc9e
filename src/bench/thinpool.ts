/**
 * Benchmark of the userspace thin pool (`npm run bench:thinpool`): ext4 on a
 * thin device vs ext4 on a plain loop file, side by side in one run —
 * sequential 1 GiB write (dd, fsync) and read (dd, O_DIRECT), 4 KiB random
 * writes (fio, fsync at the end) — and the latency of `create_snap` of a
 * device with 20,000 mapped blocks (median). Prints figures and ratios.
 *
 * Environment: STRATA_BENCH_DIR (default os.tmpdir()), STRATA_BENCH_SEQ_MIB
 * (default 1024), STRATA_BENCH_RAND_MIB (file for random writes, default 256),
 * STRATA_BENCH_SNAPS (samples, default 21).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, open, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { C, attachLoop, detachLoop, mount, umount2 } from "../native.js";
import { request } from "../thinpool/client.js";
import { ThinPool } from "../thinpool/index.js";

const run = promisify(execFile);
const SEQ_MIB = Number(process.env.STRATA_BENCH_SEQ_MIB ?? 1024);
const RAND_MIB = Number(process.env.STRATA_BENCH_RAND_MIB ?? 256);
const SNAPS = Number(process.env.STRATA_BENCH_SNAPS ?? 21);
const DEVICE_BYTES = 4 * 2 ** 30;

interface Figures {
  seqWriteMBs: number;
  seqReadMBs: number;
  randWriteIops: number;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** mkfs.ext4 on `dev`, mount, run the three workloads, unmount. */
async function workloads(dev: string, mnt: string): Promise<Figures> {
  await run("mkfs.ext4", ["-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", dev]);
  await mount(dev, mnt, "ext4", 0, null);
  try {
    const seq = join(mnt, "seq");
    const w = await timed(() =>
      run("dd", ["if=/dev/zero", `of=${seq}`, "bs=1M", `count=${SEQ_MIB}`, "conv=fsync", "status=none"]),
    );
    const r = await timed(() => run("dd", [`if=${seq}`, "of=/dev/null", "bs=1M", "iflag=direct", "status=none"]));
    await rm(seq);
    const fio = await run("fio", [
      "--name=rand",
      `--filename=${join(mnt, "rand")}`,
      `--size=${RAND_MIB}M`,
      "--rw=randwrite",
      "--bs=4k",
      "--ioengine=psync",
      "--direct=1",
      "--numjobs=1",
      "--time_based=0",
      "--end_fsync=1",
      "--output-format=json",
    ]);
    const job = (JSON.parse(fio.stdout) as { jobs: { write: { iops: number } }[] }).jobs[0];
    return {
      seqWriteMBs: (SEQ_MIB * 1.048576) / w,
      seqReadMBs: (SEQ_MIB * 1.048576) / r,
      randWriteIops: job.write.iops,
    };
  } finally {
    await umount2(mnt, C.MNT_DETACH);
  }
}

async function snapshotLatency(pool: ThinPool): Promise<{ medianMs: number; mapped: number }> {
  await pool.createThin(10);
  const blockSize = (await pool.info()).dataBlockSize;
  await pool.activate(10, 20_000 * blockSize);
  const fh = await open(join(pool.layout.mountPoint, "10"), "r+");
  const buf = Buffer.alloc(4096, 7);
  for (let b = 0; b < 20_000; b++) await fh.write(buf, 0, buf.length, b * blockSize);
  await fh.sync();
  await fh.close();
  const mapped = (await pool.info()).devices.find((d) => d.id === 10)?.mappedBlocks ?? 0;
  const times: number[] = [];
  for (let i = 0; i < SNAPS; i++) {
    const s = await timed(() => request(pool.layout.socket, `message create_snap ${1000 + i} 10`));
    times.push(s * 1000);
  }
  for (let i = 0; i < SNAPS; i++) await pool.deleteDevice(1000 + i);
  await pool.deactivate(10);
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)], mapped };
}

async function main() {
  const base = await mkdtemp(join(process.env.STRATA_BENCH_DIR ?? tmpdir(), "strata-bench-thinpool-"));
  const mnt = join(base, "mnt");
  await mkdir(mnt);
  let pool: ThinPool | null = null;
  let plainLoop: string | null = null;
  try {
    // Plain loop file, direct I/O, the reference.
    const plainFile = join(base, "plain.img");
    await writeFile(plainFile, "");
    await truncate(plainFile, DEVICE_BYTES);
    plainLoop = (await attachLoop(plainFile, { directIO: true, autoclear: false })).device;
    const plain = await workloads(plainLoop, mnt);
    await detachLoop(plainLoop);
    plainLoop = null;
    await rm(plainFile);

    pool = await ThinPool.create({ dir: join(base, "pool"), dataSize: DEVICE_BYTES + (1 << 30) });
    await pool.createThin(1);
    const thinDev = await pool.activate(1, DEVICE_BYTES);
    const thin = await workloads(thinDev, mnt);
    await pool.deactivate(1);
    const snap = await snapshotLatency(pool);

    const row = (name: string, unit: string, p: number, t: number) =>
      console.log(
        `${name.padEnd(28)} plain loop ${p.toFixed(1).padStart(9)} ${unit.padEnd(5)} thin ${t.toFixed(1).padStart(9)} ${unit.padEnd(5)} ratio ${(t / p).toFixed(2)}`,
      );
    console.log(
      `ext4 on a thin device vs ext4 on a plain loop file (${SEQ_MIB} MiB sequential, ${RAND_MIB} MiB random file)`,
    );
    row("sequential write (dd fsync)", "MB/s", plain.seqWriteMBs, thin.seqWriteMBs);
    row("sequential read (dd direct)", "MB/s", plain.seqReadMBs, thin.seqReadMBs);
    row("4 KiB random write (fio)", "IOPS", plain.randWriteIops, thin.randWriteIops);
    console.log(
      `create_snap of a device with ${snap.mapped} mapped blocks: median ${snap.medianMs.toFixed(2)} ms over ${SNAPS}`,
    );
  } finally {
    if (plainLoop) await detachLoop(plainLoop).catch(() => {});
    await umount2(mnt, C.MNT_DETACH).catch(() => {});
    if (pool) await pool.close().catch((e: Error) => console.error(`close: ${e.message}`));
    await rm(base, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(`bench:thinpool: ${err.message}`);
  process.exit(1);
});
