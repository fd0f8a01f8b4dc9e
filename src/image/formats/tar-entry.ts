/**
 * Headers for the files strata writes into image archives.
 *
 * @module
 */
import type { TarHeader } from "../../archive/tar-header.js";

/** A plain header: root-owned, mode 0644 (0755 for directories), epoch mtime. */
export function header(name: string, size: number, type: "file" | "dir" = "file"): TarHeader {
  return {
    name,
    type,
    mode: type === "dir" ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
    size: type === "file" ? size : 0,
    mtime: { sec: 0, nsec: 0 },
    linkname: "",
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
  };
}
