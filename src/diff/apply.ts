/**
 * applyLayer: Docker's UnpackLayer. Applies an uncompressed layer tar onto a
 * directory tree: AUFS whiteouts delete (or, in the overlay form, become
 * char 0/0 devices and opaque xattrs), a non-directory replaces a directory
 * and vice versa, parents are implied, ownership/mode/xattrs/times are set
 * in Docker's order, and directory times are restored at the end.
 *
 * The whole tar goes to the native applier's own thread
 * (`native/apply/tar_apply.h`), which hashes it (with `digest`), parses it,
 * decides what each entry means and does the filesystem work; this thread
 * only hands the bytes over, at most {@link INFLIGHT_BYTES} ahead of the
 * applier, and never reads them.
 *
 * Containment: names are cleaned and refused when they climb out
 * (ERR_BREAKOUT); every parent is resolved with openat2(RESOLVE_IN_ROOT) and
 * every operation acts on one name inside an already-contained directory.
 *
 * @module
 */
import { readdir } from "node:fs/promises";
import type { TarRecorder } from "../archive/tar-split.js";
import type { WhiteoutFormat } from "../archive/whiteouts.js";
import { NativeApplier, type TarWriteResult } from "../native.js";
import { InFlight } from "./in-flight.js";

/** One contiguous range of an id map: container ids [containerId, containerId+size) ↦ host ids. */
export interface IdMapping {
  containerId: number;
  hostId: number;
  size: number;
}

/** Options for {@link applyLayer}. */
export interface ApplyOptions {
  /** "aufs" (default) deletes whited-out paths; "overlay" writes the kernel's whiteout form. */
  whiteouts?: WhiteoutFormat;
  uidMap?: IdMapping[];
  gidMap?: IdMapping[];
  /** Takes the tar-split index records (the archive's non-content bytes), for pristine re-assembly. */
  recorder?: TarRecorder;
  /** Also compute the sha256 of the tar as read (the layer's diffID), in the same pass. */
  digest?: boolean;
  /**
   * Worker threads for independent entries when `dir` starts empty (see
   * `native/apply/apply_pool.h`); 1 applies everything on one thread.
   * @default 4
   */
  threads?: number;
}

/** What {@link applyLayer} did. */
export interface ApplyResult {
  /** Σ of header sizes over all entries, as Docker's ApplyLayer returns it. */
  size: number;
  /**
   * Non-fatal problems, at most {@link MAX_WARNINGS}: xattrs dropped because the
   * kernel would read them as its own metadata (also emitted as a process
   * warning, code STRATA_XATTR_DROPPED), xattrs the filesystem refused.
   */
  warnings: string[];
  /** "sha256:<hex>" of the uncompressed tar, when `digest` was asked for. */
  digest?: string;
  /** Bytes of the tar as read, when `digest` was asked for (the diffID covers exactly these). */
  tarSize?: number;
}

/** Default worker threads for an initially empty root. */
const DEFAULT_THREADS = 4;

/**
 * Backpressure: at most this many bytes of the tar handed to the applier and
 * not yet applied. Small enough that a body is still in the CPU cache when
 * the applier writes it (with 64 MiB in flight, large files went through
 * DRAM twice and apply ran 2-5x slower under memory contention).
 */
export const INFLIGHT_BYTES = 8 << 20;

/** Chunks go to the applier in groups of about this many bytes: one task of its thread each. */
const WRITE_BYTES = 1 << 20;

/** Warnings kept per apply; later ones are counted in a last line. */
export const MAX_WARNINGS = 100;

/**
 * Applies `tar` onto `dir`.
 * @param dir an existing directory: the layer's tree
 * @param tar an uncompressed tar stream (any async iterable of bytes); it is read
 *   only as fast as the applier keeps up
 * @throws ERR_BREAKOUT for an entry leaving the root; ERR_TAR_FORMAT for malformed input;
 *   a SystemError (errno code) for a failed filesystem operation. Entries before the
 *   failing one are applied; nothing after it is.
 * @example
 * const { size } = await applyLayer("/var/lib/strata/vfs/dir/abc", fs.createReadStream("layer.tar"));
 */
export async function applyLayer(
  dir: string,
  tar: AsyncIterable<Buffer | Uint8Array | string>,
  opts: ApplyOptions = {},
): Promise<ApplyResult> {
  const threads = opts.threads ?? DEFAULT_THREADS;
  // Entries may run in parallel only when every name in the tree is one this layer made.
  const parallel = threads > 1 && (await readdir(dir)).length === 0;
  const native = new NativeApplier(dir, parallel ? threads : 0, {
    ...(opts.whiteouts ? { whiteouts: opts.whiteouts } : {}),
    ...(opts.uidMap ? { uidMap: opts.uidMap } : {}),
    ...(opts.gidMap ? { gidMap: opts.gidMap } : {}),
    record: opts.recorder !== undefined,
    digest: opts.digest === true,
  });
  const warnings = new Warnings();
  // The recorder may ask to wait (its index file is behind): the write counts as in flight until then.
  const settled = (r: TarWriteResult): void | Promise<void> => {
    warnings.add(r.warnings, r.moreWarnings);
    if (r.records.length > 0) return opts.recorder?.records(r.records, r.files);
  };
  const inflight = new InFlight(INFLIGHT_BYTES);
  let group: Buffer[] = [];
  let groupBytes = 0;
  const send = () => {
    if (group.length === 0) return;
    inflight.add(native.write(group), groupBytes, settled);
    group = [];
    groupBytes = 0;
  };
  try {
    for await (const chunk of tar) {
      const b = toBuffer(chunk);
      if (b.length === 0) continue;
      group.push(b);
      groupBytes += b.length;
      if (groupBytes < WRITE_BYTES) continue;
      send();
      await inflight.pace();
    }
    send();
    await inflight.drain();
    const end = await native.finish();
    await settled(end);
    const result: ApplyResult = { size: end.size, warnings: warnings.list() };
    warnDropped(result.warnings, warnings.total);
    if (opts.digest) {
      result.digest = end.digest;
      result.tarSize = end.tarSize;
    }
    return result;
  } catch (err) {
    throw await inflight.firstError(err);
  } finally {
    await native.close();
  }
}

/**
 * Tells the process (Node's `warning` event; the CLI prints it on stderr)
 * that the layer carried xattrs the engine dropped: overlayfs metadata and
 * LSM labels (see src/diff/README.md), once per apply.
 */
function warnDropped(warnings: string[], total: number): void {
  const first = warnings.find((w) => w.startsWith("dropped "));
  if (first === undefined) return;
  const all = total > 1 ? ` (${total} warnings in all)` : "";
  process.emitWarning(`layer apply ${first}${all}`, { type: "StrataWarning", code: "STRATA_XATTR_DROPPED" });
}

/** A chunk of a byte source as a Buffer, without a copy unless it is a string. */
function toBuffer(chunk: Buffer | Uint8Array | string): Buffer {
  if (typeof chunk === "string") return Buffer.from(chunk);
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** The first {@link MAX_WARNINGS} warnings, and a count of the rest. */
class Warnings {
  #kept: string[] = [];
  #more = 0;

  /** Takes `ws`, and `more` warnings that were counted but not kept. */
  add(ws: string[], more: number): void {
    for (const w of ws) {
      if (this.#kept.length < MAX_WARNINGS) this.#kept.push(w);
      else this.#more++;
    }
    this.#more += more;
  }

  /** Every warning, kept or counted. */
  get total(): number {
    return this.#kept.length + this.#more;
  }

  list(): string[] {
    return this.#more === 0 ? this.#kept : [...this.#kept, `... and ${this.#more} more warnings`];
  }
}
