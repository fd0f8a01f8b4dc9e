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
import { hasCode, StrataError } from "../../errors.js";
import { C, mount, umount2 } from "../../native.js";
import type { DeviceSet } from "./device-set.js";
import { mountOptions, probeFs } from "./filesystem.js";
import type { DeviceInfo } from "./metadata.js";
import { mountedAt } from "../../util/mountinfo.js";
import { isBusy } from "./pool.js";

/** Mount and unmount of one DeviceSet's devices. */
export class DeviceMounts {
  readonly #ds: DeviceSet;

  constructor(ds: DeviceSet) {
    this.#ds = ds;
  }

  /** Activates `hash` if needed and mounts it at `mp`; makes `rootfs/` and the `id` file. */
  async mount(hash: string, mp: string): Promise<string> {
    return this.#ds.deviceLocks.with([hash], () =>
      this.#ds.global.with(async () => {
        const info = await this.#ds.lookup(hash);
        await mkdir(mp, { recursive: true, mode: 0o755 });
        if (!(await mountedAt(mp))) {
          const dev = await this.#ds.target.activate(this.#ds.nameOf(hash), info.device_id, info.size);
          const fs = (await probeFs(dev)) || (await this.#ds.md.deviceSet()).BaseDeviceFilesystem;
          try {
            await mount(dev, mp, fs, 0, mountOptions(fs, this.#ds.config.mountOpts) || null);
          } catch (err) {
            await this.#ds.target
              .deactivate(this.#ds.nameOf(hash), info.device_id, { deferred: false })
              .catch(() => {});
            throw new StrataError("ERR_DM_MOUNT", `Cannot mount device ${dev} on "${mp}": ${(err as Error).message}`, {
              cause: err,
            });
          }
          if (fs === "xfs" && this.#ds.config.xfsNospaceMaxRetries !== undefined) await this.#xfsNospace(dev);
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
      await writeFile(file, this.#ds.config.xfsNospaceMaxRetries!);
    } catch (err) {
      throw new StrataError(
        "ERR_DM_MOUNT",
        `Cannot set dm.xfs_nospace_max_retries: "${file}": ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** Lazily unmounts `mp`, removes the directory and deactivates the device. */
  async unmount(hash: string, mp: string): Promise<void> {
    await this.#ds.deviceLocks.with([hash], () =>
      this.#ds.global.with(async () => {
        if (await mountedAt(mp)) await umount2(mp, C.MNT_DETACH);
        await rmdir(mp).catch((err) => {
          if (!hasCode(err, "ENOENT", "ENOTEMPTY", "EBUSY")) throw err;
        });
        const info = await this.#ds.md.device(hash);
        if (info) await this.deactivate(info);
      }),
    );
  }

  /** Deactivates a device: deferred when enabled, else retried while busy (Docker: 200 × 100 ms). */
  async deactivate(info: DeviceInfo): Promise<void> {
    const name = this.#ds.nameOf(info.hash);
    for (let i = 0; ; i++) {
      try {
        await this.#ds.target.deactivate(name, info.device_id, { deferred: this.#ds.deferredRemoval });
        return;
      } catch (err) {
        if (!isBusy(err) || i >= 20) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}
