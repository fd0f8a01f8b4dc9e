/**
 * Tar header blocks as strata writes them: ustar, with PAX records in front
 * when a field does not fit. (Reading is native: `native/archive/tar_header.h`
 * decodes every header strata reads, for the applier and for
 * `tarIndex` alike.)
 *
 * strata has its own encoder instead of tar-stream's: tar-stream encodes PAX
 * values as UTF-8 text (which corrupts binary `security.capability` xattrs)
 * and measures PAX record lengths in characters rather than bytes.
 *
 * @module
 */

/** The tar block size. */
export const BLOCK = 512;

/** Entry kinds strata handles; anything else is refused with ERR_TAR_UNSUPPORTED. */
export type EntryType = "file" | "link" | "symlink" | "char" | "block" | "dir" | "fifo";

/** An entry header: what one tar entry says about its file (PAX and GNU long-name records merged in). */
export interface TarHeader {
  /** Name as in the archive (not cleaned). */
  name: string;
  type: EntryType;
  /** Permission and special bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  mtime: { sec: number; nsec: number };
  atime?: { sec: number; nsec: number };
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from `SCHILY.xattr.*` PAX records, values as raw bytes. */
  xattrs: Map<string, Buffer>;
}

const FLAG_BY_TYPE: Record<EntryType, string> = {
  file: "0",
  link: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

function writeString(block: Buffer, off: number, len: number, s: string): void {
  block.write(s, off, len, "utf8");
}

function writeOctal(block: Buffer, off: number, len: number, v: number): void {
  block.write(v.toString(8).padStart(len - 1, "0"), off, len - 1, "latin1");
  block[off + len - 1] = 0;
}

function fitsOctal(v: number, len: number): boolean {
  return v >= 0 && v < 8 ** (len - 1);
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), "latin1"), body]);
}

function ustarBlock(h: {
  name: string;
  flag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}): Buffer {
  const b = Buffer.alloc(BLOCK);
  writeString(b, 0, 100, h.name);
  writeOctal(b, 100, 8, h.mode);
  writeOctal(b, 108, 8, h.uid);
  writeOctal(b, 116, 8, h.gid);
  writeOctal(b, 124, 12, h.size);
  writeOctal(b, 136, 12, h.mtime);
  b.fill(0x20, 148, 156);
  b.write(h.flag, 156, 1, "latin1");
  writeString(b, 157, 100, h.linkname);
  b.write("ustar\x0000", 257, 8, "latin1");
  writeString(b, 265, 32, h.uname);
  writeString(b, 297, 32, h.gname);
  writeOctal(b, 329, 8, h.devmajor);
  writeOctal(b, 337, 8, h.devminor);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return b;
}

function isPortable(s: string, max: number): boolean {
  return Buffer.byteLength(s) <= max && /^[\x20-\x7e]*$/.test(s);
}

/**
 * Encodes an entry header as it is written by strata: ustar, with a PAX
 * extended header first when the name, link target, ids or size do not fit
 * or when there are xattrs. Times are whole seconds, as Docker writes them.
 * @returns the header blocks (the caller writes the body and its padding)
 */
export function encodeHeader(h: TarHeader): Buffer {
  const name = h.type === "dir" && !h.name.endsWith("/") ? `${h.name}/` : h.name;
  const records: Buffer[] = [];
  if (!isPortable(name, 100)) records.push(paxRecord("path", Buffer.from(name)));
  if (!isPortable(h.linkname, 100)) records.push(paxRecord("linkpath", Buffer.from(h.linkname)));
  if (!fitsOctal(h.uid, 8)) records.push(paxRecord("uid", Buffer.from(String(h.uid))));
  if (!fitsOctal(h.gid, 8)) records.push(paxRecord("gid", Buffer.from(String(h.gid))));
  if (!fitsOctal(h.size, 12)) records.push(paxRecord("size", Buffer.from(String(h.size))));
  if (!fitsOctal(h.mtime.sec, 12)) records.push(paxRecord("mtime", Buffer.from(String(h.mtime.sec))));
  if (!isPortable(h.uname, 32)) records.push(paxRecord("uname", Buffer.from(h.uname)));
  if (!isPortable(h.gname, 32)) records.push(paxRecord("gname", Buffer.from(h.gname)));
  for (const [k, v] of h.xattrs) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const main = ustarBlock({
    name: isPortable(name, 100) ? name : name.slice(0, 99).replace(/[^\x20-\x7e]/g, "_"),
    flag: FLAG_BY_TYPE[h.type],
    mode: h.mode & 0o7777,
    uid: fitsOctal(h.uid, 8) ? h.uid : 0,
    gid: fitsOctal(h.gid, 8) ? h.gid : 0,
    size: fitsOctal(h.size, 12) ? h.size : 0,
    mtime: fitsOctal(h.mtime.sec, 12) ? h.mtime.sec : 0,
    linkname: isPortable(h.linkname, 100) ? h.linkname : "",
    uname: isPortable(h.uname, 32) ? h.uname : "",
    gname: isPortable(h.gname, 32) ? h.gname : "",
    devmajor: h.devmajor,
    devminor: h.devminor,
  });
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  const paxHeader = ustarBlock({
    name: "PaxHeaders/" + name.replace(/[^\x20-\x7e]/g, "_").slice(-80),
    flag: "x",
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: pax.length,
    mtime: 0,
    linkname: "",
    uname: "",
    gname: "",
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxHeader, pax, Buffer.alloc(padding(pax.length)), main]);
}

/** Bytes of zero padding after a body of `size` bytes. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}
