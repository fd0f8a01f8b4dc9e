/**
 * A real containerd on strata: `strata serve --containerd-snapshotter` on
 * each driver (vfs, overlay, devmapper on the userspace pool), a private
 * containerd with the proxy plugin, a private registry. Per driver: pull,
 * run, `ctr snapshots ls/usage/prepare/mounts/rm`, SIGKILL of serve (idle
 * and mid-pull) and of containerd (mid-pull), and in the end nothing left
 * in the driver's directories. Needs the peers (containerd, runc, skopeo,
 * docker-registry); without them it skips and says why.
 */
import test, { type ExecutionContext } from "ava";
import { readFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { detachLoop } from "../../src/native.js";
import { loopsBackedUnder, poolLayout, recoverCrashed } from "../../src/thinpool/index.js";
import { mountsUnder } from "../../src/util/mountinfo.js";
import { driverTestArgs, supportedDrivers } from "../helpers/drivers.js";
import { tempDir } from "../helpers/tmp.js";
import { startRegistry } from "../image/peers.js";
import {
  containerdMissing,
  type Containerd,
  type Daemon,
  pushTestImage,
  snapshotsClient,
  startContainerd,
  startServe,
} from "./containerd-helpers.js";

const missing = containerdMissing();
if (missing) console.log(`containerd snapshotter tests skipped: ${missing}`);
const drivers = missing ? [] : await supportedDrivers();
const S = ["--snapshotter", "strata"];

async function poll<T>(what: string, fn: () => Promise<T>, done: (v: T) => boolean, ms = 60_000): Promise<T> {
  let v = await fn();
  for (const start = Date.now(); !done(v);) {
    if (Date.now() - start > ms) throw new Error(`${what}: still ${JSON.stringify(v)} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
    v = await fn();
  }
  return v;
}

/**
 * containerd's connection to a restarted snapshotter comes back after its
 * reconnect backoff (at most 3 s): until then calls fail "unavailable".
 * Repeats a `ctr` call that failed that way, for up to 20 s.
 */
async function ctrAfterRestart(ctd: Containerd, ...args: string[]): Promise<string> {
  for (const start = Date.now(); ;) {
    const r = await ctd.ctrTry(...args);
    if (r.code === 0) return r.out;
    if (!/unavailable/.test(r.out) || Date.now() - start > 20_000)
      throw new Error(`ctr ${args.join(" ")} failed: ${r.out}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

/** What the driver still holds: layers, links, device metadata, exported devices, loop devices, mounts. */
async function leftovers(root: string, driver: string): Promise<string[]> {
  const ls = async (dir: string) =>
    (await readdir(join(root, dir)).catch(() => [] as string[])).map((n) => `${dir}/${n}`);
  const out: string[] = [];
  if (driver === "vfs") out.push(...(await ls("vfs/dir")));
  if (driver === "overlay")
    out.push(...(await ls("overlay")).filter((n) => n !== "overlay/l"), ...(await ls("overlay/l")));
  if (driver === "devmapper") {
    const meta = await ls("devmapper/metadata");
    out.push(...meta.filter((n) => !/\/(base|deviceset-metadata)$/.test(n)), ...(await ls("devmapper/exported")));
    out.push(...(await loopsBackedUnder(root)).map((l) => `${l.device} on ${l.backingFile}`));
  }
  const poolMount = join(root, "devmapper/devicemapper/mnt");
  out.push(...(await mountsUnder(root)).filter((m) => m !== poolMount).map((m) => `mount ${m}`));
  return out;
}

/** Stops the userspace pool daemon of `root` when the test ends, if serve left it running. */
function stopPoolDaemon(t: ExecutionContext, root: string): void {
  t.teardown(async () => {
    const layout = poolLayout(join(root, "devmapper/devicemapper"));
    const pidOf = async (file: string) => Number((await readFile(file, "utf8").catch(() => "0")).trim());
    const [pid, keeper] = [await pidOf(layout.pidFile), await pidOf(layout.keeperPidFile)];
    const ours = async (p: number) =>
      p > 0 && (await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "")).includes(root);
    const alive = () => ours(pid);
    if (!(await alive())) return;
    for (const l of await loopsBackedUnder(layout.mountPoint)) await detachLoop(l.device).catch(() => {});
    // The keeper first: it would start the daemon again on the same FUSE connection.
    if (await ours(keeper)) process.kill(keeper, "SIGKILL");
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 100 && (await alive()); i++) await new Promise((r) => setTimeout(r, 50));
    await recoverCrashed(layout);
  });
}

/** Pulls `image` in the background and SIGKILLs `victim` once an unpack (an active snapshot) is under way. */
async function killMidPull(ctd: Containerd, socket: string, image: string, victim: Daemon): Promise<string> {
  const pull = ctd.ctrTry("images", "pull", "--plain-http", ...S, image);
  const client = snapshotsClient(socket);
  try {
    await poll(
      "an unpack",
      async () => (await client.list().catch(() => [])).some((i) => i.kind === "ACTIVE"),
      (v) => v,
      30_000,
    );
  } finally {
    client.close();
  }
  await victim.stop("SIGKILL");
  return (await pull).out;
}

for (const name of ["vfs", "overlay", "devmapper"]) {
  const run = missing || !drivers.includes(name) ? test.serial.skip : test.serial;
  run(`containerd pulls, runs and removes an image on strata's ${name} driver and survives kills`, async (t) => {
    const logs: Array<() => string> = [];
    try {
      await scenario(t, name, logs);
    } catch (err) {
      for (const out of logs) t.log(out().split("\n").slice(-40).join("\n"));
      throw err;
    }
  });
}

/** The scenario on one driver; `logs` gets the daemons' output, printed when it fails. */
async function scenario(t: ExecutionContext, name: string, logs: Array<() => string>): Promise<void> {
  {
    const dir = await tempDir(t, `strata-ctd-${name}-`);
    const root = join(dir, "store");
    if (name === "devmapper") stopPoolDaemon(t, root);
    const registry = await startRegistry(t);
    const { ref: image, chain } = await pushTestImage(join(dir, "img"), registry.addr, `serve-ctd/multi-${name}`);
    const socket = `/run/strata-serve-test-${process.pid}-${name}.sock`;
    t.teardown(() => rm(socket, { force: true })); // a SIGKILLed serve leaves it
    const serveOpts = { root, driver: name, options: driverTestArgs(name), socket };
    let serve = await startServe(t, serveOpts);
    let ctd = await startContainerd(t, dir, socket);
    logs.push(
      () => serve.output(),
      () => ctd.output(),
    );

    // Pull: three committed snapshots, one per layer, chained.
    await ctd.ctr("images", "pull", "--plain-http", ...S, image);
    const ls = await ctd.ctr("snapshots", ...S, "ls");
    for (const id of chain) t.regex(ls, new RegExp(`${id}.*Committed`));

    // Run: the layers, the whiteout and the big file are all there.
    const script = "cat /etc/os-release; test -e /bin/arch || echo whiteout-ok; wc -c < /data/big.bin";
    const out = await ctd.ctr("run", "--rm", ...S, image, `run1-${name}`, "sh", "-c", script);
    t.regex(out, /NAME="strata test"/);
    t.regex(out, /whiteout-ok/);
    t.regex(out, /8388608/);

    // Usage: the top layer holds the 8 MiB file.
    const usage = await ctd.ctr("snapshots", ...S, "usage", chain[2]!);
    t.regex(usage, /\b(8|9|10)\.\d+ MiB\b/);

    // Prepare, mounts, remove through ctr.
    await ctd.ctr("snapshots", ...S, "prepare", `k-${name}`, chain[2]!);
    const mounts = await ctd.ctr("snapshots", ...S, "mounts", "/mnt", `k-${name}`);
    t.regex(
      mounts,
      { vfs: /mount -t bind/, overlay: /mount -t overlay .*upperdir=/, devmapper: /mount -t ext4 \/dev\/loop/ }[name]!,
    );
    // A graceful stop keeps what the mounts need: the same description after a restart,
    // and for devmapper the device stays attached although nothing has mounted it yet.
    const devices = async () => (await loopsBackedUnder(root)).map((l) => l.device);
    const before = await devices();
    await serve.stop("SIGTERM");
    t.deepEqual(await devices(), before);
    if (name === "devmapper") t.is(before.length, 1);
    serve = await startServe(t, serveOpts);
    t.is(await ctrAfterRestart(ctd, "snapshots", ...S, "mounts", "/mnt", `k-${name}`), mounts);
    await ctd.ctr("snapshots", ...S, "rm", `k-${name}`);

    // A running container outlives a graceful stop and a SIGKILL of serve (its mounts and,
    // for devmapper, its active device and the pool daemon stay) and keeps writing.
    const long = `long-${name}`;
    await ctd.ctr("run", "-d", ...S, image, long, "sleep", "600");
    await serve.stop("SIGTERM");
    serve = await startServe(t, serveOpts);
    await serve.stop("SIGKILL");
    serve = await startServe(t, serveOpts);
    const exec = ["sh", "-c", "echo written > /f && cat /f /etc/os-release"];
    t.regex(await ctd.ctr("task", "exec", "--exec-id", "e1", long, ...exec), /written\n[^]*ID=strata/);
    await ctd.ctr("task", "kill", "-s", "SIGKILL", long);
    await poll(
      "task exit",
      () => ctd.ctr("task", "ls"),
      (v) => !new RegExp(`${long}\\s+\\d+\\s+RUNNING`).test(v),
    );
    await ctd.ctr("task", "rm", long);
    await ctrAfterRestart(ctd, "containers", "rm", long);

    // SIGKILL of an idle serve: it comes back with everything.
    await serve.stop("SIGKILL");
    serve = await startServe(t, serveOpts);
    t.regex(
      await ctrAfterRestart(ctd, "run", "--rm", ...S, image, `run2-${name}`, "cat", "/etc/os-release"),
      /ID=strata/,
    );

    // SIGKILL of serve mid-pull: the pull fails; after a restart the pull works and the leftover goes.
    await ctd.ctr("images", "rm", "--sync", image);
    await poll(
      "removal",
      () => snapshotsClient(socket).list(),
      (v) => v.length === 0,
    );
    t.log(`pull with serve killed: ${(await killMidPull(ctd, socket, image, serve)).split("\n").slice(-2).join(" ")}`);
    serve = await startServe(t, serveOpts);
    await ctrAfterRestart(ctd, "images", "pull", "--plain-http", ...S, image);

    // SIGKILL of containerd mid-pull: containerd comes back and pulls again.
    await ctd.ctr("images", "rm", "--sync", image);
    await poll(
      "removal",
      () => snapshotsClient(socket).list(),
      (v) => v.length === 0,
    );
    await killMidPull(ctd, socket, image, ctd);
    ctd = await startContainerd(t, dir, socket);
    // The killed pull's lease (ctr's, 24 h) still holds what it fetched: drop it as an operator would.
    for (const lease of (await ctd.ctr("leases", "ls", "-q")).split("\n").filter(Boolean))
      await ctd.ctr("leases", "rm", lease);
    await ctd.ctr("images", "pull", "--plain-http", ...S, image);
    t.regex(await ctd.ctr("run", "--rm", ...S, image, `run3-${name}`, "cat", "/etc/os-release"), /ID=strata/);

    // Everything removed: containerd's garbage collection removes every snapshot, strata every layer.
    await ctd.ctr("images", "rm", "--sync", image);
    await poll(
      "removal",
      () => snapshotsClient(socket).list(),
      (v) => v.length === 0,
    );
    t.deepEqual(
      await poll(
        "driver cleanup",
        () => leftovers(root, name),
        (v) => v.length === 0,
      ),
      [],
    );

    // Graceful stops; the userspace pool daemon goes with the last active device.
    await ctd.stop();
    await serve.stop();
    t.regex(serve.output(), /stopping reason=SIGTERM[^]*stopped/);
    t.deepEqual(await mountsUnder(root), []);
  }
}
