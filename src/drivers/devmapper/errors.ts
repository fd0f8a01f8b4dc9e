/**
 * The DeviceSet's own error family: conditions of its metadata, filesystems
 * and mounts. Conditions of the pool itself (no space, busy, device exists
 * or missing) are the pool family's `ERR_POOL_*` codes (`src/thinpool`),
 * whichever target raised them.
 *
 * @module
 */
import { StrataError } from "../../errors.js";

/** Stable codes of the DeviceSet. */
export type DmErrorCode =
  /** A metadata file under `<home>/metadata` does not decode. */
  | "ERR_DM_METADATA"
  /** A thin device's filesystem cannot be mounted or tuned. */
  | "ERR_DM_MOUNT"
  /** mkfs, blkid, a grow or fsfreeze failed. */
  | "ERR_DM_FS"
  /** The base device's filesystem UUID is not the one recorded: a different pool. */
  | "ERR_DM_BASE_UUID";

/** A DeviceSet operation failed. */
export class DmError extends StrataError {
  declare readonly code: DmErrorCode;
  constructor(code: DmErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
