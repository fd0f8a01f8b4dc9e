/**
 * containerd's proxy snapshotter front door of `strata serve`: the snapshots
 * gRPC service on a unix socket, over one strata driver. containerd uses it
 * when its config names the socket:
 *
 * ```toml
 * [proxy_plugins.strata]
 *   type = "snapshot"
 *   address = "/run/strata/snapshotter.sock"
 * ```
 *
 * Files: `snapshotter.ts` (the contract, no wire), `metadata.ts` (records,
 * atomic), `grpc.ts` (the wire), `filters.ts`, `usage.ts`, `key-locks.ts`,
 * `proto/` (the service definitions). See README.md.
 *
 * @example
 * const driver = await builtinDrivers().select("overlay", { root: "/var/lib/strata-containerd", options: {} });
 * const snap = await startSnapshotter({
 *   driver,
 *   stateDir: "/var/lib/strata-containerd/containerd",
 *   socket: "/run/strata/snapshotter.sock",
 * });
 * // … on SIGTERM:
 * await snap.close();
 * await driver.close();
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { chmod, lstat, mkdir, rm } from "node:fs/promises";
import { createConnection } from "node:net";
import { dirname } from "node:path";
import { FailedPreconditionError, hasCode, InvalidArgumentError } from "../../errors.js";
import type { Driver } from "../../graphdriver/driver.js";
import { handlers, loadService } from "./grpc.js";
import { Snapshotter } from "./snapshotter.js";

export { Snapshotter, type SnapshotInfo } from "./snapshotter.js";
export { parseFilters } from "./filters.js";
export { PROTO_DIR, SERVICE, loadService, statusOf } from "./grpc.js";

/** What {@link startSnapshotter} needs. */
export interface SnapshotterServerOptions {
  /** The driver holding the snapshots. The caller opens it and closes it after `close()`. */
  driver: Driver;
  /** The snapshotter's own directory: metadata, lock, scratch mounts. One server per directory. */
  stateDir: string;
  /** The unix socket to listen on (a stale socket there is replaced). */
  socket: string;
  /** One line per event worth a log (failed requests of the store, removals left to cleanup). */
  log?: (line: string) => void;
}

/** A running snapshotter server. */
export interface SnapshotterServer {
  readonly snapshotter: Snapshotter;
  readonly socket: string;
  /**
   * Stops accepting calls, lets running calls finish (at most `graceMs`,
   * default 10 s, then cancels them), removes the socket and releases the
   * metadata. Safe to call twice.
   */
  close(graceMs?: number): Promise<void>;
}

/** Whether something answers on the unix socket `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

/** Removes a stale socket at `path`; refuses a live one or anything that is not a socket. */
async function clearSocket(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (hasCode(err, "ENOENT")) return;
    throw err;
  }
  if (!st.isSocket()) throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot listen: not a socket "${path}"`);
  if (await answers(path))
    throw new FailedPreconditionError("ERR_SOCKET_IN_USE", `Cannot listen: another server answers on "${path}"`);
  await rm(path, { force: true });
}

/**
 * Opens the snapshotter on `driver` (sweeping what a crash left) and serves
 * it on `socket` (mode 0600: containerd runs as root).
 * @throws ERR_SNAPSHOTTER_BUSY, ERR_SNAPSHOT_METADATA, ERR_SOCKET_IN_USE
 */
export async function startSnapshotter(opts: SnapshotterServerOptions): Promise<SnapshotterServer> {
  const log = opts.log ?? ((line: string) => console.error(`strata serve: containerd: ${line}`));
  const snapshotter = await Snapshotter.open({ driver: opts.driver, stateDir: opts.stateDir, log });
  const server = new grpc.Server();
  try {
    server.addService(loadService(), handlers(snapshotter, log));
    await mkdir(dirname(opts.socket), { recursive: true, mode: 0o755 });
    await clearSocket(opts.socket);
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${opts.socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    await chmod(opts.socket, 0o600);
  } catch (err) {
    server.forceShutdown();
    await snapshotter.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    snapshotter,
    socket: opts.socket,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, graceMs);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        await rm(opts.socket, { force: true });
        await snapshotter.close();
      })();
      return closing;
    },
  };
}
