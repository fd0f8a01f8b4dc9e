/**
 * The devmapper driver: the graphdriver contract over a {@link DeviceSet}.
 * A layer's device is mounted at `<home>/mnt/<id>`; its tree is `rootfs/`
 * inside the device's filesystem, beside an `id` file naming the layer.
 * get/put mount and unmount (activating and deactivating the device with
 * them) and count nothing: the layer store's Mounts does.
 *
 * `mountSpec` hands a client the activated block device instead; such a
 * device is marked by an empty file `exported/<id>` so that `close()` (of
 * this or any later process) leaves it active until `put` or `remove`.
 *
 * @module
 */
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { InvalidArgumentError } from "../../errors.js";
import type {
  Capabilities,
  CreateOpts,
  DiffDir,
  Driver,
  MountSpec,
  MountSpecOptions,
} from "../../graphdriver/driver.js";
import { assertValidLayerId } from "../../graphdriver/layer-id.js";
import { mountPoints } from "../../util/mountinfo.js";
import type { DeviceSet, DeviceSetStatus } from "./device-set.js";
import { humanSize, parseSize } from "./options.js";

/** The per-layer storage options devmapper accepts: `size` only (≥ the base device size). */
function sizeOpt(opts?: CreateOpts): number | undefined {
  const so = opts?.storageOpt ?? {};
  let size: number | undefined;
  for (const [k, v] of Object.entries(so)) {
    if (k.toLowerCase() !== "size") {
      throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", `Cannot create layer: unknown storage option "${k}"`);
    }
    size = parseSize(v, "size");
  }
  return size;
}

/** Docker's status pairs from a DeviceSet status, in Docker's order, with go-units human sizes. */
export function statusPairs(s: DeviceSetStatus): Array<[string, string]> {
  const p = s.pool;
  const dataUsed = p.usedDataBlocks * s.dataBlockSize;
  const dataTotal = p.totalDataBlocks * s.dataBlockSize;
  const metaUsed = p.usedMetadataBlocks * 4096;
  const metaTotal = p.totalMetadataBlocks * 4096;
  let dataAvail = dataTotal - dataUsed;
  let metaAvail = metaTotal - metaUsed;
  if (s.backingFree !== null && s.files.dataLoopFile) {
    dataAvail = Math.min(dataAvail, s.backingFree);
    metaAvail = Math.min(metaAvail, s.backingFree);
  }
  const minFree = Math.floor((p.totalDataBlocks * s.minFreeSpacePercent) / 100) * s.dataBlockSize;
  const out: Array<[string, string]> = [
    ["Pool Name", s.poolName],
    ["Pool Blocksize", humanSize(s.dataBlockSize)],
    ["Base Device Size", humanSize(s.baseDeviceSize)],
    ["Backing Filesystem", s.backingFilesystem],
    ["Udev Sync Supported", String(s.udevSyncSupported)],
  ];
  if (s.files.dataDevice) out.push(["Data file", s.files.dataDevice]);
  if (s.files.metadataDevice) out.push(["Metadata file", s.files.metadataDevice]);
  if (s.files.dataLoopFile) out.push(["Data loop file", s.files.dataLoopFile]);
  if (s.files.metadataLoopFile) out.push(["Metadata loop file", s.files.metadataLoopFile]);
  out.push(
    ["Data Space Used", humanSize(dataUsed)],
    ["Data Space Total", humanSize(dataTotal)],
    ["Data Space Available", humanSize(dataAvail)],
    ["Metadata Space Used", humanSize(metaUsed)],
    ["Metadata Space Total", humanSize(metaTotal)],
    ["Metadata Space Available", humanSize(metaAvail)],
    ["Thin Pool Minimum Free Space", humanSize(minFree)],
    ["Deferred Removal Enabled", String(s.deferredRemoval)],
    ["Deferred Deletion Enabled", String(s.deferredDeletion)],
    ["Deferred Deleted Device Count", String(s.deferredDeletedDevices)],
    ["Library Version", s.libraryVersion],
  );
  return out;
}

/** The devmapper graphdriver. */
export class DevmapperDriver implements Driver {
  readonly name = "devmapper";
  readonly home: string;
  readonly capabilities: Capabilities = Object.freeze({ sharedInit: true, nativeDiff: false, mountless: false });
  readonly deviceSet: DeviceSet;
  #closed = false;

  constructor(home: string, deviceSet: DeviceSet) {
    this.home = home;
    this.deviceSet = deviceSet;
  }

  get #exportDir(): string {
    return join(this.home, "exported");
  }

  /** Ids whose device was handed out by {@link mountSpec} and not yet released. */
  async #exported(): Promise<Set<string>> {
    return new Set(await readdir(this.#exportDir).catch(() => [] as string[]));
  }

  async create(id: string, parent: string, opts?: CreateOpts): Promise<void> {
    assertValidLayerId(id);
    if (parent) assertValidLayerId(parent);
    await this.deviceSet.addDevice(id, parent, sizeOpt(opts));
  }

  createReadWrite(id: string, parent: string, opts?: CreateOpts): Promise<void> {
    return this.create(id, parent, opts);
  }

  async remove(id: string): Promise<void> {
    assertValidLayerId(id);
    await this.deviceSet.deleteDevice(id);
    await rm(join(this.#exportDir, id), { force: true });
  }

  async get(id: string): Promise<string> {
    assertValidLayerId(id);
    return this.deviceSet.mount(id);
  }

  async put(id: string): Promise<void> {
    assertValidLayerId(id);
    await this.deviceSet.unmount(id);
    await rm(join(this.#exportDir, id), { force: true });
  }

  /**
   * The thin device's filesystem, as containerd's devmapper snapshotter
   * hands it out: type `ext4`/`xfs` (xfs with `nouuid`, plus dm.mountopt),
   * source the block device, activated here and marked exported (the mark
   * first, so a crash never leaves an active device that `close()` would
   * take away from a client).
   */
  async mountSpec(id: string, opts: MountSpecOptions): Promise<MountSpec[]> {
    assertValidLayerId(id);
    await mkdir(this.#exportDir, { recursive: true, mode: 0o700 });
    await writeFile(join(this.#exportDir, id), "");
    try {
      const { device, fs, options } = await this.deviceSet.activateForClient(id);
      return [{ type: fs, source: device, options: [...options, opts.readonly ? "ro" : "rw"] }];
    } catch (err) {
      await rm(join(this.#exportDir, id), { force: true });
      throw err;
    }
  }

  async exists(id: string): Promise<boolean> {
    assertValidLayerId(id);
    const d = await this.deviceSet.md.device(id);
    return d !== null && !d.deleted;
  }

  async list(): Promise<string[]> {
    return (await this.deviceSet.md.devices()).filter((d) => d.hash !== "" && !d.deleted).map((d) => d.hash);
  }

  /** Mounted devices whose loop device lost the pool (its daemon died): see DeviceSet.staleMounts. */
  async brokenMounts(): Promise<Array<{ id: string; reason: string }>> {
    return (await this.deviceSet.staleMounts()).map((m) => ({ id: m.hash, reason: m.reason }));
  }

  /** Docker's status pairs, in Docker's order, with go-units human sizes. */
  async status(): Promise<Array<[string, string]>> {
    return statusPairs(await this.deviceSet.status());
  }

  /** Docker's GetMetadata: DeviceId, DeviceSize, DeviceName. @throws ERR_LAYER_NOT_FOUND */
  async metadata(id: string): Promise<Record<string, string>> {
    assertValidLayerId(id);
    const d = await this.deviceSet.md.live(id);
    return { DeviceId: String(d.device_id), DeviceSize: String(d.size), DeviceName: this.deviceSet.nameOf(id) };
  }

  /** Thin devices leave no directories behind: the DeviceSet's own recovery handles interrupted work. */
  async leftovers(): Promise<string[]> {
    return [];
  }

  async removeLeftover(name: string): Promise<void> {
    throw new InvalidArgumentError("ERR_INVALID_ID", `Cannot remove leftover: not a leftover "${name}"`);
  }

  /** Layers are full trees: no record of a layer's own changes (the Differ compares trees). */
  async diffDir(): Promise<DiffDir | null> {
    return null;
  }

  /** Tars are applied into the layer's tree, through the store's mounts. */
  async applyDir(): Promise<DiffDir | null> {
    return null;
  }

  /**
   * Releases what this process holds and leaves mounts as they are (what
   * ends a CLI command): deactivates every device that is not mounted, stops
   * the deferred-deletion worker and closes the pool (its daemon, for the
   * userspace target) when no device of it stays active. Devices handed out
   * by {@link mountSpec} stay active. Mounted devices stay:
   * the layer store's persisted holds (`strata mount`) outlive the process.
   * Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.deviceSet.close(await this.#exported());
  }

  /**
   * Docker's Shutdown: unmounts and deactivates every device mounted under
   * `<home>/mnt` (whoever mounted it), then {@link close}, which deactivates
   * the base and closes the pool. Safe to call twice.
   */
  async cleanup(): Promise<void> {
    const table = await mountPoints();
    for (const id of await readdir(this.deviceSet.paths.mntDir).catch(() => [] as string[])) {
      if (table.has(this.deviceSet.mountPoint(id))) await this.deviceSet.unmount(id);
    }
    await this.close();
  }
}
