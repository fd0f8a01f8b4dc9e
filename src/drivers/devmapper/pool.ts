/**
 * The thin-pool target interface: the language of the kernel's dm thin-pool
 * target (messages, the status line, thin devices activated as block
 * devices), spoken by both implementations (`kernel-target.ts`,
 * `userspace-target.ts`). The DeviceSet knows nothing else about the pool.
 * Both fail with the one pool error family ({@link PoolError}, `ERR_POOL_*`)
 * and report status in the one parsed form ({@link PoolStatus}).
 *
 * @module
 */
import { isPoolError, type PoolStatus } from "../../thinpool/index.js";

/** Where the pool's data and metadata live, for `status()`. */
export interface TargetFiles {
  /** Block device holding data (loop device or dm.datadev), "" when not known. */
  dataDevice: string;
  metadataDevice: string;
  /** Backing files when loop files are used, else "". */
  dataLoopFile: string;
  metadataLoopFile: string;
}

/** How to build or find the pool. */
export interface PoolSpec {
  /** Pool name (`strata-M:m-INODE-pool`, or dm.thinpooldev). */
  name: string;
  /** Directory for the default sparse loop files (`<home>/devicemapper`). */
  loopDir: string;
  /** Bytes of the data loop file: made that large, or grown to it (never shrunk). */
  dataSize: number;
  /** Bytes of the metadata loop file: made that large, or grown to it (never shrunk). */
  metadataSize: number;
  blockSize: number;
  dataDev: string;
  metadataDev: string;
  /** True when the pool was made by the user (dm.thinpooldev): never created, grown nor removed. */
  external: boolean;
}

/** A thin-pool target: one pool, reached through messages and thin devices. */
export interface PoolTarget {
  /** "kernel" or "userspace". */
  readonly kind: "kernel" | "userspace";
  /**
   * Opens the pool, creating it (and its loop files) when it does not exist
   * and is not external; grows loop files smaller than the spec asks.
   */
  open(spec: PoolSpec): Promise<void>;
  /** Sends a pool message: `create_thin N`, `create_snap N ORIGIN`, `delete N`, `set_transaction_id OLD NEW`. */
  message(msg: string): Promise<void>;
  status(): Promise<PoolStatus>;
  /** The pool's data block size in bytes (known once open). */
  dataBlockSize(): number;
  files(): Promise<TargetFiles>;
  /**
   * Activates thin device `deviceId` with `name` and `size` bytes; returns its
   * block device. Activating an active device returns it unchanged.
   */
  activate(name: string, deviceId: number, size: number): Promise<string>;
  /**
   * Deactivates; ERR_POOL_BUSY when the device stays open. With `deferred`, a
   * busy device is removed by the target once its last user closes it.
   */
  deactivate(name: string, deviceId: number, opts: { deferred: boolean }): Promise<void>;
  /** The active block device of a thin device, or null. */
  activeDevice(name: string, deviceId: number): Promise<string | null>;
  /** Names (kernel) or ids (userspace, as strings) of the active thin devices of this pool. */
  activeDevices(): Promise<string[]>;
  /**
   * Why I/O on `blockDevice` (a thin device of this pool, as a mount's
   * source) no longer reaches the pool, or null when it does: the userspace
   * pool's daemon died under its loop device, so every I/O fails until the
   * device is deactivated and activated again. Always null for the kernel
   * target, whose devices the kernel serves.
   */
  lostDevice(blockDevice: string): Promise<string | null>;
  /** Suspends an active device (I/O held) while its origin is snapshotted; no-op if inactive. */
  suspend(name: string, deviceId: number): Promise<void>;
  resume(name: string, deviceId: number): Promise<void>;
  /** Whether busy devices can be removed deferred (kernel dm ≥ 4.27, or the userspace autoclear). */
  deferredRemovalSupported(): Promise<boolean>;
  /** Whether create/remove synchronise with udev. */
  udevSyncSupported(): Promise<boolean>;
  /** "Library Version" for status(), naming the target. */
  libraryVersion(): Promise<string>;
  /** Free bytes on the filesystem holding loop files (caps "Available"), or null without loop files. */
  backingFree(): Promise<number | null>;
  /** Deactivates the pool itself (only when strata created it and nothing is active). */
  close(opts: { removePool: boolean }): Promise<void>;
}

/** True when a target error says "busy" (EBUSY). */
export function isBusy(err: unknown): boolean {
  return isPoolError(err, "ERR_POOL_BUSY");
}
/** True when a target error says the device id is taken (EEXIST). */
export function isExists(err: unknown): boolean {
  return isPoolError(err, "ERR_POOL_DEVICE_EXISTS");
}
/** True when a target error says the device does not exist (ENODATA/ENODEV/ENXIO). */
export function isMissing(err: unknown): boolean {
  return isPoolError(err, "ERR_POOL_DEVICE_NOT_FOUND");
}
