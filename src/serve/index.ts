/**
 * `strata serve`: the daemon that lets container engines run on strata's
 * drivers. One store and driver, front doors on unix sockets: Docker's
 * graphdriver plugin protocol (`docker/`) and containerd's proxy
 * snapshotter (`containerd/`). See README.md.
 *
 * @module
 */
export { DEFAULT_SERVE_ROOT, serve, SERVE_OWNER, type ServeOptions, type StopSignal } from "./daemon.js";
export type { FrontDoor, ServeContext } from "./context.js";
export { DEFAULT_DOCKER_SOCKET, startDockerPlugin } from "./docker/index.js";
export { startSnapshotter } from "./containerd/index.js";
export { LOG_LEVELS, Logger, type LogLevel, parseLogLevel } from "./log.js";
