/**
 * Benchmark of the userspace thin pool (`npm run bench:thinpool`): ext4 on a
 * thin device against ext4 on a plain loop file with direct I/O.
 *
 * Every timed sample starts from nothing: a new host filesystem (a sparse
 * loop file under STRATA_BENCH_DIR, `mkfs.ext4` with its defaults, so with
 * a journal, mounted under a fresh directory), the device on it (the plain
 * loop file, or a new pool with one thin device), ext4 on the device
 * (Docker's devmapper mkfs options, on both), page caches dropped; then the
 * timed work; then everything is taken down. The plain and thin samples of a
 * round run one after the other on identical fresh filesystems, the order
 * alternating from round to round; medians over the rounds are printed with
 * the ratio thin ÷ plain. Why: this machine's root filesystem is ext4
 * without a journal, where a figure depends on what was deleted before it.
 *
 * Workloads per sample, each timed alone with caches dropped before it:
 * - sequential write of SEQ_MIB into a new file, `dd bs=1M oflag=direct
 *   conv=fsync` (the device path: one request in flight) and `dd bs=1M
 *   conv=fsync` (buffered, then fsync);
 * - sequential read of the direct-written file, `dd bs=1M iflag=direct`;
 * - with STRATA_BENCH_RAND_SECS > 0, 4 KiB random writes (`fio`, psync,
 *   direct, fsync at the end) into a RAND_MIB file.
 * Then, on one more fresh filesystem, the latency of `create_snap` of a
 * device with 20,000 mapped blocks (median of STRATA_BENCH_SNAPS). For the
 * thin samples the pool daemon's CPU time per GiB is printed too: on a
 * machine shared with other work it is the steadier figure.
 *
 * Environment: STRATA_BENCH_DIR (default /var/tmp), STRATA_BENCH_SEQ_MIB
 * (default 1024), STRATA_BENCH_SEQ_RUNS (rounds, default 3),
 * STRATA_BENCH_RAND_SECS (default 0: no random writes), STRATA_BENCH_RAND_MIB
 * (default 256), STRATA_BENCH_SNAPS (default 21). Needs root.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, open, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { attachLoop, detachLoop, mount, umount2 } from "../native.js";
import { request } from "../thinpool/client.js";
import { ThinPool } from "../thinpool/index.js";

const run = promisify(execFile);
const SEQ_MIB = Number(process.env.STRATA_BENCH_SEQ_MIB ?? 1024);
const ROUNDS = Number(process.env.STRATA_BENCH_SEQ_RUNS ?? 3);
const RAND_SECS = Number(process.env.STRATA_BENCH_RAND_SECS ?? 0);
const RAND_MIB = Number(process.env.STRATA_BENCH_RAND_MIB ?? 256);
const SNAPS = Number(process.env.STRATA_BENCH_SNAPS ?? 21);
/** Virtual size of either device: room for both sequential files and the random file. */
const DEVICE_BYTES = Math.max(4 * 2 ** 30, (2 * SEQ_MIB + RAND_MIB + 512) * 2 ** 20);
/** The host filesystem: the device's data plus room for ext4 and the pool's metadata. */
const HOST_BYTES = DEVICE_BYTES + 2 * 2 ** 30;

type Kind = "plain" | "thin";

/** What a sample measured, in MB/s (IOPS for `rand`); for thin samples, the pool daemon's CPU seconds per GiB. */
interface Sample {
  directWrite: number;
  bufferedWrite: number;
  directRead: number;
  rand?: number;
  daemonCpu?: { directWrite: number; directRead: number };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function dropCaches(): Promise<void> {
  await run("sync");
  await writeFile("/proc/sys/vm/drop_caches", "3");
}

/**
 * Runs `fn` on a new host filesystem mounted at a fresh directory under
 * `base`, and takes everything down afterwards (also on failure). `undo`
 * collects what `fn` set up on it, run in reverse order before the host
 * filesystem is unmounted.
 */
async function onFreshHost<T>(base: string, fn: (dir: string, undo: Array<() => Promise<void>>) => Promise<T>) {
  const work = await mkdtemp(join(base, "host-"));
  const img = join(work, "fs.img");
  const dir = join(work, "fs");
  const undo: Array<() => Promise<void>> = [];
  await writeFile(img, "");
  await truncate(img, HOST_BYTES);
  await run("mkfs.ext4", ["-q", "-F", img]);
  // No autoclear: the loop would go away when attachLoop closes its fd, before the mount.
  const loop = (await attachLoop(img, { directIO: false, autoclear: false })).device;
  try {
    await mkdir(dir);
    await mount(loop, dir, "ext4", 0, null);
    try {
      return await fn(dir, undo);
    } finally {
      for (const u of undo.reverse()) await u().catch((e: Error) => console.error(`cleanup: ${e.message}`));
      await unmountWhenFree(dir);
    }
  } finally {
    await detachLoop(loop);
    await rm(work, { recursive: true, force: true });
  }
}

/** Unmounts `dir`, waiting up to 10 s for a loop device detached from a file in it to let go. */
async function unmountWhenFree(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      return await umount2(dir);
    } catch (err) {
      if ((err as { code?: string }).code !== "EBUSY" || i >= 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** CPU seconds (user + system) process `pid` has used, or 0 when it cannot be read. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11] ?? 0) + Number(f[12] ?? 0)) / 100;
}

/** The device under test on the host filesystem `dir`: a plain loop file, or a thin device of a new pool. */
async function device(
  kind: Kind,
  dir: string,
  undo: Array<() => Promise<void>>,
): Promise<{ dev: string; pid: number }> {
  if (kind === "plain") {
    const file = join(dir, "plain.img");
    await writeFile(file, "");
    await truncate(file, DEVICE_BYTES);
    const dev = (await attachLoop(file, { directIO: true, autoclear: false })).device;
    undo.push(() => detachLoop(dev));
    return { dev, pid: 0 };
  }
  const pool = await ThinPool.create({ dir: join(dir, "pool"), dataSize: DEVICE_BYTES + 2 ** 30 });
  undo.push(() => pool.close());
  await pool.createThin(1);
  const dev = await pool.activate(1, DEVICE_BYTES);
  undo.push(() => pool.deactivate(1));
  return { dev, pid: pool.pid };
}

/** ext4 on the device, as the devmapper driver makes it, mounted at `<dir>/mnt`. */
async function filesystem(dev: string, dir: string, undo: Array<() => Promise<void>>): Promise<string> {
  const mnt = join(dir, "mnt");
  await mkdir(mnt);
  await run("mkfs.ext4", ["-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", dev]);
  await mount(dev, mnt, "ext4", 0, null);
  undo.push(() => umount2(mnt));
  return mnt;
}

const mbPerSec = (seconds: number) => (SEQ_MIB * 1.048576) / seconds;

async function dd(args: string[]): Promise<number> {
  await dropCaches();
  return mbPerSec(await timed(() => run("dd", [...args, "bs=1M", "status=none"])));
}

async function randWrite(mnt: string): Promise<number> {
  await dropCaches();
  const fio = await run("fio", [
    "--name=rand",
    `--filename=${join(mnt, "rand")}`,
    `--size=${RAND_MIB}M`,
    "--rw=randwrite",
    "--bs=4k",
    "--ioengine=psync",
    "--direct=1",
    `--runtime=${RAND_SECS}`,
    "--time_based",
    "--end_fsync=1",
    "--output-format=json",
  ]);
  return (JSON.parse(fio.stdout) as { jobs: { write: { iops: number } }[] }).jobs[0]!.write.iops;
}

/** One timed sample of `kind` on its own fresh host filesystem. */
function sample(kind: Kind, base: string): Promise<Sample> {
  return onFreshHost(base, async (dir, undo) => {
    const { dev, pid } = await device(kind, dir, undo);
    const mnt = await filesystem(dev, dir, undo);
    const direct = join(mnt, "direct");
    const count = `count=${SEQ_MIB}`;
    const c0 = pid ? await cpuSeconds(pid) : 0;
    const directWrite = await dd(["if=/dev/zero", `of=${direct}`, count, "oflag=direct", "conv=fsync"]);
    const c1 = pid ? await cpuSeconds(pid) : 0;
    const bufferedWrite = await dd(["if=/dev/zero", `of=${join(mnt, "buffered")}`, count, "conv=fsync"]);
    const c2 = pid ? await cpuSeconds(pid) : 0;
    const directRead = await dd([`if=${direct}`, "of=/dev/null", "iflag=direct"]);
    const c3 = pid ? await cpuSeconds(pid) : 0;
    const s: Sample = { directWrite, bufferedWrite, directRead };
    if (pid) s.daemonCpu = { directWrite: ((c1 - c0) * 1024) / SEQ_MIB, directRead: ((c3 - c2) * 1024) / SEQ_MIB };
    if (RAND_SECS > 0) s.rand = await randWrite(mnt);
    return s;
  });
}

/** Median latency of `create_snap` of a device with 20,000 mapped blocks, on a fresh host filesystem. */
function snapshotLatency(base: string): Promise<{ medianMs: number; mapped: number }> {
  return onFreshHost(base, async (dir, undo) => {
    const pool = await ThinPool.create({ dir: join(dir, "pool"), dataSize: DEVICE_BYTES });
    undo.push(() => pool.close());
    await pool.createThin(10);
    const blockSize = (await pool.info()).dataBlockSize;
    await pool.activate(10, 20_000 * blockSize);
    undo.push(() => pool.deactivate(10));
    const fh = await open(join(pool.layout.mountPoint, "10"), "r+");
    const buf = Buffer.alloc(4096, 7);
    for (let b = 0; b < 20_000; b++) await fh.write(buf, 0, buf.length, b * blockSize);
    await fh.sync();
    await fh.close();
    const mapped = (await pool.info()).devices.find((d) => d.id === 10)?.mappedBlocks ?? 0;
    const times: number[] = [];
    for (let i = 0; i < SNAPS; i++) {
      times.push(1000 * (await timed(() => request(pool.layout.socket, `message create_snap ${1000 + i} 10`))));
    }
    for (let i = 0; i < SNAPS; i++) await pool.deleteDevice(1000 + i);
    return { medianMs: median(times), mapped };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function main() {
  const base = await mkdtemp(join(process.env.STRATA_BENCH_DIR ?? "/var/tmp", "strata-bench-thinpool-"));
  try {
    const samples: Record<Kind, Sample[]> = { plain: [], thin: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order: Kind[] = r % 2 ? ["thin", "plain"] : ["plain", "thin"];
      for (const kind of order) {
        const s = await sample(kind, base);
        samples[kind].push(s);
        const rand = s.rand === undefined ? "" : `, rand ${s.rand.toFixed(0)} IOPS`;
        const cpu = s.daemonCpu
          ? `; daemon CPU s/GiB: direct write ${s.daemonCpu.directWrite.toFixed(2)}, direct read ${s.daemonCpu.directRead.toFixed(2)}`
          : "";
        console.log(
          `round ${r + 1} ${kind.padEnd(5)} direct write ${s.directWrite.toFixed(0)}, buffered write ${s.bufferedWrite.toFixed(0)}, direct read ${s.directRead.toFixed(0)} MB/s${rand}${cpu}`,
        );
      }
    }
    console.log(
      `\next4 on a thin device vs ext4 on a plain loop file, ${SEQ_MIB} MiB dd bs=1M, fresh ext4 host filesystem and cold caches per sample, medians of ${ROUNDS} rounds (order alternating)`,
    );
    const row = (name: string, unit: string, key: "directWrite" | "bufferedWrite" | "directRead" | "rand") => {
      const p = median(samples.plain.map((s) => s[key]!));
      const t = median(samples.thin.map((s) => s[key]!));
      console.log(
        `${name.padEnd(30)} plain ${p.toFixed(1).padStart(8)} ${unit.padEnd(5)} thin ${t.toFixed(1).padStart(8)} ${unit.padEnd(5)} ratio ${(t / p).toFixed(2)}`,
      );
    };
    row("sequential write (dd direct)", "MB/s", "directWrite");
    row("sequential write (dd fsync)", "MB/s", "bufferedWrite");
    row("sequential read (dd direct)", "MB/s", "directRead");
    if (RAND_SECS > 0) row(`4 KiB random write (fio ${RAND_SECS} s)`, "IOPS", "rand");
    const cpu = samples.thin.flatMap((s) => (s.daemonCpu ? [s.daemonCpu] : []));
    if (cpu.length) {
      console.log(
        `pool daemon CPU per GiB (median): direct write ${median(cpu.map((c) => c.directWrite)).toFixed(2)} s, direct read ${median(cpu.map((c) => c.directRead)).toFixed(2)} s`,
      );
    }
    const snap = await snapshotLatency(base);
    console.log(
      `create_snap of a device with ${snap.mapped} mapped blocks: median ${snap.medianMs.toFixed(2)} ms of ${SNAPS}`,
    );
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(`bench:thinpool: ${err.message}`);
  process.exit(1);
});
