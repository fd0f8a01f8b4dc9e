/**
 * Backing-filesystem names from statfs f_type, as `docker info` prints them
 * ("Backing Filesystem: extfs").
 *
 * @module
 */
import { statfs } from "../native.js";

/** statfs(2) magic numbers of the filesystems a driver may find under its home. */
export const FS_MAGIC = Object.freeze({
  AUFS: 0x61756673,
  BTRFS: 0x9123683e,
  EXTFS: 0xef53,
  FUSE: 0x65735546,
  NFS: 0x6969,
  OVERLAY: 0x794c7630,
  TMPFS: 0x01021994,
  XFS: 0x58465342,
  ZFS: 0x2fc12fc1,
  ECRYPTFS: 0xf15f,
});

const NAMES = new Map<number, string>([
  [0x61756673, "aufs"],
  [0x9123683e, "btrfs"],
  [0x28cd3d45, "cramfs"],
  [0xf15f, "ecryptfs"],
  [0xef53, "extfs"],
  [0xf2f52010, "f2fs"],
  [0x47504653, "gpfs"],
  [0x72b6, "jffs2"],
  [0x3153464a, "jfs"],
  [0x6969, "nfs"],
  [0x858458f6, "ramfs"],
  [0x52654973, "reiserfs"],
  [0x517b, "smb"],
  [0x73717368, "squashfs"],
  [0x01021994, "tmpfs"],
  [0xa501fcf5, "vxfs"],
  [0x58465342, "xfs"],
  [0x2fc12fc1, "zfs"],
  [0x794c7630, "overlayfs"],
  [0x65735546, "fuse"],
  [0xc36400, "ceph"],
  [0xff534d42, "cifs"],
  [0xe0f5e1e2, "erofs"],
]);

/** The name for a filesystem magic, or `<unknown>` with the hex value. */
export function fsName(magic: number): string {
  return NAMES.get(magic >>> 0) ?? `<unknown 0x${(magic >>> 0).toString(16)}>`;
}

/** statfs magic and name of the filesystem holding `path`. */
export async function backingFs(path: string): Promise<{ magic: number; name: string }> {
  const st = await statfs(path);
  return { magic: st.type >>> 0, name: fsName(st.type) };
}
