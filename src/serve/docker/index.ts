/**
 * The Docker front door of `strata serve`: Docker's graphdriver plugin
 * protocol on a unix socket, over the daemon's store. dockerd finds the
 * plugin by the socket's name: `/run/docker/plugins/NAME.sock` is used by
 * `dockerd --experimental --storage-driver NAME`.
 *
 * @module
 */
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import type { Socket } from "node:net";
import type { FrontDoor, ServeContext } from "../context.js";
import { prepareSocketPath } from "../unix-socket.js";
import { dockerPluginServer } from "./http.js";
import { PendingLayers } from "./pending.js";
import { DockerPlugin } from "./plugin.js";

export { DOCKER_HOLDER, DockerPlugin } from "./plugin.js";
export { MAX_JSON_BODY } from "./http.js";

/** The socket dockerd looks up for `--storage-driver strata`. */
export const DEFAULT_DOCKER_SOCKET = "/run/docker/plugins/strata.sock";

/** Where the plugin keeps its own records: `<root>/serve/<driver>/docker`. */
export function dockerStateDir(ctx: ServeContext): string {
  return join(ctx.root, "serve", ctx.driver.name, "docker");
}

/**
 * Starts serving the protocol on `socket` (created mode 0600: root's dockerd
 * is its only client).
 * @throws ERR_SOCKET_IN_USE when another daemon serves that socket
 */
export async function startDockerPlugin(ctx: ServeContext, socket: string): Promise<FrontDoor> {
  const pending = new PendingLayers(join(dockerStateDir(ctx), "pending"));
  await pending.init();
  const server = dockerPluginServer(new DockerPlugin(ctx, pending), ctx.log);
  // A layer apply lasts as long as dockerd takes to send it; Node's default would cut it at 5 min.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  let closing: Promise<void> | undefined;
  // While closing, a keep-alive connection ends as soon as its request is answered.
  server.on("request", (_req, res) =>
    res.once("finish", () => closing && setImmediate(() => server.closeIdleConnections())),
  );
  await prepareSocketPath(socket);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await chmod(socket, 0o600);
  ctx.log.info("serving Docker's graphdriver plugin protocol", { socket });

  return {
    name: "docker-plugin",
    address: socket,
    close(graceMs: number): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        // close() stops accepting and resolves once every connection has ended.
        server.close(() => resolve());
        server.closeIdleConnections();
        const cut = setTimeout(() => {
          ctx.log.warn("requests still running at the end of the grace period; cutting them", {
            connections: sockets.size,
          });
          for (const s of sockets) s.destroy();
        }, graceMs);
        cut.unref();
      });
      return closing;
    },
  };
}
