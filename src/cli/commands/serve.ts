/**
 * `strata serve`: run the daemon container engines use as their storage
 * (`src/serve`): Docker's graphdriver plugin, containerd's proxy
 * snapshotter, or both over one store.
 *
 * @module
 */
import type { Command } from "commander";
import { DEFAULT_DOCKER_SOCKET, DEFAULT_SERVE_ROOT, parseLogLevel, serve } from "../../serve/index.js";
import { globals, parseStorageOpts } from "../context.js";
import { UsageError } from "../errors.js";
import { defineVerb } from "../verbs.js";

const SETUP = `
Docker (as root; the plugin's name is its socket's, strata.sock -> strata):
  strata serve --driver overlay --docker-plugin          # socket ${DEFAULT_DOCKER_SOCKET}
  dockerd --experimental --storage-driver strata         # daemon.json: {"experimental": true, "storage-driver": "strata"}
containerd (config.toml: [proxy_plugins.strata] type = "snapshot", address = SOCKET):
  strata serve --driver overlay --containerd-snapshotter /run/strata/snapshotter.sock
Start strata serve before the engine (systemd: Before=docker.service / containerd.service,
KillMode=process). The store (default root ${DEFAULT_SERVE_ROOT}) is the engines' alone:
strata's other commands refuse it, and serve refuses a root with strata's own layers.
Drivers: overlay needs overlayfs; devmapper needs dm-thin or /dev/fuse and loop devices
(userspace pool); vfs needs nothing. Containers keep running when serve stops or is
killed; a restarted serve takes up their mounts where it left them.
SIGTERM stops gracefully (requests in flight finish), SIGHUP reopens --log-file.`;

/** Registers `strata serve` on `program`. */
export function serveCommand(program: Command): void {
  defineVerb(program, "serve")
    .option("--docker-plugin [socket]", "serve Docker's graphdriver plugin protocol on this unix socket")
    .option(
      "--containerd-snapshotter <socket>",
      'serve containerd\'s snapshots API on this unix socket ([proxy_plugins.strata] type = "snapshot")',
    )
    .option("--pid-file <file>", "write the daemon's pid here")
    .option("--log-file <file>", "log here instead of stderr (reopened on SIGHUP)")
    .option("--log-level <level>", "debug, info, warn or error", "info")
    .option("--grace <seconds>", "how long SIGTERM lets requests in flight finish", "30")
    .addHelpText("after", SETUP)
    .action(
      async (
        o: {
          dockerPlugin?: string | true;
          containerdSnapshotter?: string;
          pidFile?: string;
          logFile?: string;
          logLevel: string;
          grace: string;
        },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        if (!o.dockerPlugin && !o.containerdSnapshotter) {
          throw new UsageError(
            "Cannot serve: no front door given (--docker-plugin [SOCKET], --containerd-snapshotter SOCKET)",
          );
        }
        const explicitRoot = cmd.parent?.getOptionValueSource("root") !== "default";
        await serve({
          root: explicitRoot ? g.root : DEFAULT_SERVE_ROOT,
          driver: g.driver,
          storageOpt: parseStorageOpts(g.storageOpt),
          dockerPlugin: o.dockerPlugin === true ? DEFAULT_DOCKER_SOCKET : o.dockerPlugin,
          containerdSnapshotter: o.containerdSnapshotter,
          pidFile: o.pidFile,
          logFile: o.logFile,
          logLevel: parseLogLevel(o.logLevel),
          graceMs: Number(o.grace) * 1000,
        });
      },
    );
}
