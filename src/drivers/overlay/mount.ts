/**
 * Mounting and unmounting overlay layers. Three ways to pass the lowers,
 * tried in order, because mount(2) takes at most a page of option data:
 *
 * 1. mount(2) with absolute paths (`<home>/l/<short>`), when they fit;
 * 2. mount(2) with paths relative to the driver home (`l/<short>`), made
 *    from a thread whose cwd is the home (Docker's `mountfrom`);
 * 3. the new mount API: one `fsconfig(lowerdir+)` per lower, no page limit
 *    (kernel 6.8+), up to the kernel's own lower limit.
 *
 * Unmounting is lazy (MNT_DETACH) and followed by rmdir of the mount point,
 * so a mount that leaked into another namespace cannot make `put` or
 * `remove` fail with "device or resource busy".
 *
 * @module
 */
import { rmdir } from "node:fs/promises";
import { join } from "node:path";
import { hasCode, StrataError } from "../../errors.js";
import { FS_MAGIC } from "../../graphdriver/fsmagic.js";
import { C, fsmountConfig, MOUNT_ATTR, mount, mountFrom, statfs, umount2 } from "../../native.js";
import { readMountinfo } from "../../util/mountinfo.js";

/** mount(2) accepts at most a page of data, NUL included. */
export const PAGE_SIZE = 4096;

/** What to mount: every path relative to `home`. */
export interface OverlayMountSpec {
  home: string;
  /** `l/<short>` entries (or `<id>/diff`), topmost first. */
  lowers: string[];
  /** `<id>/diff`, absent for a read-only mount. */
  upper?: string;
  /** `<id>/work`, with `upper`. */
  work?: string;
  /** `<id>/merged`. */
  target: string;
  /**
   * Where the mount really goes, when not `<home>/<target>`: the
   * `/proc/self/fd/<fd>` of the target directory the caller checked, so a
   * path swapped for a symlink since cannot move the mount elsewhere.
   */
  at?: string;
  readOnly: boolean;
}

/** Kernel facts the mount needs (from the support checks). */
export interface MountFeatures {
  /** `/sys/module/overlay/parameters/index` exists: pass `index=off` as Docker does. */
  indexParam: boolean;
  /** The new mount API accepts `lowerdir+`. */
  lowerdirPlus: boolean;
}

/** How a mount was made (reported by tests and the benchmark). */
export type MountMethod = "mount" | "mountfrom" | "fsconfig";

function mountData(spec: OverlayMountSpec, f: MountFeatures, path: (rel: string) => string): string {
  let s = f.indexParam ? "index=off," : "";
  s += `lowerdir=${spec.lowers.map(path).join(":")}`;
  if (spec.upper) s += `,upperdir=${path(spec.upper)},workdir=${path(spec.work!)}`;
  return s;
}

/**
 * Mounts an overlay as described, choosing the first method that can carry
 * the lowers.
 * @returns the method used
 * @throws ERR_MOUNT (with the errno cause) when the kernel refuses;
 *   ERR_MOUNT_DATA_TOO_LONG when no method can carry that many lowers
 */
export async function mountOverlay(spec: OverlayMountSpec, f: MountFeatures): Promise<MountMethod> {
  const flags = spec.readOnly ? C.MS_RDONLY : 0;
  const abs = (rel: string) => join(spec.home, rel);
  const target = abs(spec.target);
  const at = spec.at ?? target;
  try {
    const absolute = mountData(spec, f, abs);
    if (absolute.length < PAGE_SIZE) {
      await mount("overlay", at, "overlay", flags, absolute);
      return "mount";
    }
    const relative = mountData(spec, f, (r) => r);
    if (relative.length < PAGE_SIZE) {
      await mountFrom(spec.home, "overlay", spec.at ?? spec.target, "overlay", flags, relative);
      return "mountfrom";
    }
    if (!f.lowerdirPlus) {
      throw new StrataError(
        "ERR_MOUNT_DATA_TOO_LONG",
        `Cannot mount layer: ${spec.lowers.length} lowers exceed a page of mount data and this kernel has no lowerdir+ "${target}"`,
      );
    }
    const params: Array<[string, string | null]> = [];
    if (f.indexParam) params.push(["index", "off"]);
    for (const l of spec.lowers) params.push(["lowerdir+", abs(l)]);
    if (spec.upper) params.push(["upperdir", abs(spec.upper)], ["workdir", abs(spec.work!)]);
    await fsmountConfig("overlay", params, at, spec.readOnly ? MOUNT_ATTR.RDONLY : 0);
    return "fsconfig";
  } catch (err) {
    if (err instanceof StrataError && err.code === "ERR_MOUNT_DATA_TOO_LONG") throw err;
    throw new StrataError("ERR_MOUNT", `Cannot mount layer: ${(err as Error).message} "${target}"`, { cause: err });
  }
}

/** Whether `path` is the root of an overlay mount (statfs magic, as Docker's FsChecker). */
export async function isOverlayMounted(path: string): Promise<boolean> {
  try {
    return (await statfs(path)).type >>> 0 === FS_MAGIC.OVERLAY;
  } catch (err) {
    if (hasCode(err, "ENOENT", "ENOTDIR")) return false;
    throw err;
  }
}

/**
 * Lazily unmounts `target` if mounted, then removes the mount point.
 * Idempotent. A symlink at `target` is neither followed nor removed.
 */
export async function unmountOverlay(target: string): Promise<void> {
  try {
    await umount2(target, C.MNT_DETACH | C.UMOUNT_NOFOLLOW);
  } catch (err) {
    if (!hasCode(err, "EINVAL", "ENOENT")) {
      throw new StrataError("ERR_UNMOUNT", `Cannot unmount layer: ${(err as Error).message} "${target}"`, {
        cause: err,
      });
    }
  }
  try {
    await rmdir(target);
  } catch (err) {
    if (!hasCode(err, "ENOENT", "ENOTDIR")) throw err;
  }
}

/** Mount points strictly inside `dir`, once per mount (stacked mounts repeat). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return (await readMountinfo()).map((m) => m.mountPoint).filter((p) => p.startsWith(prefix));
}
