/**
 * `strata serve`: run the daemon that container engines use as storage.
 *
 * @module
 */
import type { Command } from "commander";
import { DEFAULT_DOCKER_SOCKET, parseLogLevel, serve } from "../../serve/index.js";
import { globals, parseStorageOpts } from "../context.js";

/** A served store gets its own root unless --root (or STRATA_ROOT) names one. */
export const DEFAULT_SERVE_ROOT = "/var/lib/strata-docker";

const SETUP = `
Run Docker on strata (as root):
  strata serve --driver overlay --docker-plugin          # socket ${DEFAULT_DOCKER_SOCKET}
  dockerd --experimental --storage-driver strata         # the socket's name is the driver's
  (daemon.json: {"experimental": true, "storage-driver": "strata"})
  Start strata serve before dockerd (systemd: Before=docker.service, KillMode=process).

The store is dockerd's alone: its root (default ${DEFAULT_SERVE_ROOT}) cannot be opened by
strata's other commands, and serve refuses a root that holds strata's own layers.
Drivers: overlay needs overlayfs; devmapper needs dm-thin or /dev/fuse and loop devices
(userspace pool, --storage-opt dm.target=userspace); vfs needs nothing.
Containers keep running when serve stops or is killed; a restarted serve takes up
the mounts where it left them. SIGTERM stops gracefully, SIGHUP reopens --log-file.`;

export function serveCommand(program: Command): void {
  program
    .command("serve")
    .description("run the daemon that lets dockerd store images and containers on strata's drivers")
    .option("--docker-plugin [socket]", "serve Docker's graphdriver plugin protocol on this unix socket")
    .option("--pid-file <file>", "write the daemon's pid here")
    .option("--log-file <file>", "log here instead of stderr (reopened on SIGHUP)")
    .option("--log-level <level>", "debug, info, warn or error", "info")
    .option("--grace <seconds>", "how long SIGTERM lets requests in flight finish", "30")
    .addHelpText("after", SETUP)
    .action(
      async (
        o: { dockerPlugin?: string | true; pidFile?: string; logFile?: string; logLevel: string; grace: string },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        const explicitRoot = cmd.parent?.getOptionValueSource("root") !== "default";
        await serve({
          root: explicitRoot ? g.root : DEFAULT_SERVE_ROOT,
          driver: g.driver,
          storageOpt: parseStorageOpts(g.storageOpt),
          dockerPlugin: o.dockerPlugin === true ? DEFAULT_DOCKER_SOCKET : o.dockerPlugin,
          pidFile: o.pidFile,
          logFile: o.logFile,
          logLevel: parseLogLevel(o.logLevel),
          graceMs: Number(o.grace) * 1000,
        });
      },
    );
}
