/**
 * The graphdriver contract: how a storage driver keeps layers on disk.
 *
 * Vocabulary:
 * - **id**: the driver's name for one layer (the layer store's cache id, or a
 *   container's mount id). One path component of `[A-Za-z0-9_.-]` starting
 *   with a letter or digit, without `..` or `.tmp-` (`layer-id.ts`).
 * - **parent**: the id of the layer this one starts from; `""` means none
 *   (the layer starts empty).
 * - **image layer** (`create`) is filled once with a layer tar and then
 *   only read; a **read-write layer** (`createReadWrite`) is a container's
 *   writable top.
 *
 * Lifecycle: `create` → a layer tar applied (image layers) or `get` →
 * changes by the user → `put` → diffed → `remove`.
 *
 * Drivers store and mount; they do not diff. The layer store's Differ
 * (`src/layer/differ.ts`) applies tars and compares trees above them, as
 * containerd's differ sits above its snapshotters; a driver that keeps a
 * layer's own changes apart says where (`diffDir`, `applyDir`), so the
 * Differ can read them without mounting.
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

/** Options for create and createReadWrite. */
export interface CreateOpts {
  /** Per-layer storage options (`size` for drivers that support it). */
  storageOpt?: Record<string, string>;
  /** SELinux label; unused by strata's drivers, kept for parity. */
  mountLabel?: string;
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
  /**
   * The layer store makes one init layer per image layer, shared by the
   * image's containers (devmapper: a container is then one snapshot), instead
   * of a `<mountID>-init` layer per container. Either way an image layer holds
   * exactly its tar's tree.
   */
  readonly sharedInit: boolean;
  /** A diff and its size can be read from {@link Driver.diffDir} alone (overlay's upper dir, no redirects or metacopy). */
  readonly nativeDiff: boolean;
  /** `get` returns a path without mounting anything (vfs). */
  readonly mountless: boolean;
}

/**
 * A directory where a driver keeps one layer's own content apart, readable
 * and writable without mounting (overlay's upper dir, `<id>/diff`).
 */
export interface DiffDir {
  /** Absolute path of the directory. */
  path: string;
  /** How deletions are kept there: "overlay" as char 0/0 devices and opaque xattrs; "aufs" not at all (nothing below). */
  whiteouts: "aufs" | "overlay";
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
  /**
   * Entries of the driver's home that are no layer and no live work: what
   * dead processes left half built or half removed, and entries strata never
   * writes (a symlink where a layer directory belongs). The driver's start
   * removes what it can of them; what is reported here could not be removed
   * (`strata check` shows it, `--repair` retries with {@link removeLeftover}).
   * A read-only operation: creates nothing, not even the home.
   */
  leftovers(): Promise<string[]>;
  /**
   * Removes one entry {@link leftovers} named, by file descriptor (a symlink
   * is unlinked, never followed; a mount inside is refused with EXDEV).
   * @throws ERR_INVALID_ID for a name that is not a leftover
   */
  removeLeftover(name: string): Promise<void>;
  /**
   * Layers that are mounted but whose mount no longer works although the
   * mount table still lists it (devmapper on the userspace pool: the pool
   * daemon died under the loop device, so every I/O fails). For `strata
   * check`; `put` then `get` repairs one. No I/O on layer data. Drivers whose
   * mounts cannot break this way return [].
   */
  brokenMounts(): Promise<Array<{ id: string; reason: string }>>;
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
   * Where `id`'s own changes relative to `parent` are kept apart from its
   * parents' content, or null when the driver keeps no such record (vfs and
   * devmapper hold full trees) or `parent` is not `id`'s direct parent ("":
   * a layer without parent). The layer store's Differ reads this directory
   * instead of comparing mounted trees: for a diff or its size only when
   * {@link Capabilities.nativeDiff} holds (otherwise the directory may hold
   * redirects or metadata-only copies), for a change list as a hint of where
   * to look. Cheap; mounts nothing.
   * @throws ERR_LAYER_NOT_FOUND
   */
  diffDir(id: string, parent: string): Promise<DiffDir | null>;
  /**
   * Where a layer tar for the empty layer `id`, created on `parent`, can be
   * applied without mounting, and in which whiteout form; or null: the
   * caller mounts `id` (through the store's Mounts) and applies into its tree.
   * @throws ERR_LAYER_NOT_FOUND
   */
  applyDir(id: string, parent: string): Promise<DiffDir | null>;
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
