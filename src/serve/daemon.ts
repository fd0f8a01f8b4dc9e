/**
 * `strata serve`: one long-lived daemon over one store and driver, with
 * its front doors: Docker's graphdriver plugin (`docker/`) and containerd's
 * proxy snapshotter (`containerd/`), either or both.
 *
 * Life cycle:
 * 1. write the pid file and lock the root (one daemon per root);
 * 2. open the driver and the store (claimed for `strata serve`, see
 *    `src/layer/owner.ts`); opening the store rebuilds every mount count:
 *    holds of processes that are gone (this daemon's previous run) are
 *    dropped and what nothing holds any more is unmounted, while the named
 *    holds of dockerd's Gets stay, so a container that kept running across a
 *    restart keeps its mount and its next Put releases it; then layers
 *    mounted by a run killed before it recorded the hold are unmounted;
 * 3. listen;
 * 4. SIGHUP reopens the log file; SIGTERM or SIGINT stop gracefully: no new
 *    connections, requests in flight finish (for up to the grace period),
 *    then the driver is closed, not cleaned up: what containers use stays
 *    mounted, held by its persisted holds.
 *
 * A SIGKILL skips step 4 and loses nothing: holds are on disk, mounts stay.
 *
 * @module
 */
import { type FileHandle, mkdir, open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { builtinDrivers } from "../drivers/index.js";
import { FailedPreconditionError, hasCode, InvalidArgumentError } from "../errors.js";
import { LayerStore } from "../layer/index.js";
import { C, flock } from "../native.js";
import { writeFileAtomic } from "../util/atomic.js";
import type { FrontDoor, ServeContext } from "./context.js";
import { startSnapshotter } from "./containerd/index.js";
import { startDockerPlugin } from "./docker/index.js";
import { Logger, type LogLevel } from "./log.js";

/** The owner of a served store (see `src/layer/owner.ts`): whatever its front doors, it is not strata's own. */
export const SERVE_OWNER = "serve";

/** Where `strata serve` keeps its store unless told otherwise. */
export const DEFAULT_SERVE_ROOT = "/var/lib/strata-serve";

/** What `strata serve` was asked to do. */
export interface ServeOptions {
  root: string;
  /** Driver name, or undefined for automatic selection. */
  driver?: string;
  storageOpt: Record<string, string>;
  /** Socket of the Docker graphdriver plugin, or undefined for none. */
  dockerPlugin?: string;
  /** Socket of the containerd proxy snapshotter, or undefined for none. */
  containerdSnapshotter?: string;
  pidFile?: string;
  /** Log file (appended, reopened on SIGHUP); stderr when undefined. */
  logFile?: string;
  logLevel?: LogLevel;
  /** How long a graceful stop lets requests in flight run (default 30 s). */
  graceMs?: number;
}

/** Something that resolves when the daemon should stop (default: SIGTERM or SIGINT). */
export type StopSignal = Promise<string>;

/** Writes the pid file, refusing one that names a live process. */
async function claimPidFile(path: string): Promise<void> {
  try {
    const pid = Number((await readFile(path, "utf8")).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, 0);
        throw new FailedPreconditionError(
          "ERR_ALREADY_RUNNING",
          `Cannot start: the pid file names a running process (${pid}) "${path}"`,
        );
      } catch (err) {
        if (!hasCode(err, "ESRCH")) throw err;
      }
    }
  } catch (err) {
    if (!hasCode(err, "ENOENT")) throw err;
  }
  await writeFileAtomic(path, `${process.pid}\n`, { mode: 0o644 });
}

/** Removes the pid file if it still names this process. */
async function releasePidFile(path: string): Promise<void> {
  const text = await readFile(path, "utf8").catch(() => "");
  if (text.trim() === String(process.pid)) await rm(path, { force: true });
}

/** The containerd snapshotter as a front door; its records live in `<root>/containerd`. */
async function startContainerd(ctx: ServeContext, socket: string): Promise<FrontDoor> {
  const server = await startSnapshotter({
    driver: ctx.driver,
    stateDir: join(ctx.root, "containerd"),
    socket,
    log: (line) => ctx.log.warn(line, { front: "containerd" }),
  });
  ctx.log.info("serving containerd's snapshots API", { socket });
  return { name: "containerd-snapshotter", address: socket, close: (graceMs) => server.close(graceMs) };
}

/** Starts every front door asked for; on a failure, closes those already started. */
async function startFrontDoors(ctx: ServeContext, opts: ServeOptions): Promise<FrontDoor[]> {
  const doors: FrontDoor[] = [];
  try {
    if (opts.dockerPlugin) doors.push(await startDockerPlugin(ctx, opts.dockerPlugin));
    if (opts.containerdSnapshotter) doors.push(await startContainerd(ctx, opts.containerdSnapshotter));
  } catch (err) {
    await Promise.all(doors.map((d) => d.close(0)));
    throw err;
  }
  return doors;
}

function signals(log: Logger): { stop: StopSignal; dispose(): void } {
  let resolve!: (name: string) => void;
  const stop = new Promise<string>((r) => (resolve = r));
  const onStop = (name: string) => resolve(name);
  const onHup = () => {
    log.reopen();
    log.info("log reopened (SIGHUP)");
  };
  process.on("SIGTERM", onStop);
  process.on("SIGINT", onStop);
  process.on("SIGHUP", onHup);
  return {
    stop,
    dispose() {
      process.off("SIGTERM", onStop);
      process.off("SIGINT", onStop);
      process.off("SIGHUP", onHup);
    },
  };
}

/**
 * Runs the daemon until SIGTERM/SIGINT (or `stop`, for callers that drive it
 * themselves); resolves once it has stopped gracefully.
 * @throws ERR_INVALID_OPTION with no front door; ERR_STORE_OWNED for a store
 *   that holds strata's own layers; ERR_SOCKET_IN_USE;
 *   ERR_ALREADY_RUNNING (pid file of a live process, or another daemon on the root)
 */
export async function serve(opts: ServeOptions, stop?: StopSignal): Promise<void> {
  if (!opts.dockerPlugin && !opts.containerdSnapshotter) {
    throw new InvalidArgumentError(
      "ERR_INVALID_OPTION",
      "Cannot serve: no front door given (--docker-plugin [SOCKET], --containerd-snapshotter SOCKET)",
    );
  }
  const log = new Logger({ file: opts.logFile, level: opts.logLevel });
  const sig = signals(log);
  try {
    if (opts.pidFile) await claimPidFile(opts.pidFile);
    try {
      const instance = await lockInstance(opts.root);
      try {
        await serveStore(opts, log, Promise.race([sig.stop, ...(stop ? [stop] : [])]));
      } finally {
        await instance.close();
      }
    } finally {
      if (opts.pidFile) await releasePidFile(opts.pidFile);
    }
    log.info("stopped");
  } finally {
    sig.dispose();
    await log.close();
  }
}

/**
 * One daemon per root: an flock on `<root>/serve.lock`, held while it runs
 * (released by the kernel when it dies). Two daemons over one store would
 * each take dockerd's Init as theirs.
 * @throws ERR_ALREADY_RUNNING
 */
async function lockInstance(root: string): Promise<FileHandle> {
  await mkdir(root, { recursive: true, mode: 0o711 });
  const fh = await open(join(root, "serve.lock"), "a+", 0o600);
  try {
    await flock(fh.fd, C.LOCK_EX | C.LOCK_NB);
  } catch (err) {
    await fh.close();
    if (hasCode(err, "EWOULDBLOCK", "EAGAIN"))
      throw new FailedPreconditionError("ERR_ALREADY_RUNNING", `Cannot start: another strata serve uses "${root}"`);
    throw err;
  }
  return fh;
}

/** Opens driver and store, serves until `stop`, and closes them (not cleanup: mounts in use stay). */
async function serveStore(opts: ServeOptions, log: Logger, stop: Promise<string>): Promise<void> {
  const driver = await builtinDrivers().select(opts.driver, { root: opts.root, options: opts.storageOpt });
  try {
    const store = await LayerStore.open(opts.root, driver, { owner: SERVE_OWNER });
    try {
      const ctx: ServeContext = { root: opts.root, driver, store, log };
      const unheld = await store.mounts.releaseUnheld();
      const holds = await store.mounts.list();
      log.info("store open", {
        root: opts.root,
        driver: driver.name,
        mounted: holds.filter((h) => h.count > 0).length,
        holds: holds.reduce((s, h) => s + h.count, 0),
        unmountedUnheld: unheld.length,
      });
      const doors = await startFrontDoors(ctx, opts);
      try {
        log.info("ready", { pid: process.pid });
        log.info("stopping", { reason: await stop });
      } finally {
        await Promise.all(doors.map((d) => d.close(opts.graceMs ?? 30_000)));
      }
    } finally {
      await store.close();
    }
  } finally {
    // close, not cleanup: the mounts of running containers stay, held by their persisted holds.
    await driver.close();
  }
}
