/**
 * The filesystem on thin devices: choosing it (dm.fs), making it (mkfs with
 * Docker's arguments), probing it (superblock magic), its UUID (blkid),
 * growing it (resize2fs / xfs_growfs) and the mount options (xfs `nouuid`:
 * every snapshot carries its origin's UUID).
 *
 * @module
 */
import { execFile } from "node:child_process";
import { mkdir, open, readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { C, mount, umount2 } from "../../native.js";
import { DmError } from "./errors.js";

const execFileP = promisify(execFile);

async function run(cmd: string, args: string[]): Promise<string> {
  try {
    return (await execFileP(cmd, args, { maxBuffer: 16 << 20 })).stdout;
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? "").trim();
    throw new DmError("ERR_DM_FS", `Cannot run ${cmd} ${args.join(" ")}: ${stderr || (err as Error).message}`, {
      cause: err,
    });
  }
}

async function hasCommand(cmd: string): Promise<boolean> {
  try {
    await execFileP("sh", ["-c", `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
}

/** Docker's default: xfs when mkfs.xfs exists and the kernel knows xfs, else ext4. */
export async function defaultFs(): Promise<"xfs" | "ext4"> {
  const known = await readFile("/proc/filesystems", "utf8").catch(() => "");
  return (await hasCommand("mkfs.xfs")) && /\bxfs\b/.test(known) ? "xfs" : "ext4";
}

/** Makes the filesystem: ext4 with Docker's -E options (retried without lazy_journal_init), then tune2fs. */
export async function makeFs(fs: "xfs" | "ext4", dev: string, extra: readonly string[]): Promise<void> {
  if (fs === "xfs") {
    await run("mkfs.xfs", ["-q", "-f", ...extra, dev]);
    return;
  }
  try {
    await run("mkfs.ext4", ["-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", ...extra, dev]);
  } catch {
    await run("mkfs.ext4", ["-q", "-F", "-E", "nodiscard,lazy_itable_init=0", ...extra, dev]);
  }
  await run("tune2fs", ["-c", "-1", "-i", "0", dev]);
}

/** Reads the superblock magic: xfs `XFSB` at 0, ext2/3/4 0xEF53 at 0x438; "" when neither. */
export async function probeFs(dev: string): Promise<"xfs" | "ext4" | ""> {
  const fh = await open(dev, "r");
  try {
    const buf = Buffer.alloc(0x440);
    await fh.read(buf, 0, buf.length, 0);
    if (buf.toString("latin1", 0, 4) === "XFSB") return "xfs";
    if (buf.readUInt16LE(0x438) === 0xef53) return "ext4";
    return "";
  } finally {
    await fh.close();
  }
}

/** The filesystem UUID (`blkid -p -s UUID -o value`, probing the device itself, not a cache). */
export async function fsUUID(dev: string): Promise<string> {
  return (await run("blkid", ["-p", "-s", "UUID", "-o", "value", dev])).trim();
}

/** Mount options for a thin device: `nouuid` for xfs, plus dm.mountopt. */
export function mountOptions(fs: string, extra: string): string {
  return [fs === "xfs" ? "nouuid" : "", extra].filter(Boolean).join(",");
}

/**
 * Grows the filesystem on `dev` to fill its (larger) device. xfs grows
 * online, mounted at `mountPoint` for the while (made when missing); ext4
 * grows offline (e2fsck -f, then resize2fs), because online resize needs
 * CAP_SYS_RESOURCE, which containers often lack.
 */
export async function growFilesystem(fs: string, dev: string, mountPoint: string, mountOpts: string): Promise<void> {
  if (fs !== "xfs") {
    await run("e2fsck", ["-f", "-y", dev]);
    await run("resize2fs", [dev]);
    return;
  }
  await mkdir(mountPoint, { recursive: true });
  await mount(dev, mountPoint, fs, 0, mountOptions(fs, mountOpts) || null);
  try {
    await run("xfs_growfs", [mountPoint]);
  } finally {
    await umount2(mountPoint, C.MNT_DETACH);
  }
}

/** BLKDISCARD over the whole device (returns its blocks to the pool). */
export async function discard(dev: string): Promise<void> {
  await run("blkdiscard", [dev]);
}

/** Freezes (`fsfreeze -f`) or thaws a mounted filesystem, for a consistent snapshot of a mounted origin. */
export async function freeze(mountPoint: string, on: boolean): Promise<void> {
  await run("fsfreeze", [on ? "-f" : "-u", mountPoint]);
}
