/**
 * The snapshotter's metadata: one record per snapshot key (driver layer id,
 * kind, parent, labels, times, a committed snapshot's usage), kept in one
 * JSON file that every change rewrites atomically (`src/util/atomic.ts`).
 * A change is a transaction: it runs on a copy, is written, and only then
 * becomes what readers see; a change that throws leaves nothing behind.
 * Changes are serialised; reads never wait.
 *
 * The file is the store's own content and is checked on open like any input
 * from outside: a record that does not decode, points at a missing or
 * uncommitted parent, or shares a layer with another record stops the open
 * with ERR_SNAPSHOT_METADATA instead of being skipped.
 *
 * @module
 */
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { hasCode, StrataError } from "../../errors.js";
import { C, flock } from "../../native.js";
import { writeJsonAtomic } from "../../util/atomic.js";

/** containerd's snapshot kinds. */
export type Kind = "view" | "active" | "committed";

/** Bytes and inodes a snapshot uses (containerd's `Usage`). */
export interface Usage {
  size: number;
  inodes: number;
}

/** One snapshot. */
export interface SnapshotRecord {
  /** The driver layer holding the snapshot (`ctd-<hex>`). */
  id: string;
  kind: Kind;
  /** Key of the parent snapshot, "" for none; always a committed snapshot. */
  parent: string;
  labels: Record<string, string>;
  /** Milliseconds since the epoch. */
  created: number;
  updated: number;
  /** A committed snapshot's usage, once measured (it never changes). */
  usage?: Usage;
}

/** The records by key; what a transaction changes. */
export type Records = Map<string, SnapshotRecord>;

/** Driver layer ids the snapshotter owns start with this; nothing else is swept. */
export const LAYER_PREFIX = "ctd-";
const LAYER_ID_RE = /^ctd-[0-9a-f]{32}$/;
const FILE = "snapshots.json";
const VERSION = 1;

/** The store's metadata file is damaged. */
export class MetadataError extends StrataError {
  constructor(reason: string, path: string) {
    super("ERR_SNAPSHOT_METADATA", `Cannot open snapshot metadata: ${reason} "${path}"`);
  }
}

function isStringMap(v: unknown): v is Record<string, string> {
  return (
    typeof v === "object" &&
    v !== null &&
    !Array.isArray(v) &&
    Object.values(v as object).every((x) => typeof x === "string")
  );
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Decodes and checks one record; returns a reason when it is not one. */
function decodeRecord(v: unknown): SnapshotRecord | string {
  if (typeof v !== "object" || v === null) return "record is not an object";
  const r = v as Record<string, unknown>;
  if (typeof r.id !== "string" || !LAYER_ID_RE.test(r.id)) return `bad layer id ${JSON.stringify(r.id)}`;
  if (r.kind !== "view" && r.kind !== "active" && r.kind !== "committed") return `bad kind ${JSON.stringify(r.kind)}`;
  if (typeof r.parent !== "string") return "bad parent";
  if (!isStringMap(r.labels)) return "bad labels";
  if (!isCount(r.created) || !isCount(r.updated)) return "bad times";
  const rec: SnapshotRecord = {
    id: r.id,
    kind: r.kind,
    parent: r.parent,
    labels: { ...r.labels },
    created: r.created,
    updated: r.updated,
  };
  if (r.usage !== undefined) {
    const u = r.usage as Record<string, unknown> | null;
    if (typeof u !== "object" || u === null || !isCount(u.size) || !isCount(u.inodes)) return "bad usage";
    rec.usage = { size: u.size, inodes: u.inodes };
  }
  return rec;
}

/** Checks what holds between records: parents exist and are committed, no cycles, one record per layer. */
function checkGraph(records: Records): string | null {
  const layers = new Set<string>();
  for (const [key, rec] of records) {
    if (key === "") return "empty key";
    if (layers.has(rec.id)) return `layer ${rec.id} used twice`;
    layers.add(rec.id);
    if (rec.parent === "") continue;
    const parent = records.get(rec.parent);
    if (!parent) return `parent of ${JSON.stringify(key)} is missing`;
    if (parent.kind !== "committed") return `parent of ${JSON.stringify(key)} is not committed`;
  }
  for (const key of records.keys()) {
    const seen = new Set<string>();
    for (let k = key; k !== ""; k = records.get(k)!.parent) {
      if (seen.has(k)) return `parent cycle through ${JSON.stringify(k)}`;
      seen.add(k);
    }
  }
  return null;
}

/** The metadata of one snapshotter store. Open with {@link MetaStore.open}. */
export class MetaStore {
  readonly dir: string;
  #records: Records;
  #queue: Promise<void> = Promise.resolve();
  #lock: Awaited<ReturnType<typeof open>>;

  private constructor(dir: string, records: Records, lock: Awaited<ReturnType<typeof open>>) {
    this.dir = dir;
    this.#records = records;
    this.#lock = lock;
  }

  /**
   * Opens the metadata in `dir` (which must exist), holding its lock file
   * for as long as it is open: one snapshotter per store.
   * @throws ERR_SNAPSHOTTER_BUSY when another process holds the store;
   *   ERR_SNAPSHOT_METADATA when the file is damaged
   */
  static async open(dir: string): Promise<MetaStore> {
    const lock = await open(join(dir, "lock"), "a+", 0o600);
    try {
      await flock(lock.fd, C.LOCK_EX | C.LOCK_NB);
    } catch (err) {
      await lock.close();
      if (hasCode(err, "EWOULDBLOCK", "EAGAIN"))
        throw new StrataError("ERR_SNAPSHOTTER_BUSY", `Cannot open snapshot store: in use by another process "${dir}"`);
      throw err;
    }
    try {
      return new MetaStore(dir, await MetaStore.#load(join(dir, FILE)), lock);
    } catch (err) {
      await lock.close();
      throw err;
    }
  }

  static async #load(path: string): Promise<Records> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      if (hasCode(err, "ENOENT")) return new Map();
      throw err;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new MetadataError("not JSON", path);
    }
    const d = doc as { version?: unknown; snapshots?: unknown } | null;
    if (typeof d !== "object" || d === null || d.version !== VERSION)
      throw new MetadataError(`unknown version ${JSON.stringify(d?.version)}`, path);
    if (typeof d.snapshots !== "object" || d.snapshots === null || Array.isArray(d.snapshots))
      throw new MetadataError("no snapshots object", path);
    const records: Records = new Map();
    for (const [key, value] of Object.entries(d.snapshots)) {
      const rec = decodeRecord(value);
      if (typeof rec === "string") throw new MetadataError(`${rec} in ${JSON.stringify(key)}`, path);
      records.set(key, rec);
    }
    const problem = checkGraph(records);
    if (problem) throw new MetadataError(problem, path);
    return records;
  }

  /** The record of `key`, as last committed. */
  get(key: string): SnapshotRecord | undefined {
    return this.#records.get(key);
  }

  /** Every record, as last committed (a consistent view: later changes make a new map). */
  all(): ReadonlyMap<string, SnapshotRecord> {
    return this.#records;
  }

  /** Whether some record names `key` as its parent. */
  hasChildren(key: string): boolean {
    for (const rec of this.#records.values()) if (rec.parent === key) return true;
    return false;
  }

  /**
   * Runs `change` on a copy of the records, writes the copy and makes it
   * current. Changes run one at a time; when `change` or the write throws,
   * nothing changes.
   */
  async update<T>(change: (records: Records) => T): Promise<T> {
    const run = this.#queue.then(async () => {
      const draft: Records = new Map([...this.#records].map(([k, r]) => [k, structuredClone(r)]));
      const result = change(draft);
      const problem = checkGraph(draft);
      if (problem) throw new StrataError("ERR_SNAPSHOT_METADATA", `Cannot change snapshot metadata: ${problem}`);
      await writeJsonAtomic(join(this.dir, FILE), { version: VERSION, snapshots: Object.fromEntries(draft) });
      this.#records = draft;
      return result;
    });
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Waits for pending changes and releases the store's lock. */
  async close(): Promise<void> {
    await this.#queue;
    await this.#lock.close();
  }
}
