/**
 * The tar header decoder of the JavaScript reader in the tests
 * (`tar-reader.ts`): ustar, GNU (`ustar  `), V7, base-256 numbers and PAX
 * records, with the rules and messages of the product's native decoder
 * (`native/archive/tar_header.cc`). It is the oracle the native decoder is
 * compared with (test/diff/engines.test.ts), and it reads the tars strata
 * exports in tests.
 *
 * @module
 */
import { BLOCK } from "../../src/archive/tar-header.js";
import type { EntryType } from "../../src/archive/tar-header.js";
import { InvalidArgumentError } from "../../src/errors.js";

/** ERR_TAR_FORMAT, with the applier's message prefix. */
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

/** Throws unless the block's checksum (unsigned, or signed as some old tars sum) matches. */
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

/** Whether a GNU atime/ctime field reads as a number (empty, base-256, or octal between blanks and NULs). */
function gnuTimeField(block: Buffer, off: number): boolean {
  if (block[off] === 0 || block[off]! & 0x80) return true;
  const text = block.toString("latin1", off, off + 12).replace(/^[ \0]+|[ \0]+$/g, "");
  return /^[0-7]*$/.test(text);
}

/** Verifies and decodes one header block. */
export function decodeBlock(block: Buffer): RawHeader {
  verifyChecksum(block);
  const magic = block.toString("latin1", 257, 263);
  const ustar = magic === "ustar\0";
  const gnu = magic === "ustar ";
  let name = cstring(block, 0, 100);
  // GNU headers have atime/ctime where ustar has its prefix, but Go < 1.8 wrote a prefix there:
  // like Go's reader, take it when those fields do not read as numbers and it is ASCII.
  if (ustar || (gnu && !(gnuTimeField(block, 345) && gnuTimeField(block, 357)))) {
    const prefix = cstring(block, 345, 155);
    const nul = block.subarray(345, 500).indexOf(0);
    const raw = block.subarray(345, nul < 0 ? 500 : 345 + nul);
    if (prefix && (ustar || raw.every((c) => c < 0x80))) name = `${prefix}/${name}`;
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

/** The entry type of a type flag; ERR_TAR_UNSUPPORTED for others. */
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
