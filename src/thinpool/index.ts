/**
 * strata's userspace thin pool: dm-thin format metadata, copy-on-write thin
 * devices served by `strata-poold` through FUSE and loop devices.
 *
 * @module
 */
export { ThinPool, type CreatePoolOptions, type PoolInfo, type ThinDeviceInfo } from "./pool.js";
export { PoolError, type PoolErrorCode } from "./errors.js";
export { parseStatus, type PoolStatus } from "./status.js";
export { poolLayout, recoverCrashed, loopsBackedUnder, type PoolLayout } from "./daemon.js";
