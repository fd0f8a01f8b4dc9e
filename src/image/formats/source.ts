/**
 * A read-only bag of named files: a tar archive on disk (through
 * {@link TarIndex}) or a directory. docker-archives and OCI layouts are
 * read through it, so both formats load from a file or an unpacked folder.
 *
 * Both kinds are hostile input. A directory's members are opened with
 * openat2(RESOLVE_BENEATH) from the directory's fd, so no symlink (absolute,
 * or with enough `..`) and no magic link leads outside it, and only regular
 * files are read (a FIFO or `/dev/zero` planted as a member is refused, as
 * is a member that changes size while read). Whatever is read whole has a
 * cap the caller gives, checked against the member's size before a byte is
 * read.
 *
 * @module
 */
import { close as closeFd, constants, createReadStream, fstat as fstatFd } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { promisify } from "node:util";
import { assertSafePath } from "../../archive/paths.js";
import { hasCode, InvalidArgumentError, NotFoundError } from "../../errors.js";
import { C, openat2 } from "../../native.js";
import { DigestMismatchError, DigestStream, sha256 } from "../spec/digest.js";
import { memberName, TarIndex } from "./tar-index.js";

/** Named files of an archive or directory. */
export interface FileSource {
  /** What the user named, for messages. */
  readonly path: string;
  /** Whether a regular-file member of this name exists. */
  has(name: string): Promise<boolean>;
  /** The size of a member in bytes. @throws ERR_ARCHIVE_MEMBER_MISSING */
  size(name: string): Promise<number>;
  /**
   * A member read whole, when it is at most `max` bytes.
   * @throws ERR_ARCHIVE_MEMBER_MISSING; ERR_ARCHIVE_MEMBER_TOO_LARGE
   */
  read(name: string, max: number): Promise<Buffer>;
  /** A stream of a member's bytes. @throws ERR_ARCHIVE_MEMBER_MISSING */
  open(name: string): Promise<Readable>;
  /** Releases what the source holds open (a directory's fd). */
  close(): Promise<void>;
}

function missing(path: string, name: string): NotFoundError {
  return new NotFoundError("ERR_ARCHIVE_MEMBER_MISSING", `Cannot read the archive: no member "${name}" in "${path}"`);
}

/** @throws ERR_ARCHIVE_MEMBER_TOO_LARGE */
export function tooLarge(path: string, name: string, size: number, max: number): InvalidArgumentError {
  return new InvalidArgumentError(
    "ERR_ARCHIVE_MEMBER_TOO_LARGE",
    `Cannot read the archive: member "${name}" has ${size} bytes, at most ${max} allowed in "${path}"`,
  );
}

/** Reads a whole stream of a member whose size was checked, refusing more than `max` bytes. */
async function readAll(s: Readable, path: string, name: string, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  for await (const c of s) {
    have += (c as Buffer).length;
    if (have > max) {
      s.destroy();
      throw tooLarge(path, name, have, max);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks, have);
}

/** Opens a tar file or a directory as a {@link FileSource}. @throws ERR_ARCHIVE_NOT_FOUND */
export async function openSource(path: string): Promise<FileSource> {
  const st = await stat(path).catch((err: unknown) => {
    if (hasCode(err, "ENOENT", "ENOTDIR")) {
      throw new NotFoundError("ERR_ARCHIVE_NOT_FOUND", `Cannot load: no such file or directory "${path}"`);
    }
    throw err;
  });
  if (st.isDirectory()) return dirSource(path);
  return tarSource(path, path);
}

/** A tar file on disk as a {@link FileSource}; `shown` names it in messages. */
export async function tarSource(file: string, shown: string): Promise<FileSource> {
  const idx = await TarIndex.scan(file);
  return {
    path: shown,
    has: async (n) => idx.has(n),
    size: async (n) => idx.size(n),
    read: async (n, max) => {
      const size = idx.size(n);
      if (size > max) throw tooLarge(shown, n, size, max);
      return readAll(idx.open(n), shown, n, max);
    },
    open: async (n) => idx.open(n),
    close: async () => {},
  };
}

const closeAsync = promisify(closeFd);
const fstatAsync = promisify(fstatFd);

/** A directory as a {@link FileSource}, every member opened beneath it (see the module doc). */
async function dirSource(dir: string): Promise<FileSource> {
  const root: FileHandle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  /** Opens a regular-file member beneath the directory; undefined when there is none of that name. */
  const openMember = async (name: string): Promise<{ fd: number; size: number } | undefined> => {
    const n = memberName(name);
    assertSafePath(n);
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO planted as a member must not block the open.
      fd = await openat2(root.fd, n, C.O_RDONLY | constants.O_NONBLOCK, 0, C.RESOLVE_BENEATH | C.RESOLVE_NO_MAGICLINKS);
    } catch (err) {
      if (hasCode(err, "ENOENT", "ENOTDIR", "EISDIR", "ENAMETOOLONG")) return undefined;
      if (hasCode(err, "EXDEV", "ELOOP")) {
        throw new InvalidArgumentError(
          "ERR_ARCHIVE_MEMBER_OUTSIDE",
          `Cannot read the archive: member "${name}" leads outside the directory "${dir}"`,
        );
      }
      throw err;
    }
    const st = await fstatAsync(fd);
    if ((st.mode & C.S_IFMT) !== C.S_IFREG) {
      await closeAsync(fd);
      if ((st.mode & C.S_IFMT) === C.S_IFDIR) return undefined;
      throw new InvalidArgumentError(
        "ERR_ARCHIVE_MEMBER_NOT_FILE",
        `Cannot read the archive: member "${name}" is not a regular file in "${dir}"`,
      );
    }
    return { fd, size: st.size };
  };
  const member = async (name: string) => {
    const m = await openMember(name);
    if (!m) throw missing(dir, name);
    return m;
  };
  /** A stream of exactly the `size` bytes the member had when opened. */
  const stream = (m: { fd: number; size: number }) =>
    m.size === 0
      ? createReadStream("", { fd: m.fd, start: 1, end: 0 })
      : createReadStream("", { fd: m.fd, start: 0, end: m.size - 1, highWaterMark: 1 << 20 });
  return {
    path: dir,
    has: async (n) => {
      const m = await openMember(n);
      if (m) await closeAsync(m.fd);
      return m !== undefined;
    },
    size: async (n) => {
      const m = await member(n);
      await closeAsync(m.fd);
      return m.size;
    },
    read: async (n, max) => {
      const m = await member(n);
      if (m.size > max) {
        await closeAsync(m.fd);
        throw tooLarge(dir, n, m.size, max);
      }
      return readAll(stream(m), dir, n, max);
    },
    open: async (n) => stream(await member(n)),
    close: () => root.close(),
  };
}

/** A member's stream that fails instead of ending when its bytes do not match `digest` (and `size`). */
export async function openVerified(src: FileSource, name: string, digest: string, size?: number): Promise<Readable> {
  const s = await src.open(name);
  const check = new DigestStream(`blob "${name}"`, { digest, ...(size !== undefined ? { size } : {}) });
  s.on("error", (e) => check.destroy(e));
  return s.pipe(check);
}

/**
 * Reads a small member whole (at most `max` bytes) and checks it against `digest`.
 * @throws ERR_DIGEST_MISMATCH; ERR_ARCHIVE_MEMBER_TOO_LARGE
 */
export async function readVerified(src: FileSource, name: string, digest: string, max: number): Promise<Buffer> {
  const bytes = await src.read(name, max);
  const got = sha256(bytes);
  if (got !== digest) throw DigestMismatchError.of(`blob "${name}"`, digest, got);
  return bytes;
}
