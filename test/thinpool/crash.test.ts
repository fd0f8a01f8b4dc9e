/**
 * Crash tests: SIGKILL the pool daemon (keeper and daemon, so that nothing
 * takes over: see resume.test.ts for that) during heavy writes and during
 * snapshot creation (STRATA_POOL_CRASH_RUNS runs, default 30, alternating).
 * After each crash: thin_check passes on the metadata as the crash left it,
 * the next command recovers (stale loop detached, dead FUSE mount cleaned),
 * every fsync'd file is present with its content, acknowledged snapshots
 * exist, and the filesystem fsck's clean.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import test from "ava";
import { C, mount, umount2 } from "../../src/native.js";
import { ThinPool, loopsBackedUnder } from "../../src/thinpool/index.js";
import { request } from "../../src/thinpool/client.js";
import { tempDir } from "../helpers/tmp.js";
import { killDaemon, makePool, run, stopPool, thinCheck } from "./helpers.js";

const RUNS = Number(process.env.STRATA_POOL_CRASH_RUNS ?? 30);
const SIZE = 256 << 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("SIGKILL of the daemon during writes and snapshots loses nothing fsync'd and leaves thin_check and fsck clean", async (t) => {
  const { dir } = await makePool(t, { dataSize: 1 << 30 });
  let pool = await ThinPool.open(dir);
  t.teardown(async () => {
    await umount2(mnt, C.MNT_DETACH).catch(() => {});
    const p = await ThinPool.open(dir).catch(() => null);
    if (p) await stopPool(p);
  });
  const mnt = await tempDir(t, "strata-crashmnt-");
  await pool.createThin(0);
  let dev = await pool.activate(0, SIZE);
  await run("mkfs.ext4", ["-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", dev]);
  const durable = new Map<string, string>();
  const snapshots = new Set<number>();
  let nextSnap = 100;
  let checked = 0;

  for (let r = 0; r < RUNS; r++) {
    const kind = r % 2 === 0 ? "writes" : "snapshots";
    await mount(dev, mnt, "ext4", 0, "discard");
    // Heavy unsynced writes in the background, fsync'd small files reported one by one.
    const script = `
      dd if=/dev/zero of=${mnt}/heavy bs=1M count=64 status=none 2>/dev/null &
      for i in $(seq 1 200); do
        f=${mnt}/r${r}f$i
        dd if=/dev/urandom of=$f bs=16k count=4 conv=fsync status=none 2>/dev/null || exit 0
        echo "r${r}f$i $(sha256sum < $f | cut -c1-64)"
      done
      wait`;
    const child = spawn("bash", ["-c", kind === "writes" ? script : script.replace("seq 1 200", "seq 1 0")], {
      detached: true,
      stdio: ["ignore", "pipe", "ignore"],
    });
    const lines = createInterface({ input: child.stdout });
    const reported: [string, string][] = [];
    lines.on("line", (l) => {
      const [name, sum] = l.split(" ");
      if (sum?.length === 64) reported.push([name, sum]);
    });
    const closed = new Promise((res) => child.on("close", res));
    if (kind === "snapshots") {
      const until = Date.now() + 50 + Math.random() * 250;
      const sock = pool.layout.socket;
      const pending = (async () => {
        for (;;) {
          const id = nextSnap++;
          try {
            await request(sock, `message create_snap ${id} 0`);
            snapshots.add(id);
          } catch {
            return;
          }
        }
      })();
      while (Date.now() < until) await sleep(5);
      await killDaemon(pool);
      await pending;
    } else {
      await sleep(150 + Math.random() * 400);
      await killDaemon(pool);
    }
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      /* finished */
    }
    await closed;
    for (const [name, sum] of reported) durable.set(name, sum);
    await umount2(mnt).catch(() => umount2(mnt, C.MNT_DETACH));

    // The metadata as the crash left it.
    await thinCheck(pool.layout.metadataFile);
    // The next command recovers: stale loop detached, FUSE remounted by a new daemon.
    pool = await ThinPool.open(dir);
    t.deepEqual(await loopsBackedUnder(pool.layout.mountPoint), [], `run ${r}: stale loop detached`);
    const ids = new Set((await pool.info()).devices.map((d) => d.id));
    for (const id of snapshots) if (!ids.has(id)) t.fail(`run ${r}: acknowledged snapshot ${id} lost`);
    dev = await pool.activate(0, SIZE);
    await mount(dev, mnt, "ext4", 0, "discard"); // replays the journal
    for (const [name, sum] of durable) {
      const got = (await run("sha256sum", [join(mnt, name)]).catch(() => ({ stdout: "missing" }))).stdout.slice(0, 64);
      if (got !== sum) t.fail(`run ${r}: fsync'd file ${name} is ${got}, not ${sum}`);
      checked++;
    }
    await run("rm", ["-f", join(mnt, "heavy")]);
    await umount2(mnt);
    await run("e2fsck", ["-fn", dev]);
    // Keep the pool small: drop this run's snapshots.
    for (const id of snapshots) await pool.deleteDevice(id);
    snapshots.clear();
  }
  t.log(`${RUNS} crashes, ${durable.size} fsync'd files verified (${checked} checks)`);
  t.true(durable.size > 0, "some fsync'd writes completed before the crashes");
  await pool.deactivate(0);
  const meta = pool.layout.metadataFile;
  await stopPool(pool);
  await thinCheck(meta);
});
