/**
 * Starting, finding and recovering the pool daemon (`strata-poold serve`).
 * The daemon runs detached, so it outlives the command that started it;
 * the next command finds it through the control socket. It is two
 * processes: a keeper, and the daemon proper (its child, the pid in
 * `daemon.pid`), which the keeper restarts on the same FUSE connection if it
 * dies, so that mounted thin devices keep working (native/thinpool/README.md).
 * While the keeper lives, a silent socket means a restart in progress: wait
 * for it. When both are gone, the daemon crashed for good: its loop devices
 * are detached, its dead FUSE mount is lazily unmounted and a fresh daemon
 * reopens the metadata as of its last commit.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, open, readFile, readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { C, detachLoop, umount2 } from "../native.js";
import { request } from "./client.js";
import { PoolError } from "./errors.js";

/** Where a pool keeps its files: everything but data and metadata lives under `dir`. */
export interface PoolLayout {
  dir: string;
  dataFile: string;
  metadataFile: string;
  socket: string;
  mountPoint: string;
  log: string;
  /** The daemon proper: the process that serves (written by it). */
  pidFile: string;
  /** The keeper that restarts it (written by the keeper). */
  keeperPidFile: string;
}

/** The layout of the pool in `dir`; data and metadata default to files inside it. */
export function poolLayout(dir: string, dataFile?: string, metadataFile?: string): PoolLayout {
  const d = resolve(dir);
  return {
    dir: d,
    dataFile: resolve(dataFile ?? join(d, "data")),
    metadataFile: resolve(metadataFile ?? join(d, "metadata")),
    socket: join(d, "control.sock"),
    mountPoint: join(d, "mnt"),
    log: join(d, "daemon.log"),
    pidFile: join(d, "daemon.pid"),
    keeperPidFile: join(d, "keeper.pid"),
  };
}

/** The `strata-poold` executable built by `npm run build:native`. */
export function daemonBinary(): string {
  return fileURLToPath(new URL("../../../build/thinpool/strata-poold", import.meta.url));
}

/** Runs `strata-poold` to completion (for `format`); rejects with its one-line error. */
export function runDaemonTool(args: string[]): Promise<void> {
  return new Promise((res, rej) => {
    const child = spawn(daemonBinary(), args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", (e) => rej(new PoolError("ERR_POOL_DAEMON", `Cannot run strata-poold: ${e.message}`)));
    child.on("close", (code) => {
      if (code === 0) return res();
      const line = err.trim().split("\n").pop() ?? "";
      const m = /^strata-poold: (E[A-Z0-9]+): (.*)$/.exec(line);
      const code2 =
        m?.[1] === "EINVAL" ? "ERR_POOL_INVALID" : m?.[1] === "ENOSPC" ? "ERR_POOL_NO_SPACE" : "ERR_POOL_DAEMON";
      rej(new PoolError(code2, `Cannot ${args[0]} the pool: ${m?.[2] ?? line}`, m?.[1]));
    });
  });
}

/** Loop devices whose backing file lies under `prefix` (`/sys/block/loopN/loop/backing_file`). */
export async function loopsBackedUnder(prefix: string): Promise<{ device: string; backingFile: string }[]> {
  const out: { device: string; backingFile: string }[] = [];
  for (const name of await readdir("/sys/block")) {
    if (!name.startsWith("loop")) continue;
    let backing: string;
    try {
      backing = (await readFile(`/sys/block/${name}/loop/backing_file`, "utf8")).trim();
    } catch {
      continue; // not bound
    }
    if (backing.startsWith(`${prefix}/`)) out.push({ device: `/dev/${name}`, backingFile: backing });
  }
  return out;
}

async function alive(layout: PoolLayout): Promise<boolean> {
  try {
    await request(layout.socket, "ping", 10_000);
    return true;
  } catch (err) {
    if (err instanceof PoolError) throw err;
    return false; // ENOENT / ECONNREFUSED: nobody listens
  }
}

function pidRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Cleans up after a daemon that died: stale loops, the dead FUSE mount, the socket. */
export async function recoverCrashed(layout: PoolLayout): Promise<void> {
  for (const loop of await loopsBackedUnder(layout.mountPoint)) await detachLoop(loop.device).catch(() => {});
  for (let i = 0; i < 3; i++) {
    const mounted = (await readFile("/proc/self/mountinfo", "utf8"))
      .split("\n")
      .some((l) => l.split(" ")[4] === layout.mountPoint);
    if (!mounted) break;
    await umount2(layout.mountPoint, C.MNT_DETACH).catch(() => {});
  }
  await rm(layout.socket, { force: true });
  await rm(`${layout.socket}.tmp`, { force: true });
}

/** The pid in `file`, or 0. */
export async function readPidFile(file: string): Promise<number> {
  return Number((await readFile(file, "utf8").catch(() => "0")).trim()) || 0;
}

/** Waits up to `ms` for the socket to answer. */
async function answers(layout: PoolLayout, ms: number): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 50) {
    if (await alive(layout)) return true;
    await sleep(50);
  }
  return false;
}

/**
 * Makes sure a daemon serves the pool: returns the pid of the running one or
 * starts a new one (after recovering from a crashed one). Rejects with the
 * daemon's own error line when it cannot open the pool.
 */
export async function ensureDaemon(layout: PoolLayout): Promise<number> {
  if (await alive(layout)) return readPidFile(layout.pidFile);
  for (const pidFile of [layout.keeperPidFile, layout.pidFile]) {
    // A keeper restarting its daemon, or a daemon starting up (or wedged):
    // give it a moment, then treat it as crashed.
    const pid = await readPidFile(pidFile);
    if (!pid || !pidRunning(pid) || !(await cmdlineIsDaemon(pid))) continue;
    if (await answers(layout, 10_000)) return readPidFile(layout.pidFile);
    throw new PoolError("ERR_POOL_DAEMON", `Cannot reach the pool daemon ${pid} on "${layout.socket}"`);
  }
  await recoverCrashed(layout);
  await mkdir(layout.mountPoint, { recursive: true });
  await rm(layout.pidFile, { force: true });
  const log = await open(layout.log, "a");
  const child = spawn(
    daemonBinary(),
    [
      "serve",
      "--metadata",
      layout.metadataFile,
      "--data",
      layout.dataFile,
      "--mount",
      layout.mountPoint,
      "--socket",
      layout.socket,
      "--pid-file",
      layout.pidFile,
      "--keeper-pid-file",
      layout.keeperPidFile,
    ],
    { detached: true, stdio: ["ignore", log.fd, log.fd] },
  );
  await log.close();
  let exited: number | null = null;
  child.on("exit", (code) => (exited = code ?? -1));
  child.unref();
  const keeper = child.pid ?? 0;
  for (let i = 0; i < 400; i++) {
    if (existsSync(layout.socket) && (await alive(layout))) return readPidFile(layout.pidFile);
    if (exited !== null || !(await stillRunning(keeper))) {
      const lines = (await readFile(layout.log, "utf8")).trim().split("\n");
      const last = lines[lines.length - 1] ?? "";
      const m = /^strata-poold: (E[A-Z0-9]+): (.*)$/.exec(last);
      throw new PoolError("ERR_POOL_DAEMON", `Cannot open the pool "${layout.dir}": ${m?.[2] ?? last}`, m?.[1]);
    }
    await sleep(25);
  }
  throw new PoolError("ERR_POOL_DAEMON", `Cannot start the pool daemon for "${layout.dir}": no answer in 10 s`);
}

/** True while `pid` exists and is not a zombie. */
async function stillRunning(pid: number): Promise<boolean> {
  const st = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return st !== "" && !/\) Z /.test(st);
}

async function cmdlineIsDaemon(pid: number): Promise<boolean> {
  const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return cmd.includes("strata-poold");
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
