/**
 * Random access to the members of a tar file on disk: one pass over the
 * headers (bodies are skipped with seeks, not read), then any member can be
 * opened as a stream of its exact bytes. docker-archives put manifest.json
 * last, so this avoids unpacking the whole archive to find it.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { BLOCK, decodeBlock, decodePax, isZeroBlock, padding } from "../../archive/tar-header.js";
import { InvalidArgumentError, NotFoundError } from "../../errors.js";

/** One regular file (or hardlink resolved to its target) in the archive. */
export interface TarMember {
  offset: number;
  size: number;
}

/** Members an archive may have: image archives have a few per layer; a header flood must not grow the index without bound. */
export const MAX_MEMBERS = 100_000;

function truncated(file: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError("ERR_ARCHIVE_TRUNCATED", `Cannot read the archive: ${why} "${file}"`);
}

/** Normalises a member name: no leading "./" or "/", no trailing "/". */
export function memberName(name: string): string {
  const n = posix
    .normalize(name)
    .replace(/^(\.\/)+/, "")
    .replace(/^\/+/, "")
    .replace(/\/+$/, "");
  return n === "." ? "" : n;
}

/** An index of a tar file's members. */
export class TarIndex {
  readonly file: string;
  readonly #members = new Map<string, TarMember>();

  private constructor(file: string) {
    this.file = file;
  }

  /**
   * Scans `file`.
   * @throws ERR_ARCHIVE_TRUNCATED when a header or body runs past the end; ERR_TAR_FORMAT for a bad header
   */
  static async scan(file: string): Promise<TarIndex> {
    const idx = new TarIndex(file);
    const fh = await open(file, "r");
    try {
      const { size: fileSize } = await fh.stat();
      const block = Buffer.alloc(BLOCK);
      let off = 0;
      let longName: string | undefined;
      let paxPath: string | undefined;
      const links: Array<[string, string]> = [];
      const readExact = async (buf: Buffer, at: number, what: string) => {
        const { bytesRead } = await fh.read(buf, 0, buf.length, at);
        if (bytesRead !== buf.length) throw truncated(file, `unexpected end in ${what}`);
      };
      for (;;) {
        if (off + BLOCK > fileSize) {
          if (off === fileSize && off > 0) break; // missing end marker: tolerated, as readTar does
          throw truncated(file, "unexpected end of archive");
        }
        await readExact(block, off, "a header");
        off += BLOCK;
        if (isZeroBlock(block)) break;
        const h = decodeBlock(block);
        const bodyEnd = off + h.size + padding(h.size);
        if (off + h.size > fileSize) throw truncated(file, `member "${h.name}" is cut short`);
        if (h.flag === "x" || h.flag === "L") {
          if (h.size > 1 << 20) throw truncated(file, "oversized extension header");
          const body = Buffer.alloc(h.size);
          await readExact(body, off, "an extension header");
          if (h.flag === "L") longName = body.toString("utf8").replace(/\0.*$/s, "");
          else paxPath = decodePax(body).get("path")?.toString("utf8");
        } else if (h.flag !== "g") {
          const name = memberName(paxPath ?? longName ?? h.name);
          paxPath = undefined;
          longName = undefined;
          if (idx.#members.size + links.length >= MAX_MEMBERS) {
            throw new InvalidArgumentError(
              "ERR_BAD_ARCHIVE",
              `Cannot read the archive: more than ${MAX_MEMBERS} members "${file}"`,
            );
          }
          if (h.flag === "0" || h.flag === "\0" || h.flag === "7")
            idx.#members.set(name, { offset: off, size: h.size });
          else if (h.flag === "1") links.push([name, memberName(h.linkname)]);
        }
        off = bodyEnd;
      }
      for (const [name, target] of links) {
        const m = idx.#members.get(target);
        if (m) idx.#members.set(name, m);
      }
    } finally {
      await fh.close();
    }
    return idx;
  }

  /** Whether a regular-file member exists. */
  has(name: string): boolean {
    return this.#members.has(memberName(name));
  }

  /** The size of a member. @throws ERR_ARCHIVE_MEMBER_MISSING */
  size(name: string): number {
    return this.#get(name).size;
  }

  #get(name: string): TarMember {
    const m = this.#members.get(memberName(name));
    if (!m)
      throw new NotFoundError(
        "ERR_ARCHIVE_MEMBER_MISSING",
        `Cannot read the archive: no member "${name}" in "${this.file}"`,
      );
    return m;
  }

  /** A stream of a member's bytes. @throws ERR_ARCHIVE_MEMBER_MISSING */
  open(name: string): Readable {
    const m = this.#get(name);
    if (m.size === 0) return createReadStream(this.file, { start: 1, end: 0 });
    return createReadStream(this.file, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1 << 20 });
  }

  /** A small member read whole. */
  async read(name: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.open(name)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
}
