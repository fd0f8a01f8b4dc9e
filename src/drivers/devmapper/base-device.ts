/**
 * The base device (Docker's setupBaseImage): the thin device every layer
 * without parent snapshots. Created once and formatted (dm.fs, dm.mkfsarg);
 * on each start its filesystem UUID is checked against the saved one (a
 * different pool is refused) and it is grown when dm.basesize asks for more
 * (never shrunk).
 *
 * @module
 */
import { InvalidArgumentError } from "../../errors.js";
import { PoolError } from "../../thinpool/index.js";
import { DmError } from "./errors.js";
import { defaultFs, fsUUID, growFilesystem, makeFs, probeFs } from "./filesystem.js";
import type { DeviceInfo, MetadataStore } from "./metadata.js";
import type { DeviceNamer } from "./names.js";
import { isMissing, type PoolTarget } from "./pool.js";
import type { Provisioner } from "./provisioning.js";
import type { Transactions } from "./transactions.js";

/** Docker's default base device size: 10 GiB. */
export const DEFAULT_BASE_SIZE = 10 * 1024 ** 3;

/** What the base device needs of the DeviceSet: its stores, its pool and the options that shape the base. */
export interface BaseDeviceDeps {
  md: MetadataStore;
  tx: Transactions;
  provisioner: Provisioner;
  target: PoolTarget;
  nameOf: DeviceNamer;
  /** For messages: the pool's name. */
  poolName: string;
  /** A user's pool (dm.thinpooldev): it must be empty when the base is made. */
  externalPool: boolean;
  /** dm.basesize; undefined keeps the existing size (10 GiB for a new base). */
  baseSize: number | undefined;
  /** dm.fs; "" picks xfs when usable, else ext4. */
  fs: "" | "xfs" | "ext4";
  mkfsArgs: readonly string[];
  mountOpts: string;
  /** A scratch mount point for growing an xfs base. */
  growMountPoint: string;
}

/** Sets the base device up at start. Runs under the DeviceSet's global lock. */
export async function setupBaseDevice(deps: BaseDeviceDeps): Promise<void> {
  const base = await deps.md.device("");
  if (base && base.initialized && !base.deleted) {
    await verify(deps, base);
    return;
  }
  if (base) {
    // A base that never finished initializing: delete it and start again (Docker does the same).
    await deps.tx.run("", base.device_id, async () => {
      await deps.target.deactivate(deps.nameOf(""), base.device_id, { deferred: false }).catch(() => {});
      await deps.target.message(`delete ${base.device_id}`).catch((err) => {
        if (!isMissing(err)) throw err;
      });
      await deps.md.removeDevice("");
    });
  }
  if (deps.externalPool) await assertEmptyPool(deps);
  await create(deps);
}

/** Docker's checkThinPool: a user's pool must start empty (no used data blocks, transaction 0). */
async function assertEmptyPool(deps: BaseDeviceDeps): Promise<void> {
  const s = await deps.target.status();
  if (s.usedDataBlocks !== 0 || s.transactionId !== 0) {
    throw new PoolError(
      "ERR_POOL_NOT_EMPTY",
      `Cannot use thin pool "${deps.poolName}": it is not empty (${s.usedDataBlocks} data blocks used, transaction ${s.transactionId})`,
    );
  }
}

async function create(deps: BaseDeviceDeps): Promise<void> {
  const size = deps.baseSize ?? DEFAULT_BASE_SIZE;
  const info = await deps.provisioner.create("", size, (id) => deps.target.message(`create_thin ${id}`));
  const name = deps.nameOf("");
  const dev = await deps.target.activate(name, info.device_id, size);
  try {
    const fs = deps.fs || (await defaultFs());
    await makeFs(fs, dev, deps.mkfsArgs);
    const meta = await deps.md.deviceSet();
    await deps.md.saveDeviceSet({ ...meta, BaseDeviceFilesystem: fs, BaseDeviceUUID: await fsUUID(dev) });
    info.initialized = true;
    await deps.md.saveDevice(info);
  } finally {
    await deps.target.deactivate(name, info.device_id, { deferred: false });
  }
}

async function verify(deps: BaseDeviceDeps, base: DeviceInfo): Promise<void> {
  const name = deps.nameOf("");
  const meta = await deps.md.deviceSet();
  const want = deps.baseSize;
  if (want !== undefined && want < base.size) {
    throw new InvalidArgumentError(
      "ERR_INVALID_OPTION",
      `Cannot start devmapper: Base device size cannot be smaller than ${base.size} bytes "dm.basesize=${want}"`,
    );
  }
  const dev = await deps.target.activate(name, base.device_id, Math.max(base.size, want ?? 0));
  try {
    const uuid = await fsUUID(dev);
    if (meta.BaseDeviceUUID && uuid !== meta.BaseDeviceUUID) {
      throw new DmError(
        "ERR_DM_BASE_UUID",
        `Cannot start devmapper: Base Device UUID and Filesystem verification failed: current UUID "${uuid}" does not match the saved "${meta.BaseDeviceUUID}"; possibly using a different thin pool than last invocation`,
      );
    }
    const fs = meta.BaseDeviceFilesystem || (await probeFs(dev));
    if (deps.fs && fs && deps.fs !== fs) {
      // Docker ignores dm.fs (with a warning) once the base exists with another filesystem.
      process.emitWarning(`devmapper: base device already uses ${fs}; ignoring dm.fs=${deps.fs}`);
    }
    if (!meta.BaseDeviceUUID || !meta.BaseDeviceFilesystem) {
      await deps.md.saveDeviceSet({ ...meta, BaseDeviceUUID: uuid, BaseDeviceFilesystem: fs });
    }
    if (want !== undefined && want > base.size) {
      await growFilesystem(fs, dev, deps.growMountPoint, deps.mountOpts);
      base.size = want;
      await deps.md.saveDevice(base);
    }
  } finally {
    await deps.target.deactivate(name, base.device_id, { deferred: false });
  }
}
