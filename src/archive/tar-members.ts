/**
 * The members of a tar file on disk, read with the one tar decoder strata
 * has (`native/archive/tar_header.h`, the applier's): one pass over the
 * headers, bodies skipped by offset. For random access to archive members
 * (docker-archive and OCI tars, `src/image/tar-index.ts`).
 *
 * @module
 */
import { tarIndex, type TarIndexEntry } from "../native.js";

/** A regular file or hardlink of the archive and where its body lies. */
export type TarMemberEntry = TarIndexEntry;

/** Options of {@link tarMembers}. */
export interface TarMembersOptions {
  /**
   * Files and hardlinks a caller is ready to hold: more is ERR_BAD_ARCHIVE.
   * @default 1_000_000
   */
  maxMembers?: number;
}

/**
 * Lists the regular files and hardlinks of the tar file `file`, in archive
 * order. PAX and GNU long names are applied; other entry types are skipped.
 * @throws ERR_TAR_FORMAT for a malformed header; ERR_ARCHIVE_TRUNCATED when a
 *   header or body runs past the end of the file; ERR_BAD_ARCHIVE for more than
 *   `maxMembers`; a SystemError when it cannot be read
 * @example
 * for (const m of await tarMembers("image.tar")) console.log(m.name, m.offset, m.size);
 */
export function tarMembers(file: string, opts: TarMembersOptions = {}): Promise<TarMemberEntry[]> {
  return tarIndex(file, opts.maxMembers ?? 1_000_000);
}
