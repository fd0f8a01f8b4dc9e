/**
 * The graphdriver contract: how a storage driver keeps layers on disk.
 *
 * Vocabulary:
 * - **id**: the driver's name for one layer (the layer store's cache id, or a
 *   container's mount id). One path component of `[A-Za-z0-9_.-]` starting
 *   with a letter or digit, without `..` or `.tmp-` (`layer-id.ts`).
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

/** What a driver can do beyond the contract; checked by flag, never by sniffing methods. */
export interface Capabilities {
  /**
   * The layer store makes one init layer per image layer, shared by the
   * image's containers (devmapper: a container is then one snapshot), instead
   * of a `<mountID>-init` layer per container. Either way an image layer holds
   * exactly its tar's tree.
   */
  readonly sharedInit: boolean;
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
  /** Unmounts what `get` mounted. Not counted; a layer that is not mounted is a no-op. */
  put(id: string): Promise<void>;
  /** Whether the layer exists. Cheap. */
  exists(id: string): Promise<boolean>;
  /** Ordered key/value pairs as `strata info` (and `docker info`) shows them. */
  status(): Promise<Array<[string, string]>>;
  /** Every layer id the driver holds (for `strata check`: orphans, missing layers). */
  list(): Promise<string[]>;
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
