/**
 * The oracle apply engine: the JavaScript engine strata had before the
 * native one, kept in the tests to check the product's engine against
 * (test/diff/engines.test.ts). It follows the same rules: the tar is read by
 * the JavaScript reader (`../helpers/tar-reader.ts`), each entry's meaning
 * (names cleaned, breakout checks, whiteouts, id maps, the plnk stash,
 * which entries may run in parallel) is decided here, and one op per entry
 * goes in batches (`batch.ts`) to the test addon's BatchApplier, which runs
 * them with the product's ApplyFs. It is chosen by injection:
 * `applyLayerOracle` has `applyLayer`'s signature.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { cleanEntryPath } from "../../src/archive/paths.js";
import type { TarHeader } from "../../src/archive/tar-header.js";
import {
  WHITEOUT_LINK_DIR,
  WHITEOUT_META_PREFIX,
  WHITEOUT_OPAQUE,
  WHITEOUT_PREFIX,
} from "../../src/archive/whiteouts.js";
import type { ApplyOptions, ApplyResult, IdMapping } from "../../src/diff/apply.js";
import { InFlight } from "../../src/diff/in-flight.js";
import { BreakoutError, StrataError } from "../../src/errors.js";
import { TarFormatError } from "../helpers/tar-decode.js";
import { readTar, type TarEntry } from "../helpers/tar-reader.js";
import { Batch, KIND, OP, type OpFields } from "./batch.js";
import { BatchApplier } from "./batch-applier.js";
import { RecordEncoder } from "./recorder.js";

/** Bodies up to this size travel in one op; larger ones are streamed. */
const SMALL_BODY = 1 << 20;
/** A batch is submitted once it holds this many ops or body bytes. */
const BATCH_OPS = 1024;
const BATCH_BYTES = 1 << 20;
/** At most this much submitted and not yet executed. */
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
 * A symlink target the way Docker checks it: joined to the link's own
 * directory, a relative target must not climb above the root; an empty one
 * is malformed (native/apply/tar_apply.cc AssertSafeSymlink).
 */
function assertSafeSymlink(entryPath: string, target: string): void {
  if (target === "") throw new TarFormatError(`empty symlink target for "${entryPath}"`);
  if (target.includes("\0")) throw new BreakoutError(`Cannot apply the entry: NUL byte in link of "${entryPath}"`);
  if (target.startsWith("/")) return;
  const joined = posix.normalize(posix.join("/", posix.dirname(entryPath), target));
  const rel = posix.normalize(posix.join(posix.dirname(entryPath), target));
  if (rel === ".." || rel.startsWith("../") || !joined.startsWith("/")) {
    throw new BreakoutError(`Cannot apply the entry: invalid symlink "${entryPath}" -> "${target}"`);
  }
}

/** Xattrs the engine drops (native/apply/tar_apply.cc KernelMetadataXattr; the oracle keeps no warning for them). */
function kernelMetadataXattr(key: string): boolean {
  return (
    key.startsWith("trusted.overlay.") ||
    key.startsWith("user.overlay.") ||
    key === "security.selinux" ||
    key === "security.apparmor" ||
    key.startsWith("security.SMACK64")
  );
}

/** {@link applyLayer} with the oracle engine: same arguments, same result, same errors. */
export async function applyLayerOracle(
  dir: string,
  tar: AsyncIterable<Buffer | Uint8Array | string>,
  opts: ApplyOptions = {},
): Promise<ApplyResult> {
  const threads = opts.threads ?? 4;
  const parallel = threads > 1 && (await readdir(dir)).length === 0;
  const hash = opts.digest ? createHash("sha256") : undefined;
  const source = hash ? hashing(tar, hash) : tar;
  const encoder = opts.recorder ? new RecordEncoder(opts.recorder) : undefined;
  const applier = new Applier(new BatchApplier(dir, parallel ? threads : 0), opts, parallel);
  try {
    for await (const entry of readTar(source, encoder)) await applier.entry(entry);
    await applier.restoreDirTimes();
    await applier.drain();
    await encoder?.end();
    const result: ApplyResult = { size: applier.size, warnings: applier.warnings };
    if (hash) result.digest = `sha256:${hash.digest("hex")}`;
    return result;
  } catch (err) {
    throw await applier.firstError(err);
  } finally {
    await applier.close();
  }
}

class Applier {
  size = 0;
  warnings: string[] = [];
  #native: BatchApplier;
  #opts: ApplyOptions;
  #batch = new Batch();
  #inflight = new InFlight(INFLIGHT_BYTES, INFLIGHT_BATCHES);
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

  constructor(native: BatchApplier, opts: ApplyOptions, parallel: boolean) {
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
      xattrs: new Map([...h.xattrs].filter(([k]) => !kernelMetadataXattr(k))),
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
