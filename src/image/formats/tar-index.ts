/**
 * Random access to the members of a tar file on disk: one pass over the
 * headers (bodies are skipped with seeks, not read), then any member can be
 * opened as a stream of its exact bytes. docker-archives put manifest.json
 * last, so this avoids unpacking the whole archive to find it.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { tarMembers } from "../../archive/tar-members.js";
import { NotFoundError } from "../../errors.js";

/** One regular file (or hardlink resolved to its target) in the archive. */
export interface TarMember {
  offset: number;
  size: number;
}

/** Members an archive may have: image archives have a few per layer; a header flood must not grow the index without bound. */
export const MAX_MEMBERS = 100_000;

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
   * Scans `file` (with the applier's tar decoder, `src/archive/tar-members.ts`).
   * @throws ERR_ARCHIVE_TRUNCATED when a header or body runs past the end; ERR_TAR_FORMAT for a bad header;
   *   ERR_BAD_ARCHIVE for more than {@link MAX_MEMBERS} files and links
   */
  static async scan(file: string): Promise<TarIndex> {
    const idx = new TarIndex(file);
    const links: Array<[string, string]> = [];
    for (const m of await tarMembers(file, { maxMembers: MAX_MEMBERS })) {
      if (m.type === "file") idx.#members.set(memberName(m.name), { offset: m.offset, size: m.size });
      else links.push([memberName(m.name), memberName(m.linkname)]);
    }
    for (const [name, target] of links) {
      const m = idx.#members.get(target);
      if (m) idx.#members.set(name, m);
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
