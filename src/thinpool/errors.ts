/**
 * Errors of the userspace thin pool. The daemon answers failures with an
 * errno name; {@link poolErrorFromErrno} turns it into a stable code.
 *
 * @module
 */
import { StrataError } from "../errors.js";

/** Stable codes a caller of the pool may act on. */
export type PoolErrorCode =
  | "ERR_POOL_NO_SPACE"
  | "ERR_POOL_DEVICE_EXISTS"
  | "ERR_POOL_DEVICE_NOT_FOUND"
  | "ERR_POOL_BUSY"
  | "ERR_POOL_INVALID"
  | "ERR_POOL_NOT_FOUND"
  | "ERR_POOL_EXISTS"
  | "ERR_POOL_DAEMON";

/** A pool operation failed; `errno` is the daemon's errno name when it gave one. */
export class PoolError extends StrataError {
  declare readonly code: PoolErrorCode;
  readonly errno: string | undefined;
  constructor(code: PoolErrorCode, message: string, errno?: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.errno = errno;
  }
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
