/**
 * The DeviceSet's files under `<home>/metadata/` (Docker's layout):
 * - `<id>` (and `base`): one device, `{"device_id","size","transaction_id","initialized","deleted"}`;
 * - `deviceset-metadata`: `{"next_device_id","BaseDeviceUUID","BaseDeviceFilesystem"}`;
 * - `transaction-metadata`: the open transaction `{"open_transaction_id","device_hash","device_id"}`.
 *
 * Every write is atomic (temp, fsync, rename, fsync of the directory). A
 * file that does not decode is an error, never silently skipped.
 *
 * @module
 */
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { hasCode, NotFoundError } from "../../errors.js";
import { DmError } from "./errors.js";
import { syncDir, writeJsonAtomic } from "../../util/atomic.js";

/** The highest thin device id: dm-thin ids are 24-bit. */
export const MAX_DEVICE_ID = 0xffffff;

/** One device as persisted. `hash` is the layer id ("" for the base device). */
export interface DeviceInfo {
  hash: string;
  device_id: number;
  size: number;
  transaction_id: number;
  initialized: boolean;
  deleted: boolean;
}

/** The DeviceSet's own persisted fields. */
export interface DeviceSetMeta {
  next_device_id: number;
  BaseDeviceUUID: string;
  BaseDeviceFilesystem: string;
}

/** The transaction file: the transaction a crash may have left open. */
export interface TransactionMeta {
  open_transaction_id: number;
  device_hash: string;
  device_id: number;
}

const SPECIAL = new Set(["deviceset-metadata", "transaction-metadata"]);

/**
 * File name of a device's metadata: its hash, or "base" for the base device
 * (Docker's names). A layer that is itself called "base" is stored as "+base"
 * ('+' is not allowed in layer ids).
 */
export function fileOf(hash: string): string {
  return hash === "" ? "base" : hash === "base" ? "+base" : hash;
}

/** The hash a metadata file name stands for (inverse of {@link fileOf}). */
export function hashOf(file: string): string {
  return file === "base" ? "" : file === "+base" ? "base" : file;
}

/** Reads and writes the metadata directory. Callers hold the DeviceSet lock. */
export class MetadataStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async #read<T>(name: string): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(join(this.dir, name), "utf8");
    } catch (err) {
      if (hasCode(err, "ENOENT")) return null;
      throw err;
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new DmError("ERR_DM_METADATA", `Cannot decode devmapper metadata "${join(this.dir, name)}"`, {
        cause: err,
      });
    }
  }

  /** One device, or null when it has no metadata file. */
  async device(hash: string): Promise<DeviceInfo | null> {
    const raw = await this.#read<Omit<DeviceInfo, "hash">>(fileOf(hash));
    return raw ? { ...raw, hash } : null;
  }

  /**
   * A device that exists and is not marked deleted.
   * @throws ERR_LAYER_NOT_FOUND
   */
  async live(hash: string): Promise<DeviceInfo> {
    const d = await this.device(hash);
    if (!d) throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot find device: unknown layer "${hash || "base"}"`);
    if (d.deleted)
      throw new NotFoundError("ERR_LAYER_NOT_FOUND", `Cannot use device: marked for deferred deletion "${hash}"`);
    return d;
  }

  async saveDevice(info: DeviceInfo): Promise<void> {
    const { hash, ...rest } = info;
    await writeJsonAtomic(join(this.dir, fileOf(hash)), rest);
  }

  async removeDevice(hash: string): Promise<void> {
    await rm(join(this.dir, fileOf(hash)), { force: true });
    await syncDir(this.dir);
  }

  /** Every device with a metadata file (temp files, `*.migrated` and the special files skipped). */
  async devices(): Promise<DeviceInfo[]> {
    const out: DeviceInfo[] = [];
    for (const name of await readdir(this.dir)) {
      if (name.startsWith(".") || name.endsWith(".migrated") || SPECIAL.has(name)) continue;
      const hash = hashOf(name);
      const d = await this.device(hash);
      if (d) out.push(d);
    }
    return out;
  }

  async deviceSet(): Promise<DeviceSetMeta> {
    return (
      (await this.#read<DeviceSetMeta>("deviceset-metadata")) ?? {
        next_device_id: 0,
        BaseDeviceUUID: "",
        BaseDeviceFilesystem: "",
      }
    );
  }

  async saveDeviceSet(meta: DeviceSetMeta): Promise<void> {
    await writeJsonAtomic(join(this.dir, "deviceset-metadata"), meta);
  }

  async transaction(): Promise<TransactionMeta | null> {
    return this.#read<TransactionMeta>("transaction-metadata");
  }

  async saveTransaction(tx: TransactionMeta): Promise<void> {
    await writeJsonAtomic(join(this.dir, "transaction-metadata"), tx);
  }

  async clearTransaction(): Promise<void> {
    await rm(join(this.dir, "transaction-metadata"), { force: true });
    await syncDir(this.dir);
  }
}
