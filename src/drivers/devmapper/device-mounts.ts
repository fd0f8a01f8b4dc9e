/**
 * Mounting thin devices (Docker's MountDevice/UnmountDevice): activation on
 * demand, the mount at `mnt/<id>` with `rootfs/` and the `id` file inside,
 * and on unmount a lazy umount, removal of the mount point and deactivation.
 * Per-device lock, then the global lock.
 *
 * @module
 */
import { mkdir, readFile, realpath, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hasCode } from "../../errors.js";
import { C, mount, umount2 } from "../../native.js";
import { mountedAt } from "../../util/mountinfo.js";
import { DmError } from "./errors.js";
import { mountOptions, probeFs } from "./filesystem.js";
import type { DeviceLocks, GlobalLock } from "./locks.js";
import type { DeviceInfo, MetadataStore } from "./metadata.js";
import type { DeviceNamer } from "./names.js";
import { isBusy, type PoolTarget } from "./pool.js";

/** What mounting needs of the DeviceSet. */
export interface DeviceMountsDeps {
  md: MetadataStore;
  target: PoolTarget;
  nameOf: DeviceNamer;
  deviceLocks: DeviceLocks;
  global: GlobalLock;
  /** `<home>/mnt`: device `hash` is mounted at `<mntDir>/<hash>`. */
  mntDir: string;
  mountOpts: string;
  xfsNospaceMaxRetries: string | undefined;
  /** Deactivate busy devices deferred (resolved at start from dm.use_deferred_removal). */
  deferredRemoval: boolean;
}

/** Mount and unmount of one DeviceSet's devices. */
export class DeviceMounts {
  readonly #d: DeviceMountsDeps;

  constructor(deps: DeviceMountsDeps) {
    this.#d = deps;
  }

  /** Where device `hash` is mounted. */
  mountPoint(hash: string): string {
    return join(this.#d.mntDir, hash);
  }

  /** Activates `hash` if needed and mounts it; makes `rootfs/` and the `id` file; returns `rootfs/`. */
  async mount(hash: string): Promise<string> {
    const d = this.#d;
    const mp = this.mountPoint(hash);
    return d.deviceLocks.with([hash], () =>
      d.global.with(async () => {
        const info = await d.md.live(hash);
        await mkdir(mp, { recursive: true, mode: 0o755 });
        if (!(await mountedAt(mp))) {
          const dev = await d.target.activate(d.nameOf(hash), info.device_id, info.size);
          const fs = (await probeFs(dev)) || (await d.md.deviceSet()).BaseDeviceFilesystem;
          try {
            await mount(dev, mp, fs, 0, mountOptions(fs, d.mountOpts) || null);
          } catch (err) {
            await d.target.deactivate(d.nameOf(hash), info.device_id, { deferred: false }).catch(() => {});
            throw new DmError("ERR_DM_MOUNT", `Cannot mount device ${dev} on "${mp}": ${(err as Error).message}`, {
              cause: err,
            });
          }
          if (fs === "xfs" && d.xfsNospaceMaxRetries !== undefined) await this.#xfsNospace(dev);
        }
        const rootfs = join(mp, "rootfs");
        await mkdir(rootfs, { recursive: true, mode: 0o755 });
        const idFile = join(mp, "id");
        if ((await readFile(idFile, "utf8").catch(() => "")) !== hash) await writeFile(idFile, hash);
        return rootfs;
      }),
    );
  }

  /** dm.xfs_nospace_max_retries → /sys/fs/xfs/<dev>/error/metadata/ENOSPC/max_retries. */
  async #xfsNospace(dev: string): Promise<void> {
    const name = (await realpath(dev)).split("/").pop()!;
    const file = `/sys/fs/xfs/${name}/error/metadata/ENOSPC/max_retries`;
    try {
      await writeFile(file, this.#d.xfsNospaceMaxRetries!);
    } catch (err) {
      throw new DmError("ERR_DM_MOUNT", `Cannot set dm.xfs_nospace_max_retries: "${file}": ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Lazily unmounts device `hash`, removes its mount point and deactivates the device. */
  async unmount(hash: string): Promise<void> {
    const d = this.#d;
    const mp = this.mountPoint(hash);
    await d.deviceLocks.with([hash], () =>
      d.global.with(async () => {
        if (await mountedAt(mp)) await umount2(mp, C.MNT_DETACH);
        await rmdir(mp).catch((err) => {
          if (!hasCode(err, "ENOENT", "ENOTEMPTY", "EBUSY")) throw err;
        });
        const info = await d.md.device(hash);
        if (info) await this.deactivate(info);
      }),
    );
  }

  /** Deactivates a device: deferred when enabled, else retried while busy (Docker: 200 × 100 ms). */
  async deactivate(info: DeviceInfo): Promise<void> {
    const name = this.#d.nameOf(info.hash);
    for (let i = 0; ; i++) {
      try {
        await this.#d.target.deactivate(name, info.device_id, { deferred: this.#d.deferredRemoval });
        return;
      } catch (err) {
        if (!isBusy(err) || i >= 20) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}
