/**
 * applyLayer: Docker's UnpackLayer. Applies an uncompressed layer tar onto a
 * directory tree: AUFS whiteouts delete (or, in the overlay form, become
 * char 0/0 devices and opaque xattrs), a non-directory replaces a directory
 * and vice versa, parents are implied, ownership/mode/xattrs/times are set
 * in Docker's order, and directory times are restored at the end.
 *
 * Containment: names are cleaned and refused when they climb out
 * (ERR_BREAKOUT); every parent is resolved with openat2(RESOLVE_IN_ROOT) and
 * every operation acts on one name inside an already-contained directory.
 *
 * Speed: by default the whole tar goes to the native applier's own thread
 * (`native/apply/tar_apply.h`), which parses it, decides what each entry means
 * and does the filesystem work; this thread only hashes and hands the bytes
 * over. The JavaScript engine below (the `Applier` class: JavaScript parses
 * and decides, the filesystem work runs natively in batches of ops,
 * `native-batch.ts`) follows the same rules and is kept as the reference
 * the native one is compared with: STRATA_APPLY_ENGINE=js selects it, and
 * so does a recorder without `records()`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { assertSafeSymlink, cleanEntryPath } from "../archive/paths.js";
import type { TarHeader } from "../archive/tar-header.js";
import { readTar, type TarEntry, type TarRecorder, toBuffer } from "../archive/tar-reader.js";
import {
  WHITEOUT_LINK_DIR,
  WHITEOUT_META_PREFIX,
  WHITEOUT_OPAQUE,
  WHITEOUT_PREFIX,
  type WhiteoutFormat,
} from "../archive/whiteouts.js";
import { BreakoutError, StrataError } from "../errors.js";
import { NativeApplier, type TarWriteResult } from "../native.js";
import { Batch, KIND, OP, type OpFields } from "./native-batch.js";

/** One contiguous range of an id map: container ids [containerId, containerId+size) ↦ host ids. */
export interface IdMapping {
  containerId: number;
  hostId: number;
  size: number;
}

export interface ApplyOptions {
  /** "aufs" (default) deletes whited-out paths; "overlay" writes the kernel's whiteout form. */
  whiteouts?: WhiteoutFormat;
  uidMap?: IdMapping[];
  gidMap?: IdMapping[];
  /** Sees the archive's raw non-content bytes, for pristine re-assembly. */
  recorder?: TarRecorder;
  /** Also compute the sha256 of the tar as read (the layer's diffID), in the same pass. */
  digest?: boolean;
  /**
   * Worker threads for independent entries when `dir` starts empty (see
   * `native/apply/apply_pool.h`); 1 applies everything on one thread.
   * @default STRATA_APPLY_THREADS or 4
   */
  threads?: number;
}

export interface ApplyResult {
  /** Σ of header sizes over all entries, as Docker's ApplyLayer returns it. */
  size: number;
  /** Non-fatal problems (xattrs the filesystem refused). */
  warnings: string[];
  /** "sha256:<hex>" of the uncompressed tar, when `digest` was asked for. */
  digest?: string;
}

/** Bodies up to this size travel in one op; larger ones are streamed. */
const SMALL_BODY = 1 << 20;
/** A batch is submitted once it holds this many ops or body bytes. */
const BATCH_OPS = 1024;
const BATCH_BYTES = 1 << 20;
/**
 * Backpressure: at most this much submitted and not yet executed. Bodies
 * small enough to still be in the CPU cache when the native thread writes
 * them: with 64 MiB in flight, large files were copied through DRAM twice
 * and apply of 4 x 256 MiB ran 2-5x slower under memory contention
 * (measured: 0.4 s against 1-2.3 s for the same tar; GNU tar 0.8 s).
 */
const INFLIGHT_BATCHES = 8;
const INFLIGHT_BYTES = 8 << 20;

function mapId(id: number, map: IdMapping[] | undefined, what: string): number {
  if (!map || map.length === 0) return id;
  for (const m of map) if (id >= m.containerId && id < m.containerId + m.size) return m.hostId + (id - m.containerId);
  throw new StrataError("ERR_ID_MAP", `Cannot apply the entry: ${what} ${id} is not in the id map`);
}

const split = (rel: string): [string, string] => {
  const d = posix.dirname(rel);
  return [d === "." ? "" : d, posix.basename(rel)];
};

async function* hashing(
  source: AsyncIterable<Buffer | Uint8Array | string>,
  hash: ReturnType<typeof createHash>,
): AsyncGenerator<Buffer | Uint8Array | string> {
  for await (const chunk of source) {
    hash.update(chunk);
    yield chunk;
  }
}

/**
 * Applies `tar` onto `dir`.
 * @param dir an existing directory: the layer's tree
 * @param tar an uncompressed tar stream (any async iterable of bytes)
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
  const threads = opts.threads ?? Number(process.env.STRATA_APPLY_THREADS ?? 4);
  // Entries may run in parallel only when every name in the tree is one this layer made.
  const parallel = threads > 1 && (await readdir(dir)).length === 0;
  if (nativeEngine(opts)) return applyInNative(dir, tar, opts, parallel ? threads : 0);
  const hash = opts.digest ? createHash("sha256") : undefined;
  const source = hash ? hashing(tar, hash) : tar;
  const applier = new Applier(new NativeApplier(dir, parallel ? threads : 0), opts, parallel);
  try {
    for await (const entry of readTar(source, opts.recorder)) await applier.entry(entry);
    await applier.restoreDirTimes();
    await applier.drain();
    const result: ApplyResult = { size: applier.size, warnings: applier.warnings };
    if (hash) result.digest = `sha256:${hash.digest("hex")}`;
    return result;
  } catch (err) {
    throw await applier.firstError(err);
  } finally {
    await applier.close();
  }
}

/**
 * Native work submitted and not yet done (batches, or tar writes), bounded
 * by count and bytes; keeps the first failure. Both engines pace with it.
 */
class InFlight {
  #queue: Array<{ done: Promise<void>; bytes: number }> = [];
  #bytes = 0;
  #failed = false;
  #failure: unknown;

  constructor(
    readonly maxCount: number,
    readonly maxBytes: number,
  ) {}

  get failed(): boolean {
    return this.#failed;
  }

  /** Tracks `work` (holding `bytes`); `onDone` takes its result. */
  add<T>(work: Promise<T>, bytes: number, onDone: (result: T) => void): void {
    const done = work.then(onDone, (err: unknown) => {
      if (this.#failed) return; // later work only reports that it was aborted
      this.#failed = true;
      this.#failure = err;
    });
    this.#queue.push({ done, bytes });
    this.#bytes += bytes;
  }

  /** Waits while too much is in flight; throws the first failure. */
  async pace(): Promise<void> {
    while (this.#queue.length > this.maxCount || this.#bytes > this.maxBytes) {
      const first = this.#queue.shift()!;
      await first.done;
      this.#bytes -= first.bytes;
    }
    if (this.#failed) throw this.#failure;
  }

  /** Waits for everything; throws the first failure. */
  async drain(): Promise<void> {
    const all = this.#queue;
    this.#queue = [];
    this.#bytes = 0;
    await Promise.all(all.map((f) => f.done));
    if (this.#failed) throw this.#failure;
  }

  /**
   * The error to report when the JavaScript side failed with `err`: work
   * queued before it still runs first, as it would have one by one, and a
   * native failure among it is the earlier error and wins.
   */
  async firstError(err: unknown): Promise<unknown> {
    try {
      await this.drain();
    } catch (nativeErr) {
      return nativeErr;
    }
    return err;
  }
}

/**
 * Whether the tar is parsed on the applier's thread (native/apply/tar_apply.h):
 * yes, unless a recorder cannot take encoded records or
 * STRATA_APPLY_ENGINE=js asks for the JavaScript engine below.
 */
function nativeEngine(opts: ApplyOptions): boolean {
  if (process.env.STRATA_APPLY_ENGINE === "js") return false;
  return !opts.recorder || typeof opts.recorder.records === "function";
}

/** Chunks go to the native engine in groups of about this many bytes: one task of its thread each. */
const WRITE_BYTES = 1 << 20;

/**
 * applyLayer with the native engine: this thread only hashes and hands the
 * tar's bytes over; parsing, the decisions and the filesystem work run on
 * the applier's thread, at most INFLIGHT_BYTES ahead.
 */
async function applyInNative(
  dir: string,
  tar: AsyncIterable<Buffer | Uint8Array | string>,
  opts: ApplyOptions,
  threads: number,
): Promise<ApplyResult> {
  const hash = opts.digest ? createHash("sha256") : undefined;
  const native = new NativeApplier(dir, threads, {
    ...(opts.whiteouts ? { whiteouts: opts.whiteouts } : {}),
    ...(opts.uidMap ? { uidMap: opts.uidMap } : {}),
    ...(opts.gidMap ? { gidMap: opts.gidMap } : {}),
    record: opts.recorder !== undefined,
  });
  const warnings: string[] = [];
  const settled = (r: TarWriteResult) => {
    for (const w of r.warnings) warnings.push(w);
    opts.recorder?.records?.(r.records, r.files);
  };
  const inflight = new InFlight(Infinity, INFLIGHT_BYTES);
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
      hash?.update(b);
      group.push(b);
      groupBytes += b.length;
      if (groupBytes < WRITE_BYTES) continue;
      send();
      await inflight.pace();
    }
    send();
    await inflight.drain();
    const end = await native.finish();
    settled(end);
    const result: ApplyResult = { size: end.size, warnings };
    if (hash) result.digest = `sha256:${hash.digest("hex")}`;
    return result;
  } catch (err) {
    throw await inflight.firstError(err);
  } finally {
    await native.close();
  }
}

class Applier {
  size = 0;
  warnings: string[] = [];
  #native: NativeApplier;
  #opts: ApplyOptions;
  #batch = new Batch();
  #inflight = new InFlight(INFLIGHT_BATCHES, INFLIGHT_BYTES);
  #nextHandle = 1;
  #unpacked = new Set<string>();
  #dirs: Array<{ rel: string; header: TarHeader }> = [];
  #plnkDir: string | undefined;
  #plnk = new Map<string, TarHeader>();
  #parallel: boolean;
  /** Every path made or implied so far (parallel mode). */
  #known = new Set<string>();
  /** Paths last made as non-directories (parallel mode). */
  #nonDirs = new Set<string>();

  constructor(native: NativeApplier, opts: ApplyOptions, parallel: boolean) {
    this.#native = native;
    this.#opts = opts;
    this.#parallel = parallel;
  }

  /**
   * Records that `rel` is about to be made and says whether its op may run
   * in parallel with the others: in an initially empty root, a name not made
   * or implied before, below no name made as a non-directory and implying no
   * new directory, commutes with every other such op. (A directory the op
   * would make on its way inherits a setgid parent's group and bit, so it
   * must wait until the parent's own entry has run.) Everything else runs as
   * a barrier, in order.
   */
  #independent(rel: string, isDir: boolean): boolean {
    if (!this.#parallel) return false;
    let ok = !this.#known.has(rel);
    for (let i = rel.lastIndexOf("/"); i > 0; i = rel.lastIndexOf("/", i - 1)) {
      const ancestor = rel.slice(0, i);
      if (this.#nonDirs.has(ancestor)) ok = false;
      if (this.#known.has(ancestor)) continue;
      this.#known.add(ancestor);
      ok = false; // a new implied directory
    }
    this.#known.add(rel);
    if (isDir) this.#nonDirs.delete(rel);
    else this.#nonDirs.add(rel);
    return ok;
  }

  /** The op code, flagged for the worker pool when `independent`. */
  static #code(op: number, independent: boolean): number {
    return independent ? op | OP.PARALLEL : op;
  }

  async close(): Promise<void> {
    await this.#native.close();
    if (this.#plnkDir) await rm(this.#plnkDir, { recursive: true, force: true });
  }

  async entry(e: TarEntry): Promise<void> {
    const h = e.header;
    this.size += h.size;
    const rel = cleanEntryPath(h.name);
    if (rel.startsWith(WHITEOUT_META_PREFIX)) {
      if (rel.startsWith(`${WHITEOUT_LINK_DIR}/`) && h.type === "file") return this.#stashPlnk(rel, e);
      if (rel !== WHITEOUT_OPAQUE) return;
    }
    const [parent, base] = split(rel);
    if (base.startsWith(WHITEOUT_PREFIX)) return this.#whiteout(parent, base, h);

    if (rel === "") {
      if (h.type !== "dir")
        throw new BreakoutError(`Cannot apply the entry: the layer root is not a directory "${h.name}"`);
      this.#batch.add({ op: OP.ENTRY, kind: KIND.root, ...this.#meta(h) });
      this.#dirs.push({ rel, header: h });
      return this.#pace();
    }

    const at = { parent, base };
    if (h.type === "symlink") assertSafeSymlink(rel, h.linkname);
    const independent = this.#independent(rel, h.type === "dir") && h.type !== "link";
    const op = Applier.#code(OP.ENTRY, independent);
    switch (h.type) {
      case "file": {
        const whole = h.size <= SMALL_BODY ? e.readBuffered() : undefined;
        if (whole) this.#smallFile(at, h, whole.length > 0 ? [whole] : [], independent);
        else await this.#file(at, h, e.body(), independent);
        break;
      }
      case "symlink":
        this.#batch.add({ op, kind: KIND.symlink, ...at, link1: h.linkname, ...this.#meta(h) });
        break;
      case "link": {
        const target = cleanEntryPath(h.linkname);
        if (target === "") throw new BreakoutError(`Cannot apply the entry: hardlink to the root "${h.name}"`);
        const plnk = target.startsWith(`${WHITEOUT_LINK_DIR}/`) ? this.#plnk.get(target) : undefined;
        if (plnk) {
          // AUFS hardlink store: the first name made from the stashed body holds its inode,
          // later names link to it (native ApplyFs::Plnk); metadata comes from the stash entry.
          Object.assign(h, { ...plnk, name: h.name });
          const stash = join(this.#plnkDir!, posix.basename(target));
          this.#batch.add({ op: OP.ENTRY, kind: KIND.plnk, ...at, link1: target, link2: stash, ...this.#meta(h) });
          break;
        }
        const [link1, link2] = split(target);
        const keep = [h.linkname]; // for the ERR_LINK_TARGET message
        this.#batch.add({ op: OP.ENTRY, kind: KIND.link, ...at, link1, link2, keep, ...this.#meta(h) });
        break;
      }
      default:
        this.#batch.add({
          op,
          kind: KIND[h.type],
          ...at,
          major: h.devmajor,
          minor: h.devminor,
          ...this.#meta(h),
        });
    }
    if (h.type === "dir") this.#dirs.push({ rel, header: h });
    this.#unpacked.add(rel);
    return this.#pace();
  }

  /** Ownership (id-mapped), mode, xattrs and times of a header, as op fields. */
  #meta(h: TarHeader): Pick<OpFields, "name" | "uid" | "gid" | "mode" | "xattrs" | "atime" | "mtime"> {
    return {
      name: h.name,
      uid: mapId(h.uid, this.#opts.uidMap, "uid"),
      gid: mapId(h.gid, this.#opts.gidMap, "gid"),
      mode: h.mode & 0o7777,
      xattrs: h.xattrs,
      atime: h.atime && h.atime.sec >= h.mtime.sec ? h.atime : h.mtime,
      mtime: h.mtime,
    };
  }

  /** A regular file whose body is in memory (`bodies`, in order): one op. */
  #smallFile(at: { parent: string; base: string }, h: TarHeader, bodies: Buffer[], independent: boolean): void {
    this.#batch.add({ op: Applier.#code(OP.ENTRY, independent), kind: KIND.file, ...at, ...this.#meta(h), bodies });
  }

  /** A regular file: small bodies in one op, large ones streamed through an open handle. */
  async #file(
    at: { parent: string; base: string },
    h: TarHeader,
    body: AsyncIterable<Buffer>,
    independent: boolean,
  ): Promise<void> {
    if (h.size <= SMALL_BODY) {
      const bodies: Buffer[] = [];
      for await (const chunk of body) bodies.push(chunk);
      this.#smallFile(at, h, bodies, independent);
      return;
    }
    const meta = this.#meta(h);
    const handle = this.#nextHandle++;
    this.#batch.add({ op: OP.BEGIN, handle, ...at, name: h.name });
    let bodies: Buffer[] = [];
    let pending = 0;
    for await (const chunk of body) {
      bodies.push(chunk);
      pending += chunk.length;
      if (pending >= BATCH_BYTES) {
        this.#batch.add({ op: OP.WRITE, handle, name: h.name, bodies });
        bodies = [];
        pending = 0;
        await this.#pace();
      }
    }
    if (bodies.length) this.#batch.add({ op: OP.WRITE, handle, name: h.name, bodies });
    this.#batch.add({ op: OP.END, handle, ...at, ...meta });
  }

  async #whiteout(parent: string, base: string, h: TarHeader): Promise<void> {
    const overlay = this.#opts.whiteouts === "overlay";
    if (base === WHITEOUT_OPAQUE) {
      if (overlay) this.#batch.add({ op: OP.OPAQUE_OVERLAY, name: h.name, parent });
      else this.#batch.add({ op: OP.OPAQUE_AUFS, name: h.name, parent, keep: this.#unpackedBelow(parent) });
      return this.#pace();
    }
    const victim = base.slice(WHITEOUT_PREFIX.length);
    if (victim === "" || victim === "." || victim === ".." || base.startsWith(WHITEOUT_META_PREFIX)) {
      if (base.startsWith(WHITEOUT_META_PREFIX)) return; // other AUFS metadata below the root: skipped
      throw new BreakoutError(`Cannot apply the entry: invalid whiteout "${h.name}"`);
    }
    if (overlay) {
      const { uid, gid } = this.#meta(h);
      this.#batch.add({ op: OP.WHITEOUT_OVERLAY, name: h.name, parent, base: victim, uid, gid });
      const rel = parent ? `${parent}/${victim}` : victim;
      this.#unpacked.add(rel);
      this.#independent(rel, false);
    } else {
      this.#batch.add({ op: OP.WHITEOUT_AUFS, name: h.name, parent, base: victim });
    }
    return this.#pace();
  }

  /** Paths this layer created below `dir`: an AUFS opaque whiteout keeps them. */
  #unpackedBelow(dir: string): string[] {
    if (dir === "") return [...this.#unpacked];
    const prefix = `${dir}/`;
    return [...this.#unpacked].filter((p) => p.startsWith(prefix));
  }

  async #stashPlnk(rel: string, e: TarEntry): Promise<void> {
    this.#plnkDir ??= await mkdtemp(join(tmpdir(), "strata-plnk-"));
    const file = join(this.#plnkDir, posix.basename(rel));
    const out = createWriteStream(file);
    for await (const chunk of e.body())
      if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
    await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
    this.#plnk.set(rel, e.header);
  }

  /** Directory times change as children are created; set them last, as Docker does. */
  async restoreDirTimes(): Promise<void> {
    for (const { rel, header: h } of this.#dirs) {
      const [parent, base] = split(rel);
      const { atime, mtime } = this.#meta(h);
      this.#batch.add({ op: OP.DIR_TIME, kind: rel === "" ? KIND.root : 0, name: h.name, parent, base, atime, mtime });
      await this.#pace();
    }
  }

  /** Submits the batch when it is full and waits while too much is in flight. */
  async #pace(): Promise<void> {
    const b = this.#batch;
    if (b.ops >= BATCH_OPS || b.bodyBytes >= BATCH_BYTES || b.metaBytes >= 1 << 20) this.#submit();
    await this.#inflight.pace();
  }

  #submit(): void {
    if (this.#batch.ops === 0) return;
    const { meta, bodies, bytes } = this.#batch.take();
    this.#inflight.add(this.#native.submit(meta, bodies), bytes, (w) => {
      for (const x of w) this.warnings.push(x);
    });
  }

  /** Submits what is pending and waits for everything submitted. */
  async drain(): Promise<void> {
    this.#submit();
    await this.#inflight.drain();
  }

  /**
   * The error to report for a failed apply. Ops queued before a JavaScript-side
   * error (a refused entry, a malformed header) still run first, as they would
   * have one by one; a native failure among them is the earlier error and wins.
   */
  firstError(err: unknown): Promise<unknown> {
    if (!this.#inflight.failed) this.#submit();
    return this.#inflight.firstError(err);
  }
}
