/**
 * The one typed loader of strata's native addon (`native/`, built by
 * node-gyp into `build/Release/strata_native.node`). Every call returns a
 * Promise: the work runs on libuv's thread pool, so a slow mount or a
 * contended flock never blocks the event loop. Failures reject with a
 * {@link SystemError} whose `code` is the errno name; wrong argument types
 * throw a `TypeError` synchronously.
 *
 * @module
 */
import { createRequire } from "node:module";
import { BreakoutError, InvalidArgumentError, SystemError } from "./errors.js";

interface RawStat {
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdevMajor: number;
  rdevMinor: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  atimeSec: number;
  atimeNsec: number;
}

/** statfs(2) fields strata uses. `type` is the filesystem magic (f_type). */
export interface StatfsResult {
  type: number;
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namelen: number;
  flags: number;
}

/** A loop device bound to a file. `directIO` says whether LO_FLAGS_DIRECT_IO took. */
/** A bound loop device's status (LOOP_GET_STATUS64). */
export interface LoopStatus {
  /** The backing file's path as given at attach time (at most 63 bytes kept by the kernel). */
  backingFile: string;
  offset: number;
  sizelimit: number;
  flags: number;
  /** `st_dev` of the filesystem holding the backing file (as `stat().dev` reports it). */
  backingDevice: number;
  /** Inode number of the backing file. */
  backingInode: number;
}

/** A loop device strata attached: its node, index and whether it does direct I/O. */
export interface LoopDevice {
  device: string;
  index: number;
  directIO: boolean;
}

interface Addon {
  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null,
  ): Promise<void>;
  umount2(target: string, flags: number): Promise<void>;
  mknod(path: string, mode: number, major: number, minor: number): Promise<void>;
  lgetxattr(path: string, name: string): Promise<Buffer>;
  lsetxattr(path: string, name: string, value: Buffer, flags: number): Promise<void>;
  llistxattr(path: string): Promise<string[]>;
  lremovexattr(path: string, name: string): Promise<void>;
  utimensat(dirfd: number, path: string, aS: number, aN: number, mS: number, mN: number, flags: number): Promise<void>;
  flock(fd: number, op: number): Promise<void>;
  statfs(path: string): Promise<StatfsResult>;
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): Promise<number>;
  close(fd: number): Promise<void>;
  mkdirat(dirfd: number, path: string, mode: number): Promise<void>;
  symlinkat(target: string, dirfd: number, path: string): Promise<void>;
  unlinkat(dirfd: number, path: string, flags: number): Promise<void>;
  removeTreeAt(dirfd: number, name: string): Promise<void>;
  renameat2(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): Promise<void>;
  fchownat(dirfd: number, path: string, uid: number, gid: number, flags: number): Promise<void>;
  fstatat(dirfd: number, path: string, flags: number): Promise<RawStat>;
  readlinkat(dirfd: number, path: string): Promise<string>;
  attachLoop(file: string, opts: { readOnly?: boolean; directIO?: boolean; autoclear?: boolean }): Promise<LoopDevice>;
  detachLoop(device: string): Promise<void>;
  loopStatus(device: string): Promise<LoopStatus>;
  scanPair(newDir: string | null, oldDir: string | null): Promise<ScanPairResult>;
  exportScan(
    root: number,
    dir: string,
    names: string[],
    opaque: boolean,
    inlineMax: number,
    inlineBudget: number,
  ): Promise<ExportScanResult>;
  mountFrom(dir: string, source: string, target: string, fstype: string, flags: number, data: string): Promise<void>;
  fsmountConfig(
    fstype: string,
    params: Array<[string, string | null]>,
    target: string,
    attrFlags: number,
  ): Promise<void>;
  hasUnknownDtype(dir: string): Promise<boolean>;
  ExportWalker: new (root: number, opaque: boolean, inlineMax: number) => RawExportWalker;
  NativeApplier: new (root: string, threads: number, tar: TarApplyOptions) => RawApplier;
  tarIndex(path: string, maxMembers: number): Promise<TarIndexEntry[]>;
  NativeCodec: new (kind: CodecKind, level?: number) => RawCodec;
  codecs: CodecKind[];
}

interface RawApplier {
  write(chunks: Buffer[]): Promise<TarWriteResult>;
  finish(): Promise<TarFinishResult>;
  close(): Promise<void>;
}

/** What a {@link NativeApplier} needs to know about the layer (native/apply/tar_apply.h). */
export interface TarApplyOptions {
  /** "overlay" writes the kernel's whiteout form; otherwise whiteouts delete. */
  whiteouts?: "aufs" | "overlay";
  uidMap?: Array<{ containerId: number; hostId: number; size: number }>;
  gidMap?: Array<{ containerId: number; hostId: number; size: number }>;
  /** Write tar-split index records (src/archive/tar-split.ts). */
  record?: boolean;
  /** Hash the tar (sha256, the diffID) on the applier's thread as it is taken. */
  digest?: boolean;
}

/** What one write (or the finish) of a tar did. */
export interface TarWriteResult {
  /** Non-fatal problems: xattrs dropped by the engine or refused by the filesystem. */
  warnings: string[];
  /** Warnings counted but not kept (the engine keeps 100 per write). */
  moreWarnings: number;
  /** tar-split index records written meanwhile (empty without `record`). */
  records: Buffer;
  /** File bodies those records name. */
  files: number;
}

/** What the finish of a tar did: a last write's result and the whole tar's. */
export interface TarFinishResult extends TarWriteResult {
  /** Σ of the entries' sizes (Docker's layer size). */
  size: number;
  /** "sha256:<hex>" of the tar as written, with the `digest` option. */
  digest?: string;
  /** Bytes of the tar as written, with the `digest` option. */
  tarSize?: number;
}

interface RawExportWalker {
  next(maxEntries: number, maxBytes: number): Promise<ExportScanResult>;
  close(): Promise<void>;
}

interface RawCodec {
  transform(chunk: Buffer | null | undefined): Promise<CodecStep>;
}

/**
 * What one codec step produced. With `more`, the step stopped at its output
 * limit (4 MiB) and there is output still to come: ask for it with
 * `transform(undefined)` (or `transform(null)` again at the end).
 */
export interface CodecStep {
  chunks: Buffer[];
  more: boolean;
}

/** Streaming codecs the addon may provide (see {@link nativeCodecs}). */
export type CodecKind = "gunzip" | "zstd-decompress" | "zstd-compress";

/**
 * One directory pair of the changes walk: merged, byte-sorted names (those
 * with the same inode on the same device on both sides are dropped) and, per
 * side, packed lstat fields (`SCAN` offsets; NaN mode = absent) and raw
 * `security.capability` values by index.
 */
export interface ScanPairResult {
  names: string[];
  newStats: Float64Array;
  oldStats: Float64Array;
  newCaps: Array<Buffer | undefined>;
  oldCaps: Array<Buffer | undefined>;
}

/**
 * Entries for export (see {@link exportScan}, {@link ExportWalker}): names
 * (the ones asked for, or paths from the walk), packed lstat fields
 * (`EXPORT` offsets; NaN mode = vanished), and by index the raw
 * `security.capability`, the overlay opaque flag, symlink targets and, for
 * small regular files, their content at `data[DATA_OFFSET ..+ SIZE]`.
 */
export interface ExportScanResult {
  /** exportScan: the directory itself is gone or no longer a directory inside the root. */
  missing: boolean;
  /** ExportWalker: the walk is over after this batch. */
  done: boolean;
  names: string[];
  stats: Float64Array;
  caps: Array<Buffer | undefined>;
  opaque: Array<boolean | undefined>;
  links: Array<string | undefined>;
  data: Buffer;
}

const require = createRequire(import.meta.url);
const addon: Addon = loadAddon();

function loadAddon(): Addon {
  const candidates = ["../build/Release/strata_native.node", "../../build/Release/strata_native.node"];
  let lastError: unknown;
  for (const rel of candidates) {
    try {
      return require(rel) as Addon;
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error(`Cannot load the native addon: run "npm run build" first`, { cause: lastError });
}

/** Re-throws a native errno error as a typed {@link SystemError}. */
function typed(err: unknown): never {
  if (err instanceof Error && (err as { strata?: unknown }).strata === true) {
    const code = (err as Error & { code: string }).code;
    if (code === "ERR_BREAKOUT") throw new BreakoutError(err.message);
    throw new InvalidArgumentError(code, err.message);
  }
  if (err instanceof Error && typeof (err as { errno?: unknown }).errno === "number") {
    const e = err as Error & { code: string; errno: number; syscall: string; path?: string };
    throw new SystemError(e.code, e.errno, e.syscall, e.path, e.message);
  }
  throw err;
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    typed(err);
  }
}

/** Constants for the calls below (values from the Linux UAPI headers). */
export const C = Object.freeze({
  AT_FDCWD: -100,
  AT_SYMLINK_NOFOLLOW: 0x100,
  AT_REMOVEDIR: 0x200,
  AT_EMPTY_PATH: 0x1000,
  O_RDONLY: 0,
  O_WRONLY: 1,
  O_RDWR: 2,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_TRUNC: 0o1000,
  O_DIRECTORY: 0o200000,
  O_NOFOLLOW: 0o400000,
  O_PATH: 0o10000000,
  RESOLVE_NO_XDEV: 0x01,
  RESOLVE_NO_MAGICLINKS: 0x02,
  RESOLVE_NO_SYMLINKS: 0x04,
  RESOLVE_BENEATH: 0x08,
  RESOLVE_IN_ROOT: 0x10,
  MS_RDONLY: 1,
  MS_NOSUID: 2,
  MS_NODEV: 4,
  MS_BIND: 4096,
  MS_REC: 16384,
  MS_PRIVATE: 1 << 18,
  MNT_FORCE: 1,
  MNT_DETACH: 2,
  UMOUNT_NOFOLLOW: 8,
  LOCK_SH: 1,
  LOCK_EX: 2,
  LOCK_NB: 4,
  LOCK_UN: 8,
  S_IFMT: 0o170000,
  S_IFSOCK: 0o140000,
  S_IFLNK: 0o120000,
  S_IFREG: 0o100000,
  S_IFBLK: 0o060000,
  S_IFDIR: 0o040000,
  S_IFCHR: 0o020000,
  S_IFIFO: 0o010000,
  XATTR_CREATE: 1,
  XATTR_REPLACE: 2,
  RENAME_NOREPLACE: 1,
  RENAME_EXCHANGE: 2,
});

/** mount(2). `flags` are MS_* bits; `data` the filesystem options string. */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags = 0,
  data: string | null = null,
) {
  return call(() => addon.mount(source, target, fstype, flags, data));
}
/** umount2(2); pass `C.MNT_DETACH` for a lazy unmount. */
export function umount2(target: string, flags = 0) {
  return call(() => addon.umount2(target, flags));
}
/** mknod(2); `mode` includes the file type bits (S_IFCHR, S_IFBLK, S_IFIFO). */
export function mknod(path: string, mode: number, major = 0, minor = 0) {
  return call(() => addon.mknod(path, mode, major, minor));
}
/** lgetxattr(2): the value, or `null` when the attribute is absent (ENODATA). */
export async function lgetxattr(path: string, name: string): Promise<Buffer | null> {
  try {
    return await addon.lgetxattr(path, name);
  } catch (err) {
    if ((err as { code?: string }).code === "ENODATA") return null;
    typed(err);
  }
}
/** lsetxattr(2); `flags` is 0, `C.XATTR_CREATE` or `C.XATTR_REPLACE`. */
export function lsetxattr(path: string, name: string, value: Buffer, flags = 0) {
  return call(() => addon.lsetxattr(path, name, value, flags));
}
/** llistxattr(2): attribute names, without following a final symlink. */
export function llistxattr(path: string) {
  return call(() => addon.llistxattr(path));
}
/** lremovexattr(2). */
export function lremovexattr(path: string, name: string) {
  return call(() => addon.lremovexattr(path, name));
}

/** A time with nanoseconds, as stored by the kernel. */
export interface Timespec {
  sec: number;
  nsec: number;
}
/**
 * utimensat(2) with nanoseconds. `path` "" means `dirfd` itself (futimens).
 * Pass `C.AT_SYMLINK_NOFOLLOW` to set a symlink's own times.
 */
export function utimensat(dirfd: number, path: string, atime: Timespec, mtime: Timespec, flags = 0) {
  return call(() => addon.utimensat(dirfd, path, atime.sec, atime.nsec, mtime.sec, mtime.nsec, flags));
}
/** flock(2) on an open fd; a blocking LOCK_EX waits on a pool thread. */
export function flock(fd: number, operation: number) {
  return call(() => addon.flock(fd, operation));
}
/** statfs(2); `type` is the magic number the backing-filesystem names come from. */
export function statfs(path: string) {
  return call(() => addon.statfs(path));
}

/**
 * openat2(2). O_CLOEXEC is always added. With `C.RESOLVE_IN_ROOT`, `..`,
 * absolute paths and symlinks are all resolved as if `dirfd` were `/`.
 * @returns the new fd, to be closed with {@link close}.
 */
export function openat2(dirfd: number, path: string, flags: number, mode = 0, resolve = 0) {
  return call(() => addon.openat2(dirfd, path, flags, mode, resolve));
}
/** close(2) of an fd from {@link openat2}. */
export function close(fd: number) {
  return call(() => addon.close(fd));
}
/** mkdirat(2): directory `path` below `dirfd`. */
export function mkdirat(dirfd: number, path: string, mode: number) {
  return call(() => addon.mkdirat(dirfd, path, mode));
}
/** symlinkat(2): symlink `path` below `dirfd` pointing at `target` (never followed here). */
export function symlinkat(target: string, dirfd: number, path: string) {
  return call(() => addon.symlinkat(target, dirfd, path));
}
/** unlinkat(2) of `path` below `dirfd`; `C.AT_REMOVEDIR` for an empty directory. */
export function unlinkat(dirfd: number, path: string, flags = 0) {
  return call(() => addon.unlinkat(dirfd, path, flags));
}
/**
 * Removes entry `name` (one path component) of the directory `dirfd` and
 * everything below it, walking down by file descriptor: no path length
 * limit, at most 32 directories open at once (native/remove_tree.cc). A
 * symlink named `name` is unlinked itself, never followed; a missing entry
 * is not an error.
 * @throws a SystemError: EXDEV when the tree holds a mount point (nothing of
 *   that filesystem is touched), ESTALE when the tree moved during the walk
 */
export function removeTreeAt(dirfd: number, name: string) {
  return call(() => addon.removeTreeAt(dirfd, name));
}
/** renameat2(2); `flags` 1 is RENAME_NOREPLACE. */
export function renameat2(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags = 0) {
  return call(() => addon.renameat2(olddirfd, oldpath, newdirfd, newpath, flags));
}
/** fchownat(2); pass `C.AT_SYMLINK_NOFOLLOW` to change a symlink itself. */
export function fchownat(dirfd: number, path: string, uid: number, gid: number, flags = 0) {
  return call(() => addon.fchownat(dirfd, path, uid, gid, flags));
}
/** fstatat(2); pass `C.AT_SYMLINK_NOFOLLOW` for lstat semantics. Times keep nanoseconds. */
export function fstatat(dirfd: number, path: string, flags = 0) {
  return call(() => addon.fstatat(dirfd, path, flags));
}
/** readlinkat(2): the target of symlink `path` below `dirfd`. */
export function readlinkat(dirfd: number, path: string) {
  return call(() => addon.readlinkat(dirfd, path));
}

/**
 * Binds `file` to a free loop device (LOOP_CTL_GET_FREE + LOOP_CONFIGURE).
 * Direct I/O and autoclear are on by default; direct I/O falls back to
 * buffered where the backing filesystem refuses O_DIRECT.
 */
export function attachLoop(file: string, opts: { readOnly?: boolean; directIO?: boolean; autoclear?: boolean } = {}) {
  return call(() => addon.attachLoop(file, opts));
}
/** LOOP_CLR_FD. With autoclear the device frees itself once its last opener closes. */
export function detachLoop(device: string) {
  return call(() => addon.detachLoop(device));
}
/** LOOP_GET_STATUS64: the backing file's name, device and inode (ENXIO when the device is unbound). */
export function loopStatus(device: string) {
  return call(() => addon.loopStatus(device));
}

/** Field offsets inside {@link ScanPairResult} stat arrays. */
export const SCAN = Object.freeze({
  FIELDS: 10,
  MODE: 0,
  UID: 1,
  GID: 2,
  RDEV_MAJOR: 3,
  RDEV_MINOR: 4,
  SIZE: 5,
  MTIME_SEC: 6,
  MTIME_NSEC: 7,
  INO: 8,
  NLINK: 9,
});

/** Reads one directory pair for the changes walk (see {@link ScanPairResult}). */
export function scanPair(newDir: string | null, oldDir: string | null) {
  return call(() => addon.scanPair(newDir, oldDir));
}

/** Field offsets inside {@link ExportScanResult} stats: the {@link SCAN} fields, then two more. */
export const EXPORT = Object.freeze({
  ...SCAN,
  FIELDS: 12,
  DEV: 10,
  /** Offset of the content in `data`, or -1 when not read (too large, over budget, or not a file). */
  DATA_OFFSET: 11,
});

/**
 * Describes the entries `names` of directory `dir` (relative, resolved
 * inside root fd `root` with RESOLVE_IN_ROOT) in one thread-pool trip.
 * Regular files of at most `inlineMax` bytes are read while `inlineBudget`
 * bytes last.
 */
export function exportScan(
  root: number,
  dir: string,
  names: string[],
  opts: { opaque: boolean; inlineMax: number; inlineBudget: number },
) {
  return call(() => addon.exportScan(root, dir, names, opts.opaque, opts.inlineMax, opts.inlineBudget));
}

/**
 * A depth-first walk of the tree under root fd `root` (entries of each
 * directory in byte order, a directory's contents right after it), handed
 * out in batches with paths relative to the root. Subdirectories are opened
 * one name at a time with O_NOFOLLOW, so the walk never leaves the tree.
 * One {@link next} at a time; always {@link close} it.
 */
export class ExportWalker {
  #raw: RawExportWalker;

  constructor(root: number, opts: { opaque: boolean; inlineMax: number }) {
    this.#raw = new addon.ExportWalker(root, opts.opaque, opts.inlineMax);
  }

  /** Up to `maxEntries` entries, stopping early once `maxBytes` of file content is inlined. */
  next(maxEntries: number, maxBytes: number): Promise<ExportScanResult> {
    return call(() => this.#raw.next(maxEntries, maxBytes));
  }

  close(): Promise<void> {
    return call(() => this.#raw.close());
  }
}

/**
 * A layer root with its own native thread that takes the layer tar, parses
 * it and applies it (`native/apply/tar_apply.h`), strictly in write order.
 * Writes may be queued without waiting; after a failure every later write
 * rejects with `aborted: true`, so the first failure is the one to report.
 * Always {@link NativeApplier.close} it.
 */
export class NativeApplier {
  #raw: RawApplier;

  /**
   * Opens `root` (a directory) as the containment root. With `threads` > 1,
   * entries found independent run on that many worker threads.
   * @throws SystemError
   */
  constructor(root: string, threads: number, tar: TarApplyOptions) {
    try {
      this.#raw = new addon.NativeApplier(root, threads, tar);
    } catch (err) {
      typed(err);
    }
  }

  /**
   * Parses and applies the next bytes of the layer tar on the applier's
   * thread. The Buffers must not be modified until the promise settles.
   * @throws ERR_TAR_FORMAT, ERR_TAR_UNSUPPORTED, ERR_BREAKOUT, ERR_ID_MAP, or a SystemError, for the
   *   first failing entry; an Error with `aborted` for writes after it
   */
  write(chunks: Buffer[]): Promise<TarWriteResult> {
    return call(() => this.#raw.write(chunks));
  }

  /**
   * The tar has ended. Checks that it was complete and restores directory times.
   * @returns also the layer size (Σ of the entries' sizes), and with `digest` the tar's sha256 and byte count
   */
  finish(): Promise<TarFinishResult> {
    return call(() => this.#raw.finish());
  }

  /** Waits for every queued write, closes the fds and stops the thread. */
  close(): Promise<void> {
    return call(() => this.#raw.close());
  }
}

/** A regular file or hardlink of a tar file on disk, as {@link tarIndex} lists it. */
export interface TarIndexEntry {
  /** The name as in the archive (PAX and GNU long names applied), not cleaned. */
  name: string;
  type: "file" | "link";
  /** A hardlink's target name, as in the archive. */
  linkname: string;
  /** Where the body starts in the file. */
  offset: number;
  size: number;
}

/**
 * One pass over the headers of the tar file at `path`, with the decoder the
 * applier uses; bodies are skipped, not read.
 * @throws ERR_TAR_FORMAT for a bad header, ERR_ARCHIVE_TRUNCATED when the file ends inside the archive,
 *   ERR_BAD_ARCHIVE for more than `maxMembers` files and hardlinks
 */
export function tarIndex(path: string, maxMembers: number): Promise<TarIndexEntry[]> {
  return call(() => addon.tarIndex(path, maxMembers));
}

/** The codec kinds this build of the addon supports (ISA-L gzip, libzstd). */
export function nativeCodecs(): readonly CodecKind[] {
  return addon.codecs ?? [];
}

/**
 * One streaming codec on its own thread. Steps run and settle in call
 * order and may be queued; each produces at most about 4 MiB (see
 * {@link CodecStep}). `transform(chunk)` gives input, `transform(undefined)`
 * goes on with input already given, `transform(null)` ends the stream and
 * checks it is complete.
 * @throws Error with code ERR_DECOMPRESS for corrupt or truncated input
 */
export function createNativeCodec(kind: CodecKind, level?: number): RawCodec {
  return new addon.NativeCodec(kind, level);
}

/**
 * mount(2) with `source`, `target` and paths inside `data` resolved
 * relative to `dir` (Docker's mountfrom: short relative lowerdir paths keep
 * the mount data under a page). Runs on a short-lived thread with its own
 * cwd; the process's cwd never changes.
 */
export function mountFrom(dir: string, source: string, target: string, fstype: string, flags: number, data: string) {
  return call(() => addon.mountFrom(dir, source, target, fstype, flags, data));
}

/** `MOUNT_ATTR_*` flags for {@link fsmountConfig}. */
export const MOUNT_ATTR = Object.freeze({ RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4 });

/**
 * Mounts with the new mount API: fsopen(fstype), one fsconfig per param
 * (`[key, value]` sets a string, `[key, null]` a flag; overlay's
 * `lowerdir+` may repeat, with no page limit), fsmount with `attrFlags`
 * ({@link MOUNT_ATTR}), move_mount onto `target`.
 */
export function fsmountConfig(fstype: string, params: Array<[string, string | null]>, target: string, attrFlags = 0) {
  return call(() => addon.fsmountConfig(fstype, params, target, attrFlags));
}

/** Whether readdir of `dir` reports DT_UNKNOWN for any entry (no d_type support). */
export function hasUnknownDtype(dir: string) {
  return call(() => addon.hasUnknownDtype(dir));
}
