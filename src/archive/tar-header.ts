/**
 * Tar header blocks: decoding (ustar, GNU, V7, base-256 numbers) and
 * encoding (ustar with PAX records when a field does not fit).
 *
 * strata has its own codec instead of tar-stream's: tar-stream decodes PAX
 * values as UTF-8 (which corrupts binary `security.capability` xattrs),
 * measures PAX record lengths in characters rather than bytes, and hides
 * the raw header bytes that pristine (tar-split) reassembly needs.
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.js";

export const BLOCK = 512;

/** Entry kinds strata handles; anything else is refused with ERR_TAR_UNSUPPORTED. */
export type EntryType = "file" | "link" | "symlink" | "char" | "block" | "dir" | "fifo";

/** A decoded entry header, after PAX and GNU long-name records are merged in. */
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

export class TarFormatError extends InvalidArgumentError {
  constructor(message: string) {
    super("ERR_TAR_FORMAT", `Cannot read the tar archive: ${message}`);
  }
}

const TYPE_BY_FLAG: Record<string, EntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "link",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

const FLAG_BY_TYPE: Record<EntryType, string> = {
  file: "0",
  link: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
};

function cstring(buf: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && buf[end] !== 0) end++;
  return buf.toString("utf8", off, end);
}

/**
 * Reads an octal or base-256 numeric field; throws on garbage or unsafe values.
 * Only `signed` fields (mtime: GNU tar writes pre-1970 times in base-256) may be negative.
 */
export function decodeNumber(buf: Buffer, off: number, len: number, field: string, signed = false): number {
  if (buf[off]! & 0x80) {
    // base-256: big-endian two's complement, first byte's top bit is the marker
    const negative = (buf[off]! & 0x40) !== 0;
    let v = 0n;
    for (let i = 0; i < len; i++) {
      const byte = i === 0 ? buf[off]! & 0x7f : buf[off + i]!;
      v = (v << 8n) | BigInt(byte);
    }
    if (negative) v -= 1n << BigInt(len * 8 - 1);
    if (v < 0n && !signed) throw new TarFormatError(`negative ${field} in header`);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
      throw new TarFormatError(`${field} too large in header`);
    return Number(v);
  }
  // Octal, digit by digit (this runs for eight fields of every header): optional
  // leading blanks, digits, then blanks up to the field's end or a NUL.
  const end = off + len;
  let i = off;
  while (i < end && isBlank(buf[i]!)) i++;
  let v = 0;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x37) break;
    v = v * 8 + (c - 0x30);
  }
  for (; i < end && buf[i] !== 0; i++) {
    if (!isBlank(buf[i]!)) {
      const text = cstring(buf, off, len).trim();
      throw new TarFormatError(`invalid ${field} field "${text}"`);
    }
  }
  if (!Number.isSafeInteger(v)) throw new TarFormatError(`${field} too large in header`);
  return v;
}

/** Space, tab, newline, vertical tab, form feed, carriage return. */
function isBlank(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** True when the 512-byte block is all zeros (end-of-archive marker). */
export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

export function verifyChecksum(block: Buffer): void {
  const stored = decodeNumber(block, 148, 8, "checksum");
  // The checksum field counts as 8 spaces. Two straight loops (no per-byte branch): this runs for every header.
  let unsigned = 8 * 32;
  for (let i = 0; i < 148; i++) unsigned += block[i]!;
  for (let i = 156; i < BLOCK; i++) unsigned += block[i]!;
  if (stored === unsigned) return;
  // Some old tars summed signed chars: each byte > 127 counts 256 less.
  let high = 0;
  for (let i = 0; i < BLOCK; i++) if ((i < 148 || i >= 156) && block[i]! > 127) high++;
  if (stored !== unsigned - 256 * high) throw new TarFormatError("header checksum mismatch");
}

/** Raw fields of one header block before extension records are applied. */
export interface RawHeader {
  flag: string;
  name: string;
  linkname: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

export function decodeBlock(block: Buffer): RawHeader {
  verifyChecksum(block);
  const magic = block.toString("latin1", 257, 263);
  const ustar = magic === "ustar\0";
  const gnu = magic === "ustar ";
  let name = cstring(block, 0, 100);
  if (ustar) {
    const prefix = cstring(block, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  const flag = String.fromCharCode(block[156]!);
  const extended = ustar || gnu;
  return {
    flag,
    name,
    linkname: cstring(block, 157, 100),
    mode: decodeNumber(block, 100, 8, "mode"),
    uid: decodeNumber(block, 108, 8, "uid"),
    gid: decodeNumber(block, 116, 8, "gid"),
    size: decodeNumber(block, 124, 12, "size"),
    mtime: decodeNumber(block, 136, 12, "mtime", true),
    uname: extended ? cstring(block, 265, 32) : "",
    gname: extended ? cstring(block, 297, 32) : "",
    devmajor: extended ? decodeNumber(block, 329, 8, "devmajor") : 0,
    devminor: extended ? decodeNumber(block, 337, 8, "devminor") : 0,
  };
}

/** Parses PAX extended-header records; values stay raw bytes (xattrs may be binary). */
export function decodePax(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    if (buf[off] === 0) break; // padding after the last record
    const space = buf.indexOf(0x20, off);
    if (space < 0) throw new TarFormatError("malformed PAX record");
    const len = Number.parseInt(buf.toString("latin1", off, space), 10);
    if (!Number.isSafeInteger(len) || len <= space - off || off + len > buf.length) {
      throw new TarFormatError("malformed PAX record length");
    }
    const rec = buf.subarray(space + 1, off + len);
    const eq = rec.indexOf(0x3d);
    if (eq < 0 || rec[rec.length - 1] !== 0x0a) throw new TarFormatError("malformed PAX record");
    out.set(rec.toString("utf8", 0, eq), Buffer.from(rec.subarray(eq + 1, rec.length - 1)));
    off += len;
  }
  return out;
}

/** Parses a PAX decimal time ("1700000000.123456789") into seconds and nanoseconds. */
export function parsePaxTime(value: string): { sec: number; nsec: number } {
  const m = /^(-?\d+)(?:\.(\d+))?$/.exec(value);
  if (!m) throw new TarFormatError(`invalid PAX time "${value}"`);
  const sec = Number.parseInt(m[1]!, 10);
  const nsec = m[2] ? Number.parseInt(m[2].slice(0, 9).padEnd(9, "0"), 10) : 0;
  if (!Number.isSafeInteger(sec)) throw new TarFormatError(`PAX time out of range "${value}"`);
  // "-1.5" is 1.5 s before the epoch: the fraction counts away from zero, as in Go
  if (m[1]!.startsWith("-") && nsec > 0) return { sec: sec - 1, nsec: 1_000_000_000 - nsec };
  return { sec: sec === 0 ? 0 : sec, nsec }; // no -0
}

export function typeFromFlag(flag: string, name: string): EntryType {
  const t = TYPE_BY_FLAG[flag];
  if (!t) {
    throw new InvalidArgumentError(
      "ERR_TAR_UNSUPPORTED",
      `Cannot read the tar archive: unhandled entry type "${flag}" for "${name}"`,
    );
  }
  return t;
}

// ---- encoding ----

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
