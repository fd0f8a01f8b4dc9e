/**
 * `strata serve`: a long-lived daemon serving one store to container
 * engines. Front door here: `--containerd-snapshotter SOCKET`, containerd's
 * proxy snapshotter (src/serve/containerd). Foreground; logs to stderr;
 * SIGTERM or SIGINT stops it gracefully (running calls finish; mounts and
 * devices containerd uses stay).
 *
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { FailedPreconditionError } from "../../errors.js";
import { globals, openDriver } from "../context.js";
import { UsageError } from "../errors.js";
import { defineVerb } from "../verbs.js";

/** Waits for SIGTERM or SIGINT. */
function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => {
      process.off("SIGTERM", on);
      process.off("SIGINT", on);
      resolve(sig);
    };
    process.on("SIGTERM", on);
    process.on("SIGINT", on);
  });
}

/** Adds `strata serve`. */
export function serveCommand(program: Command): void {
  defineVerb(program, "serve")
    .option(
      "--containerd-snapshotter <socket>",
      'containerd proxy snapshotter on this unix socket (containerd: [proxy_plugins.strata] type = "snapshot")',
    )
    .action(async (o: { containerdSnapshotter?: string }, cmd: Command) => {
      const g = globals(cmd);
      if (!o.containerdSnapshotter)
        throw new UsageError("Cannot serve: no front door given (--containerd-snapshotter)");
      // strata's own layer store would take the snapshotter's layers for orphans (strata check --repair).
      if (existsSync(join(g.root, "layerdb")))
        throw new FailedPreconditionError(
          "ERR_STORE_IN_USE",
          `Cannot serve containerd: the root holds strata's own layer store; give containerd its own --root "${g.root}"`,
        );
      // Loaded here: the gRPC server is not worth loading for any other verb.
      const { startSnapshotter } = await import("../../serve/containerd/index.js");
      const driver = await openDriver(g);
      const log = (line: string) => console.error(`strata serve: ${line}`);
      try {
        const server = await startSnapshotter({
          driver,
          stateDir: join(g.root, "containerd"),
          socket: o.containerdSnapshotter,
          log: (line) => log(`containerd: ${line}`),
        });
        log(`containerd snapshotter on ${server.socket} (driver ${driver.name}, root ${g.root}, pid ${process.pid})`);
        log(`stopping on ${await stopSignal()}`);
        await server.close();
      } finally {
        await driver.close(); // not cleanup(): containers keep their mounts and devices
      }
    });
}
