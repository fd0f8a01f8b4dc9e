/**
 * strata's userspace thin pool: dm-thin format metadata, copy-on-write thin
 * devices served by `strata-poold` through FUSE and loop devices; and the
 * thin-pool language both devmapper targets share: the status line parser
 * and the `ERR_POOL_*` error family.
 *
 * @module
 */
export { ThinPool, type CreatePoolOptions, type PoolInfo, type ThinDeviceInfo } from "./pool.js";
export { isPoolError, PoolError, type PoolErrorCode } from "./errors.js";
export { parseStatus, type PoolStatus } from "./status.js";
export { recoverCrashed, loopsBackedUnder, poolLayout, type PoolLayout } from "./daemon.js";
