/**
 * containerd's snapshotter contract over a strata driver, without the wire.
 *
 * Words (containerd's): a snapshot is named by a **key** while it is
 * **active** (writable) or a **view** (read-only), and by a **name** once
 * **committed**; only committed snapshots are parents; `""` is no parent.
 * Each snapshot is one driver layer (`ctd-<hex>`): active = read-write
 * layer, view and committed = read-only layer; commit keeps the layer and
 * renames the record. containerd mounts what `mountSpec` describes and
 * applies layers through it itself.
 *
 * Rules, as containerd's storage enforces them: preparing or viewing an
 * existing key fails AlreadyExists; a missing parent NotFound, an
 * uncommitted parent InvalidArgument; `mounts` of a committed snapshot and
 * `commit` of anything but an active one FailedPrecondition; removing a
 * snapshot with children FailedPrecondition; `update` changes labels only
 * (other fields InvalidArgument).
 *
 * Crash safety (containerd's metastore order): a new layer is made first
 * and recorded after, a record is dropped first and its layer removed
 * after, so a crash leaves at worst a `ctd-` layer without a record, which
 * {@link Snapshotter.cleanup} (run at open, and by containerd) removes.
 * Concurrency: requests run in parallel; each locks the keys it touches
 * (key, parent, a commit's name), so a parent cannot go while a child is
 * made from it.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  StrataError,
} from "../../errors.js";
import type { Driver, MountSpec } from "../../graphdriver/driver.js";
import { parseFilters } from "./filters.js";
import { KeyLocks } from "./key-locks.js";
import { type Kind, LAYER_PREFIX, MetaStore, type SnapshotRecord, type Usage } from "./metadata.js";
import { layerUsage, sweepUsageMounts } from "./usage.js";

/** A snapshot as containerd's `Info` shows it. */
export interface SnapshotInfo {
  name: string;
  parent: string;
  kind: Kind;
  /** Milliseconds since the epoch. */
  created: number;
  updated: number;
  labels: Record<string, string>;
}

/** What {@link Snapshotter.open} needs. */
export interface SnapshotterOptions {
  /** The driver whose layers hold the snapshots; the caller opens and closes it. */
  driver: Driver;
  /** Directory for the metadata, its lock and scratch mounts (created when missing). */
  stateDir: string;
  /** Where to report what a request cannot report itself (a failed removal). */
  log: (line: string) => void;
}

/** containerd's limit on one label (key and value together). */
const MAX_LABEL_BYTES = 4096;

function notFound(key: string): NotFoundError {
  return new NotFoundError("ERR_SNAPSHOT_NOT_FOUND", `Cannot find snapshot: no such key "${key}"`);
}

function assertKey(what: string, key: string): void {
  if (key === "" || key.includes("\0") || Buffer.byteLength(key) > MAX_LABEL_BYTES)
    throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot use snapshot ${what}: invalid key "${key}"`);
}

function assertLabels(labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels)) {
    if (k === "" || Buffer.byteLength(k) + Buffer.byteLength(v) > MAX_LABEL_BYTES)
      throw new InvalidArgumentError(
        "ERR_INVALID_ARGUMENT",
        `Cannot set snapshot label: empty key, or key and value over ${MAX_LABEL_BYTES} bytes "${k.slice(0, 64)}"`,
      );
  }
}

/** Labels without empty values (an empty value removes a label, as in containerd). */
function cleanLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ""));
}

function infoOf(key: string, r: SnapshotRecord): SnapshotInfo {
  return { name: key, parent: r.parent, kind: r.kind, created: r.created, updated: r.updated, labels: { ...r.labels } };
}

/** The snapshotter. Open with {@link Snapshotter.open}; every method is safe to call concurrently. */
export class Snapshotter {
  readonly driver: Driver;
  readonly #meta: MetaStore;
  readonly #locks = new KeyLocks();
  readonly #log: (line: string) => void;
  readonly #scratch: string;
  /** Layers being made (not yet recorded) or being removed: cleanup leaves them alone. */
  readonly #inFlight = new Set<string>();

  private constructor(driver: Driver, meta: MetaStore, log: (line: string) => void) {
    this.driver = driver;
    this.#meta = meta;
    this.#log = log;
    this.#scratch = meta.dir;
  }

  /**
   * Opens the metadata in `stateDir` (one snapshotter per store), removes
   * scratch mounts and layers a crash left, and reports records whose layer
   * is gone.
   * @throws ERR_SNAPSHOTTER_BUSY, ERR_SNAPSHOT_METADATA (see {@link MetaStore.open})
   */
  static async open(opts: SnapshotterOptions): Promise<Snapshotter> {
    await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });
    const meta = await MetaStore.open(opts.stateDir);
    const s = new Snapshotter(opts.driver, meta, opts.log);
    try {
      await sweepUsageMounts(opts.stateDir);
      await s.cleanup();
      for (const [key, rec] of meta.all()) {
        if (!(await opts.driver.exists(rec.id)))
          opts.log(`snapshot ${JSON.stringify(key)}: layer ${rec.id} is missing`);
      }
    } catch (err) {
      await meta.close();
      throw err;
    }
    return s;
  }

  /** Creates an active snapshot `key` on committed `parent` and returns its mounts. */
  prepare(key: string, parent: string, labels: Record<string, string>): Promise<MountSpec[]> {
    return this.#create("active", key, parent, labels);
  }

  /** Creates a read-only view `key` of committed `parent` and returns its mounts. */
  view(key: string, parent: string, labels: Record<string, string>): Promise<MountSpec[]> {
    return this.#create("view", key, parent, labels);
  }

  async #create(kind: Kind, key: string, parent: string, labels: Record<string, string>): Promise<MountSpec[]> {
    assertKey(kind === "view" ? "view" : "prepare", key);
    assertLabels(labels);
    return this.#locks.with([key, parent], async () => {
      if (this.#meta.get(key))
        throw new AlreadyExistsError("ERR_SNAPSHOT_EXISTS", `Cannot create snapshot: key exists "${key}"`);
      let parentId = "";
      if (parent !== "") {
        const p = this.#meta.get(parent);
        if (!p) throw new NotFoundError("ERR_SNAPSHOT_NOT_FOUND", `Cannot create snapshot: missing parent "${parent}"`);
        if (p.kind !== "committed")
          throw new InvalidArgumentError(
            "ERR_INVALID_ARGUMENT",
            `Cannot create snapshot: parent is not committed "${parent}"`,
          );
        parentId = p.id;
      }
      const id = `${LAYER_PREFIX}${randomBytes(16).toString("hex")}`;
      this.#inFlight.add(id);
      try {
        if (kind === "active") await this.driver.createReadWrite(id, parentId);
        else await this.driver.create(id, parentId);
        try {
          const mounts = await this.driver.mountSpec(id, { readonly: kind === "view" });
          const now = Date.now();
          await this.#meta.update((r) => {
            r.set(key, { id, kind, parent, labels: cleanLabels(labels), created: now, updated: now });
          });
          return mounts;
        } catch (err) {
          await this.driver.remove(id).catch((e: unknown) => this.#log(`cannot remove layer ${id}: ${String(e)}`));
          throw err;
        }
      } finally {
        this.#inFlight.delete(id);
      }
    });
  }

  /** The mounts of an active snapshot or view. */
  async mounts(key: string): Promise<MountSpec[]> {
    return this.#locks.with([key], async () => {
      const rec = this.#meta.get(key);
      if (!rec) throw notFound(key);
      if (rec.kind === "committed")
        throw new FailedPreconditionError(
          "ERR_SNAPSHOT_STATE",
          `Cannot mount snapshot: committed snapshots are not mounted "${key}"`,
        );
      return this.driver.mountSpec(rec.id, { readonly: rec.kind === "view" });
    });
  }

  /**
   * Commits active snapshot `key` as `name` with `labels` (replacing, not
   * inheriting, the active snapshot's), and releases what its mounts needed.
   */
  async commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    assertKey("commit", name);
    assertLabels(labels);
    await this.#locks.with([name, key], async () => {
      if (this.#meta.get(name))
        throw new AlreadyExistsError("ERR_SNAPSHOT_EXISTS", `Cannot commit snapshot: name exists "${name}"`);
      const rec = this.#meta.get(key);
      if (!rec) throw notFound(key);
      if (rec.kind !== "active")
        throw new FailedPreconditionError("ERR_SNAPSHOT_STATE", `Cannot commit snapshot: not active "${key}"`);
      const now = Date.now();
      await this.#meta.update((r) => {
        r.delete(key);
        r.set(name, { ...rec, kind: "committed", labels: cleanLabels(labels), created: now, updated: now });
      });
      await this.driver.put(rec.id).catch((e: unknown) => this.#log(`cannot release layer ${rec.id}: ${String(e)}`));
    });
  }

  /**
   * Removes a snapshot of any kind: the record first, then the layer. A
   * layer that cannot be removed now is logged and left to {@link cleanup}.
   */
  async remove(key: string): Promise<void> {
    await this.#locks.with([key], async () => {
      const rec = this.#meta.get(key);
      if (!rec) throw notFound(key);
      if (this.#meta.hasChildren(key))
        throw new FailedPreconditionError(
          "ERR_SNAPSHOT_HAS_CHILDREN",
          `Cannot remove snapshot: it has children "${key}"`,
        );
      // In flight while it goes, so a concurrent cleanup does not remove it a second time.
      this.#inFlight.add(rec.id);
      try {
        await this.#meta.update((r) => {
          r.delete(key);
        });
        await this.driver
          .remove(rec.id)
          .catch((e: unknown) => this.#log(`cannot remove layer ${rec.id} of ${JSON.stringify(key)}: ${String(e)}`));
      } finally {
        this.#inFlight.delete(rec.id);
      }
    });
  }

  /** The snapshot's info. */
  stat(key: string): SnapshotInfo {
    const rec = this.#meta.get(key);
    if (!rec) throw notFound(key);
    return infoOf(key, rec);
  }

  /**
   * Updates labels, containerd's way: no paths replaces all labels;
   * `labels` replaces all; `labels.<key>` sets (or, with an empty or
   * missing value, removes) one. Any other path is InvalidArgument.
   */
  async update(name: string, labels: Record<string, string>, paths: readonly string[]): Promise<SnapshotInfo> {
    assertLabels(labels);
    return this.#locks.with([name], async () => {
      const rec = this.#meta.get(name);
      if (!rec) throw notFound(name);
      let next = { ...rec.labels };
      if (paths.length === 0) next = { ...labels };
      for (const path of paths) {
        if (path === "labels") next = { ...labels };
        else if (path.startsWith("labels.")) {
          const k = path.slice("labels.".length);
          next[k] = labels[k] ?? "";
        } else
          throw new InvalidArgumentError(
            "ERR_INVALID_ARGUMENT",
            `Cannot update snapshot: field is immutable "${path}"`,
          );
      }
      const updated: SnapshotRecord = { ...rec, labels: cleanLabels(next), updated: Date.now() };
      await this.#meta.update((r) => {
        r.set(name, updated);
      });
      return infoOf(name, updated);
    });
  }

  /**
   * Snapshots matching any of containerd's `filters` (all when none), by key.
   * @throws ERR_INVALID_FILTER
   */
  list(filters: readonly string[]): SnapshotInfo[] {
    const match = parseFilters(filters);
    return [...this.#meta.all()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, rec]) => infoOf(key, rec))
      .filter(match);
  }

  /**
   * Bytes and inodes the snapshot uses, as containerd's overlay snapshotter
   * reports them: an active snapshot is measured now (cost grows with its
   * size; `signal` stops it), a committed one once (then remembered), a
   * view reports zero.
   */
  async usage(key: string, signal?: AbortSignal): Promise<Usage> {
    return this.#locks.with([key], async () => {
      const rec = this.#meta.get(key);
      if (!rec) throw notFound(key);
      if (rec.kind === "view") return { size: 0, inodes: 0 };
      if (rec.usage) return rec.usage;
      const usage = await layerUsage(this.driver, rec.id, rec.kind !== "active", this.#scratch, signal);
      if (rec.kind === "committed") {
        // Measuring a committed device made it active: release it again.
        await this.driver.put(rec.id);
        await this.#meta.update((r) => {
          const cur = r.get(key);
          if (cur && cur.id === rec.id) cur.usage = usage;
        });
      }
      return usage;
    });
  }

  /**
   * Removes `ctd-` layers that no record names (left by a crash between
   * the two steps of a create or remove). Returns their ids.
   */
  async cleanup(): Promise<string[]> {
    const removed: string[] = [];
    for (const id of await this.driver.list()) {
      if (!id.startsWith(LAYER_PREFIX) || this.#inFlight.has(id)) continue;
      let used = false;
      for (const rec of this.#meta.all().values()) if (rec.id === id) used = true;
      if (used) continue;
      try {
        await this.driver.remove(id);
        removed.push(id);
      } catch (err) {
        this.#log(`cannot remove orphan layer ${id}: ${String(err)}`);
      }
    }
    return removed;
  }

  /** Waits for metadata writes and releases the store. The driver stays open (its owner closes it). */
  async close(): Promise<void> {
    await this.#meta.close();
  }
}

/** True for errors a caller made (the request), as opposed to a failure of the store. */
export function isRequestError(err: unknown): boolean {
  return (
    err instanceof NotFoundError ||
    err instanceof AlreadyExistsError ||
    err instanceof FailedPreconditionError ||
    err instanceof InvalidArgumentError ||
    (err instanceof StrataError && err.code === "ERR_INVALID_FILTER")
  );
}
