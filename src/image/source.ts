/**
 * A read-only bag of named files: a tar archive on disk (through
 * {@link TarIndex}) or a directory. docker-archives and OCI layouts are
 * read through it, so both formats load from a file or an unpacked folder.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { hasCode, NotFoundError } from "../errors.js";
import { assertSafePath } from "../archive/paths.js";
import { DigestStream } from "./digest.js";
import { memberName, TarIndex } from "./tar-index.js";

/** Named files of an archive or directory. */
export interface FileSource {
  /** What the user named, for messages. */
  readonly path: string;
  has(name: string): Promise<boolean>;
  /** @throws ERR_ARCHIVE_MEMBER_MISSING */
  read(name: string): Promise<Buffer>;
  /** @throws ERR_ARCHIVE_MEMBER_MISSING */
  open(name: string): Promise<Readable>;
}

function missing(path: string, name: string): NotFoundError {
  return new NotFoundError("ERR_ARCHIVE_MEMBER_MISSING", `Cannot read the archive: no member "${name}" in "${path}"`);
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
  const idx = await TarIndex.scan(path);
  return {
    path,
    has: async (n) => idx.has(n),
    read: (n) => idx.read(n),
    open: async (n) => idx.open(n),
  };
}

function dirSource(dir: string): FileSource {
  const full = (name: string) => {
    const n = memberName(name);
    assertSafePath(n);
    return join(dir, n);
  };
  const wrap = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (hasCode(err, "ENOENT", "EISDIR")) throw missing(dir, name);
      throw err;
    }
  };
  return {
    path: dir,
    has: async (n) => {
      try {
        return (await stat(full(n))).isFile();
      } catch {
        return false;
      }
    },
    read: (n) => wrap(n, () => readFile(full(n))),
    open: (n) =>
      wrap(n, async () => {
        if (!(await stat(full(n))).isFile()) throw missing(dir, n);
        return createReadStream(full(n), { highWaterMark: 1 << 20 });
      }),
  };
}

/** A member's stream that fails instead of ending when its bytes do not match `digest`. */
export async function openVerified(src: FileSource, name: string, digest: string, size?: number): Promise<Readable> {
  const s = await src.open(name);
  const check = new DigestStream(`blob "${name}"`, { digest, ...(size !== undefined ? { size } : {}) });
  s.on("error", (e) => check.destroy(e));
  return s.pipe(check);
}

/** Reads a small member and checks it against `digest`. @throws ERR_DIGEST_MISMATCH */
export async function readVerified(src: FileSource, name: string, digest: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await openVerified(src, name, digest)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
