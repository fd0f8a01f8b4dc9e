/**
 * `strata serve`: the daemon that lets container engines run on strata's
 * drivers. One store and driver, front doors on unix sockets: Docker's
 * graphdriver plugin protocol (`docker/`); containerd's proxy snapshotter
 * plugs in beside it (`containerd/`). See README.md.
 *
 * @module
 */
export { serve, type ServeOptions, type StopSignal } from "./daemon.js";
export type { FrontDoor, ServeContext } from "./context.js";
export { DEFAULT_DOCKER_SOCKET, DOCKER_OWNER, startDockerPlugin } from "./docker/index.js";
export { LOG_LEVELS, Logger, type LogLevel, parseLogLevel } from "./log.js";
