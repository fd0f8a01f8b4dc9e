/**
 * Whether overlay can run under a given home, found by trying: overlay in
 * /proc/filesystems, the backing filesystem (statfs), d_type, a real probe
 * mount with two lowers (classic mount(2) and the new API's `lowerdir+`),
 * and whether reading the upper dir alone gives a correct diff (Docker's
 * doesSupportNativeDiff: no opaque-xattr copy-up, no redirect_dir, and,
 * beyond Docker v20, no metacopy).
 *
 * Every "cannot run here" is a {@link NotSupportedError}, so auto-selection
 * moves on to the next driver.
 *
 * @module
 */
import { access, chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { hasCode, NotSupportedError } from "../../errors.js";
import { backingFs, FS_MAGIC } from "../../graphdriver/fsmagic.js";
import { C, fsmountConfig, hasUnknownDtype, lgetxattr, lsetxattr, mount, umount2 } from "../../native.js";
import { mountOf } from "../../util/mountinfo.js";
import { type MountFeatures, mountsUnder, unmountOverlay } from "./mount.js";

/** What the checks found. */
export interface OverlaySupport extends MountFeatures {
  /** `docker info` name of the backing filesystem. */
  backingFs: string;
  /** Whether readdir reports file types (always true once the checks pass). */
  dType: boolean;
  /** Whether diff/diffSize may read the upper dir alone. */
  nativeDiff: boolean;
  /** Why native diff is off, when it is. */
  naiveReason: string;
  /** Project quotas available (xfs mounted with prjquota). */
  projectQuota: boolean;
}

/** Backing filesystems overlay must not sit on, with the reason shown to the user. */
const REFUSED = new Map<number, string>([
  [FS_MAGIC.OVERLAY, "overlay on overlay is not supported"],
  [FS_MAGIC.AUFS, "overlay on aufs is not supported"],
  [FS_MAGIC.ECRYPTFS, "overlay on ecryptfs is not supported"],
  [FS_MAGIC.NFS, "overlay on nfs is not supported"],
  [FS_MAGIC.ZFS, "overlay on zfs is not supported"],
  [FS_MAGIC.FUSE, "overlay on fuse is not supported"],
  [0xff534d42, "overlay on cifs is not supported"],
  [0x517b, "overlay on smb is not supported"],
]);

/** The directory to probe: `home` when it exists, else its nearest existing ancestor. */
async function testDir(home: string): Promise<string> {
  let dir = home;
  for (;;) {
    try {
      if ((await stat(dir)).isDirectory()) return dir;
    } catch (err) {
      if (!hasCode(err, "ENOENT")) throw err;
    }
    const up = dirname(dir);
    if (up === dir) return dir;
    dir = up;
  }
}

function notSupported(code: string, reason: string, path: string, cause?: unknown): NotSupportedError {
  return new NotSupportedError(code, `Cannot use overlay: ${reason} "${path}"`, { cause });
}

/**
 * Runs every check for a driver home.
 * @throws NotSupportedError: ERR_OVERLAY_UNSUPPORTED (no overlay in the kernel or the probe
 *   mount fails), ERR_OVERLAY_BACKING_FS, ERR_OVERLAY_DTYPE
 */
export async function checkSupport(home: string): Promise<OverlaySupport> {
  const filesystems = await readFile("/proc/filesystems", "utf8");
  if (!/\toverlay$/m.test(filesystems)) {
    throw notSupported("ERR_OVERLAY_UNSUPPORTED", "the kernel has no overlay filesystem (/proc/filesystems)", home);
  }
  const dir = await testDir(home);
  const fs = await backingFs(dir);
  const refused = REFUSED.get(fs.magic);
  if (refused) throw notSupported("ERR_OVERLAY_BACKING_FS", `backing filesystem ${fs.name}: ${refused}`, dir);

  await sweepStaleProbes(dir);
  const probe = await mkdtemp(join(dir, ".overlay-probe-"));
  try {
    await writeFile(join(probe, "dtype-probe"), "");
    if (await hasUnknownDtype(probe)) {
      const hint = fs.name === "xfs" ? " (reformat xfs with ftype=1)" : "";
      throw notSupported("ERR_OVERLAY_DTYPE", `backing filesystem ${fs.name} does not support d_type${hint}`, dir);
    }
    const indexParam = await access("/sys/module/overlay/parameters/index").then(
      () => true,
      () => false,
    );
    for (const d of ["l1", "l2", "u", "w", "m"]) await mkdir(join(probe, d));
    const p = (d: string) => join(probe, d);
    try {
      await mount(
        "overlay",
        p("m"),
        "overlay",
        0,
        `lowerdir=${p("l2")}:${p("l1")},upperdir=${p("u")},workdir=${p("w")}`,
      );
    } catch (err) {
      throw notSupported(
        "ERR_OVERLAY_UNSUPPORTED",
        `probe mount with two lowers failed: ${(err as Error).message}`,
        dir,
        err,
      );
    }
    await unmountOverlay(p("m"));
    const lowerdirPlus = await probeLowerdirPlus(probe);
    const naiveReason = await probeNaiveReason(probe, indexParam);
    return {
      backingFs: fs.name,
      dType: true,
      indexParam,
      lowerdirPlus,
      nativeDiff: naiveReason === "",
      naiveReason,
      projectQuota: fs.magic === FS_MAGIC.XFS && (await hasProjectQuota(dir)),
    };
  } finally {
    await removeProbe(probe);
  }
}

/** Detaches every mount left under a probe dir (stacked ones too), then removes it. */
async function removeProbe(probe: string): Promise<void> {
  for (let round = 0; round < 16; round++) {
    const left = await mountsUnder(probe);
    if (left.length === 0) break;
    for (const m of left.sort((a, b) => b.length - a.length)) await umount2(m, C.MNT_DETACH).catch(() => undefined);
  }
  await rm(probe, { recursive: true, force: true });
}

/** Probe dirs of processes killed mid-probe (older than a minute) are removed before probing again. */
async function sweepStaleProbes(dir: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(".overlay-probe-")) continue;
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st && now - st.mtimeMs > 60_000) await removeProbe(join(dir, name)).catch(() => undefined);
  }
}

/** Whether the new mount API takes overlay lowers one by one (`lowerdir+`, kernel 6.8+). */
async function probeLowerdirPlus(probe: string): Promise<boolean> {
  const m = join(probe, "m");
  await mkdir(m, { recursive: true });
  try {
    await fsmountConfig(
      "overlay",
      [
        ["lowerdir+", join(probe, "l2")],
        ["lowerdir+", join(probe, "l1")],
      ],
      m,
      1,
    );
  } catch {
    return false;
  }
  await unmountOverlay(m);
  return true;
}

/** "" when the upper dir alone describes a layer's changes, else why not. */
async function probeNaiveReason(probe: string, indexParam: boolean): Promise<string> {
  const dirs = ["nl1", "nl2", "nu", "nw", "nm"];
  for (const d of dirs) await mkdir(join(probe, d));
  const p = (d: string) => join(probe, d);
  await mkdir(join(p("nl1"), "d"));
  await mkdir(join(p("nl2"), "d"));
  await lsetxattr(join(p("nl2"), "d"), "trusted.overlay.opaque", Buffer.from("y"));
  await mkdir(join(p("nl1"), "r"));
  await writeFile(join(p("nl1"), "f"), "probe");
  const opts = `${indexParam ? "index=off," : ""}lowerdir=${p("nl2")}:${p("nl1")},upperdir=${p("nu")},workdir=${p("nw")}`;
  await mount("overlay", p("nm"), "overlay", 0, opts);
  try {
    await writeFile(join(p("nm"), "d", "f"), "x");
    if ((await lgetxattr(join(p("nu"), "d"), "trusted.overlay.opaque"))?.toString() === "y") {
      return "the kernel copies up the opaque xattr";
    }
    try {
      await rename(join(p("nm"), "r"), join(p("nm"), "r2"));
      return "redirect_dir is enabled";
    } catch (err) {
      if (!hasCode(err, "EXDEV")) throw err;
    }
    await chmod(join(p("nm"), "f"), 0o600);
    if ((await lgetxattr(join(p("nu"), "f"), "trusted.overlay.metacopy")) !== null) return "metacopy is enabled";
    return "";
  } finally {
    await unmountOverlay(p("nm"));
  }
}

/** xfs mounted with project quota enforcement (prjquota/pquota/pqnoenforce). */
async function hasProjectQuota(dir: string): Promise<boolean> {
  const opts = (await mountOf(dir)).superOptions;
  return opts.some((o) => o === "prjquota" || o === "pquota" || o === "pqnoenforce");
}
