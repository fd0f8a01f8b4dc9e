/**
 * Benchmark of the userspace thin pool (`npm run bench:thinpool`): ext4 on a
 * thin device vs ext4 on a plain loop file, side by side in one run —
 * sequential 1 GiB write (dd, fsync) and read (dd, O_DIRECT), 4 KiB random
 * writes (fio, 15 s, fsync at the end) — and the latency of `create_snap` of a
 * device with 20,000 mapped blocks (median). Prints figures and ratios.
 *
 * Sequential writes, twice: buffered with fsync (`dd conv=fsync`, what the
 * issue names) and `oflag=direct` (the device path alone, without the page
 * cache). Each: one warm-up file per target, then the median of
 * STRATA_BENCH_SEQ_RUNS runs, alternating which target goes first. On this VM
 * a single run's figure depended on its order and on the host (the same code
 * gave the plain loop 600–1,500 MB/s within minutes), so one run decided by
 * order measured the VM, not the pool. Every run writes a new file and keeps
 * it, so each allocates fresh thin blocks rather than overwriting freed ones;
 * the buffered runs then also pay for 1 GiB of new page cache each, the same
 * on both sides, which is why the direct rows are printed too.
 *
 * Environment: STRATA_BENCH_DIR (default os.tmpdir()), STRATA_BENCH_SEQ_MIB
 * (default 1024), STRATA_BENCH_SEQ_RUNS (default 3), STRATA_BENCH_RAND_MIB
 * (file for random writes, default 256), STRATA_BENCH_SNAPS (samples, default 21).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, open, readdir, rm, truncate, writeFile } from "node:fs/promises";
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
const SEQ_RUNS = Number(process.env.STRATA_BENCH_SEQ_RUNS ?? 3);
// Room for the warm-up file and every timed run's file, kept until the end.
const DEVICE_BYTES = Math.max(4 * 2 ** 30, (2 * SEQ_RUNS + 3) * SEQ_MIB * 2 ** 20);

interface Target {
  name: string;
  dev: string;
  mnt: string;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function prepare(target: Target) {
  await mkdir(target.mnt, { recursive: true });
  await run("mkfs.ext4", ["-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", target.dev]);
  await mount(target.dev, target.mnt, "ext4", 0, null);
}

/** dd of SEQ_MIB into a new file: buffered then fsync (`conv=fsync`), or `oflag=direct`. */
async function seqWrite(t: Target, name: string, direct: boolean): Promise<number> {
  const mode = direct ? ["oflag=direct", "conv=fsync"] : ["conv=fsync"];
  const s = await timed(() =>
    run("dd", ["if=/dev/zero", `of=${join(t.mnt, name)}`, "bs=1M", `count=${SEQ_MIB}`, ...mode, "status=none"]),
  );
  return (SEQ_MIB * 1.048576) / s;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mbs = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(" ");

/**
 * A warm-up file on each target (untimed in the median, printed), then
 * SEQ_RUNS timed runs alternating which target goes first; medians in MB/s.
 */
async function seqWrites(a: Target, b: Target, direct: boolean): Promise<[number, number]> {
  const tag = direct ? "direct" : "buffered";
  const warm = [await seqWrite(a, `${tag}-warm-up`, direct), await seqWrite(b, `${tag}-warm-up`, direct)];
  const ra: number[] = [];
  const rb: number[] = [];
  for (let i = 0; i < SEQ_RUNS; i++) {
    const pair: Array<[Target, number[]]> = [
      [a, ra],
      [b, rb],
    ];
    if (i % 2 === 1) pair.reverse();
    for (const [t, out] of pair) out.push(await seqWrite(t, `${tag}-${i}`, direct));
  }
  console.log(
    `  ${tag}: warm-up MB/s ${a.name} ${mbs([warm[0]])}, ${b.name} ${mbs([warm[1]])}; runs MB/s ${a.name} ${mbs(ra)}; ${b.name} ${mbs(rb)}`,
  );
  return [median(ra), median(rb)];
}

async function seqRead(t: Target): Promise<number> {
  const seq = join(t.mnt, `buffered-${SEQ_RUNS - 1}`);
  const s = await timed(() => run("dd", [`if=${seq}`, "of=/dev/null", "bs=1M", "iflag=direct", "status=none"]));
  for (const f of await readdir(t.mnt)) if (/^(buffered|direct)-/.test(f)) await rm(join(t.mnt, f));
  return (SEQ_MIB * 1.048576) / s;
}

async function randWrite(t: Target): Promise<number> {
  const fio = await run("fio", [
    "--name=rand",
    `--filename=${join(t.mnt, "rand")}`,
    `--size=${RAND_MIB}M`,
    "--rw=randwrite",
    "--bs=4k",
    "--ioengine=psync",
    "--direct=1",
    "--runtime=15",
    "--time_based",
    "--end_fsync=1",
    "--output-format=json",
  ]);
  return (JSON.parse(fio.stdout) as { jobs: { write: { iops: number } }[] }).jobs[0].write.iops;
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
  const mounted: string[] = [];
  try {
    // The reference: a plain loop file with direct I/O. Both devices are
    // ready before measuring, and each workload runs on one then the other,
    // so that load from elsewhere on the machine hits both alike.
    const plainFile = join(base, "plain.img");
    await writeFile(plainFile, "");
    await truncate(plainFile, DEVICE_BYTES);
    plainLoop = (await attachLoop(plainFile, { directIO: true, autoclear: false })).device;
    pool = await ThinPool.create({ dir: join(base, "pool"), dataSize: DEVICE_BYTES + 2 ** 30 });
    await pool.createThin(1);
    const plain: Target = { name: "plain", dev: plainLoop, mnt: join(mnt, "plain") };
    const thin: Target = { name: "thin", dev: await pool.activate(1, DEVICE_BYTES), mnt: join(mnt, "thin") };
    mounted.push(plain.mnt, thin.mnt);
    await prepare(plain);
    await prepare(thin);

    const row = (name: string, unit: string, p: number, t: number) =>
      console.log(
        `${name.padEnd(28)} plain loop ${p.toFixed(1).padStart(9)} ${unit.padEnd(5)} thin ${t.toFixed(1).padStart(9)} ${unit.padEnd(5)} ratio ${(t / p).toFixed(2)}`,
      );
    console.log(
      `ext4 on a thin device vs ext4 on a plain loop file (${SEQ_MIB} MiB sequential, median of ${SEQ_RUNS} after a warm-up; 4 KiB random writes for 15 s in a ${RAND_MIB} MiB file)`,
    );
    const [pw, tw] = await seqWrites(plain, thin, false);
    const [pd, td] = await seqWrites(plain, thin, true);
    row("sequential write (dd fsync)", "MB/s", pw, tw);
    row("sequential write (dd direct)", "MB/s", pd, td);
    row("sequential read (dd direct)", "MB/s", await seqRead(plain), await seqRead(thin));
    row("4 KiB random write (fio)", "IOPS", await randWrite(plain), await randWrite(thin));
    for (const m of mounted.splice(0)) await umount2(m);
    await pool.deactivate(1);
    const snap = await snapshotLatency(pool);
    console.log(
      `create_snap of a device with ${snap.mapped} mapped blocks: median ${snap.medianMs.toFixed(2)} ms over ${SNAPS}`,
    );
  } finally {
    for (const m of mounted) await umount2(m, C.MNT_DETACH).catch(() => {});
    if (plainLoop) await detachLoop(plainLoop).catch(() => {});
    if (pool) await pool.close().catch((e: Error) => console.error(`close: ${e.message}`));
    await rm(base, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(`bench:thinpool: ${err.message}`);
  process.exit(1);
});
