/**
 * The one error family of thin pools, whichever target serves them (the
 * kernel's dm-thin through dmsetup, or strata's userspace pool): every pool
 * condition has one stable code. The userspace daemon answers failures with
 * an errno name and dmsetup with a message; both end up here.
 *
 * @module
 */
import { StrataError } from "../errors.js";

/** Stable codes a caller of a thin pool may act on. */
export type PoolErrorCode =
  /** No free data blocks (or metadata blocks, or thin device ids). */
  | "ERR_POOL_NO_SPACE"
  /** A thin device id is taken (`create_thin`/`create_snap`). */
  | "ERR_POOL_DEVICE_EXISTS"
  /** No thin device with that id (or no active device of that name). */
  | "ERR_POOL_DEVICE_NOT_FOUND"
  /** A device or the pool is in use (open, mounted, active). */
  | "ERR_POOL_BUSY"
  /** A malformed message, size or argument, or a transaction id that does not match. */
  | "ERR_POOL_INVALID"
  /** No pool where one was named (a directory, a dm.thinpooldev name). */
  | "ERR_POOL_NOT_FOUND"
  /** A pool exists where a new one was to be made. */
  | "ERR_POOL_EXISTS"
  /** A pool given by the user (dm.thinpooldev) already holds devices. */
  | "ERR_POOL_NOT_EMPTY"
  /** The userspace pool's daemon cannot be started, reached or understood. */
  | "ERR_POOL_DAEMON"
  /** The target failed otherwise (a dmsetup failure, a pool in Fail mode, a pool not open). */
  | "ERR_POOL_TARGET";

/** A pool operation failed; `errno` is the daemon's errno name when it gave one. */
export class PoolError extends StrataError {
  declare readonly code: PoolErrorCode;
  readonly errno: string | undefined;
  constructor(code: PoolErrorCode, message: string, errno?: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.errno = errno;
  }
}

/** True when `err` is a {@link PoolError} with one of `codes`. */
export function isPoolError(err: unknown, ...codes: PoolErrorCode[]): err is PoolError {
  return err instanceof PoolError && codes.includes(err.code);
}

const byErrno: Record<string, PoolErrorCode> = {
  ENOSPC: "ERR_POOL_NO_SPACE",
  EEXIST: "ERR_POOL_DEVICE_EXISTS",
  ENODEV: "ERR_POOL_DEVICE_NOT_FOUND",
  EBUSY: "ERR_POOL_BUSY",
  EINVAL: "ERR_POOL_INVALID",
};

/** Maps the daemon's `err ERRNO message` answer to a {@link PoolError}. */
export function poolErrorFromErrno(errno: string, message: string, operation: string): PoolError {
  return new PoolError(byErrno[errno] ?? "ERR_POOL_DAEMON", `Cannot ${operation}: ${message}`, errno);
}
