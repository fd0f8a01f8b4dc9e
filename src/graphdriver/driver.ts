/**
 * The graphdriver contract: how a storage driver keeps layers on disk.
 *
 * Vocabulary:
 * - **id**: the driver's name for one layer (the layer store's cache id, or a
 *   container's mount id). Any string of `[A-Za-z0-9_.-]`, not empty.
 * - **parent**: the id of the layer this one starts from; `""` means none
 *   (the layer starts empty).
 * - **image layer** (`create`) is filled once through `applyDiff` and then
 *   only read; a **read-write layer** (`createReadWrite`) is a container's
 *   writable top.
 *
 * Lifecycle: `create` → `applyDiff` (image layers) or `get` → changes by the
 * user → `put` → `diff`/`changes` → `remove`.
 *
 * `get` mounts (or activates) and returns the path of the layer's tree;
 * `put` unmounts. **Neither counts references**: the layer store's `Mounts`
 * registry is their only caller and owns every count. Calling `get` twice
 * without `put` is a caller bug; drivers may treat it as idempotent.
 *
 * `mountSpec` is the other way to reach a layer's tree, for a client that
 * mounts for itself (containerd, through `strata serve`): the driver
 * describes the mounts instead of making them, and `put` releases what the
 * description needed. A layer is reached through `get` or through
 * `mountSpec`, never both.
 *
 * @module
 */
import type { Readable } from "node:stream";
import type { TarRecorder } from "../archive/tar-reader.js";

/** One entry of a change list, as `docker diff` prints it. */
export interface Change {
  /** Absolute path inside the layer, e.g. `/etc/hosts`. */
  path: string;
  /** A = added, C = changed, D = deleted. */
  kind: "A" | "C" | "D";
}

/** Options for create and createReadWrite. */
export interface CreateOpts {
  /** Per-layer storage options (`size` for drivers that support it). */
  storageOpt?: Record<string, string>;
  /** SELinux label; unused by strata's drivers, kept for parity. */
  mountLabel?: string;
}

/** Options for applyDiff. */
export interface ApplyDiffOptions {
  /** Sees the tar's raw non-content bytes, for pristine re-assembly (tar-split). */
  recorder?: TarRecorder;
}

/**
 * One mount of a {@link Driver.mountSpec} description, in containerd's
 * terms (its `Mount` message): what the client passes to mount(2).
 */
export interface MountSpec {
  /** Filesystem type: `overlay`, `bind`, `ext4`, `xfs`. */
  type: string;
  /** The device or directory mounted (`overlay` for overlay mounts). */
  source: string;
  /** fstab-style options: `ro`, `rw`, `rbind`, `lowerdir=…`, `upperdir=…`, `workdir=…`. */
  options: string[];
}

/** Options for mountSpec. */
export interface MountSpecOptions {
  /** Describe a read-only mount (a layer with children must be asked read-only). */
  readonly: boolean;
}

/** What a driver can do beyond the contract; checked by flag, never by sniffing methods. */
export interface Capabilities {
  /** The init layer goes inside each image layer (devmapper), not in a `<id>-init` layer. */
  readonly initInImage: boolean;
  /** diff/changes read the driver's own upper dir instead of comparing mounted trees. */
  readonly nativeDiff: boolean;
  /** `get` returns a path without mounting anything (vfs). */
  readonly mountless: boolean;
}

/**
 * Acquire/release functions handed to the naive diff methods. The layer
 * store passes its counted `Mounts`; tests and tools without a store may pass
 * the driver's own get/put.
 */
export interface MountAccess {
  acquire(id: string): Promise<string>;
  release(id: string): Promise<void>;
}

/** A storage driver. Errors are {@link StrataError}s with the codes named per method. */
export interface Driver {
  /** Driver name as selected by `--driver` (`vfs`, `overlay`, `devmapper`). */
  readonly name: string;
  /** Driver home, `<root>/<name>`. */
  readonly home: string;
  readonly capabilities: Capabilities;

  /**
   * Creates an empty image layer on `parent` ("" for none).
   * @throws ERR_LAYER_EXISTS when `id` exists; ERR_LAYER_NOT_FOUND when `parent` does not;
   *   ERR_INVALID_ARGUMENT for storage options the driver does not accept.
   */
  create(id: string, parent: string, opts?: CreateOpts): Promise<void>;
  /** Like {@link create}, for a container's writable layer; the only place `size` is accepted. */
  createReadWrite(id: string, parent: string, opts?: CreateOpts): Promise<void>;
  /**
   * Removes the layer. Removing an id that does not exist succeeds.
   * The caller guarantees the layer is not mounted and has no children.
   */
  remove(id: string): Promise<void>;
  /**
   * Mounts the layer if needed and returns the path of its tree. Not counted.
   * @throws ERR_LAYER_NOT_FOUND
   */
  get(id: string, mountLabel?: string): Promise<string>;
  /**
   * Unmounts what `get` mounted and releases what `mountSpec` made ready.
   * Not counted; a layer that is not mounted is a no-op.
   */
  put(id: string): Promise<void>;
  /**
   * Describes, without mounting anything, the mounts that show the layer's
   * tree (with its parents) to a client that mounts for itself: mounting
   * the list in order at one target gives the tree, read-only when asked.
   * Per driver:
   * - vfs: a `bind` of the layer's directory (`rbind`, `rw`/`ro`);
   * - overlay: a layer without lowers is a `bind` of its diff dir; else an
   *   `overlay` with `lowerdir` (absolute `l/` links, topmost first) and, for
   *   read-write, `upperdir` and `workdir` (read-only: the layer's own diff
   *   becomes the top lower);
   * - devmapper: the thin device's filesystem (`ext4`/`xfs`, source the
   *   block device, `ro` when asked). The client sees the filesystem's root,
   *   where `get` shows its `rootfs/` directory.
   *
   * What the description needs (devmapper: the active block device) is made
   * ready and stays until `put(id)` or `remove(id)`, also across `close()`
   * and a restart of the process: the client may mount it at any time.
   * Idempotent. Not counted. The caller must not mount a layer read-write
   * while it has children.
   * @throws ERR_LAYER_NOT_FOUND
   */
  mountSpec(id: string, opts: MountSpecOptions): Promise<MountSpec[]>;
  /** Whether the layer exists. Cheap. */
  exists(id: string): Promise<boolean>;
  /** Ordered key/value pairs as `strata info` (and `docker info`) shows them. */
  status(): Promise<Array<[string, string]>>;
  /** Every layer id the driver holds (for `strata check`: orphans, missing layers). */
  list(): Promise<string[]>;
  /** Low-level facts about one layer (paths, device ids). */
  metadata(id: string): Promise<Record<string, string>>;
  /**
   * Shuts the driver down: unmounts and deactivates everything it has
   * mounted, and stops what it started (Docker's Cleanup on daemon exit).
   * Safe to call twice. The CLI does not call it after each command.
   */
  cleanup(): Promise<void>;
  /**
   * Releases what this process holds (connections, timers, fds) and leaves
   * mounts and devices as they are, so a mount taken by `strata mount`
   * outlives the command. What ends a CLI command. Safe to call twice.
   */
  close(): Promise<void>;

  /**
   * Tar (AUFS whiteouts) of what `id` changed relative to `parent`; with
   * parent "" the whole layer. The caller must consume or destroy the stream.
   */
  diff(id: string, parent: string, mounts: MountAccess): Promise<Readable>;
  /** What `id` changed relative to `parent`, with `docker diff`'s rules. */
  changes(id: string, parent: string, mounts: MountAccess): Promise<Change[]>;
  /**
   * Applies an uncompressed layer tar onto the empty layer `id`, created on
   * `parent`. Returns the sum of entry sizes from the tar headers.
   * @throws ERR_BREAKOUT for entries that would leave the layer
   */
  applyDiff(id: string, parent: string, tar: Readable, mounts: MountAccess, opts?: ApplyDiffOptions): Promise<number>;
  /** Bytes of the files `id` added or changed relative to `parent` (hardlinks counted once). */
  diffSize(id: string, parent: string, mounts: MountAccess): Promise<number>;
}

/** Options every driver factory receives. */
export interface DriverOptions {
  /** The store root; the driver's home is `<root>/<driver name>`. */
  root: string;
  /** Driver options (`--storage-opt key=value`), keys as given. */
  options: Record<string, string>;
}

/** Creates a driver, or throws {@link NotSupportedError} when it cannot run here. */
export type DriverFactory = (opts: DriverOptions) => Promise<Driver>;
