/**
 * `dm.*` driver options, parsed once into a frozen {@link DmConfig}, and the
 * size helpers Docker uses (go-units `RAMInBytes` to read, `HumanSize` to
 * print). Unknown keys are errors; options that need LVM are refused with a
 * reason naming the option.
 *
 * @module
 */
import { InvalidArgumentError, NotSupportedError } from "../../errors.js";
import { humanSize, parseSize } from "../../util/size.js";

/** The size parser and formatter every strata module shares (go-units RAMInBytes and HumanSize). */
export { humanSize, parseSize };

/** Which thin-pool implementation serves the pool. */
export type TargetKind = "kernel" | "userspace";

/** The devmapper configuration after parsing and validation. */
export interface DmConfig {
  /** `dm.basesize`: virtual size of the base device; undefined = 10 GiB, or the existing base's size. */
  readonly baseSize: number | undefined;
  /** `dm.loopdatasize`. @default 100 GiB */
  readonly loopDataSize: number;
  /** `dm.loopmetadatasize`. @default 2 GiB */
  readonly loopMetadataSize: number;
  /** `dm.fs`: "" = xfs when usable, else ext4. */
  readonly fs: "" | "xfs" | "ext4";
  /** `dm.mkfsarg`: extra mkfs arguments (space separated in one value). */
  readonly mkfsArgs: readonly string[];
  /** `dm.mountopt`: extra mount options joined with ",". */
  readonly mountOpts: string;
  readonly dataDev: string;
  readonly metadataDev: string;
  /** `dm.thinpooldev`: an existing pool (kernel: dm name; userspace: pool directory). */
  readonly thinPoolDev: string;
  /** `dm.blkdiscard`: discard a device's blocks before deleting it. */
  readonly blkDiscard: boolean;
  /** `dm.blocksize` in bytes. @default 64 KiB */
  readonly blockSize: number;
  readonly overrideUdevSyncCheck: boolean;
  /** undefined = auto (on when the target supports it). */
  readonly deferredRemoval: boolean | undefined;
  readonly deferredDeletion: boolean | undefined;
  /** `dm.min_free_space` in percent. @default 10 */
  readonly minFreeSpacePercent: number;
  readonly xfsNospaceMaxRetries: string | undefined;
  /** `dm.libdm_log_level` 2 (fatal) … 7 (debug). @default 2 */
  readonly logLevel: number;
  /** `dm.target`: undefined = automatic choice. */
  readonly target: TargetKind | undefined;
}

const GiB = 1024 ** 3;
const LVM_OPTIONS = [
  "dm.directlvm_device",
  "dm.directlvm_device_force",
  "dm.thinp_percent",
  "dm.thinp_metapercent",
  "dm.thinp_autoextend_percent",
  "dm.thinp_autoextend_threshold",
];
const KNOWN = new Set([
  "dm.basesize",
  "dm.loopdatasize",
  "dm.loopmetadatasize",
  "dm.fs",
  "dm.mkfsarg",
  "dm.mountopt",
  "dm.datadev",
  "dm.metadatadev",
  "dm.thinpooldev",
  "dm.blkdiscard",
  "dm.blocksize",
  "dm.override_udev_sync_check",
  "dm.use_deferred_removal",
  "dm.use_deferred_deletion",
  "dm.min_free_space",
  "dm.xfs_nospace_max_retries",
  "dm.libdm_log_level",
  "dm.target",
  ...LVM_OPTIONS,
]);

function bad(key: string, value: string, why: string): InvalidArgumentError {
  return new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot start devmapper: ${why} "${key}=${value}"`);
}

function parseBool(key: string, value: string): boolean {
  const v = value.toLowerCase();
  if (["1", "t", "true"].includes(v)) return true;
  if (["0", "f", "false"].includes(v)) return false;
  throw bad(key, value, "not a boolean");
}

/**
 * Validates `options` (keys matched case-insensitively) into a frozen config.
 * @throws ERR_INVALID_OPTION for unknown keys and bad values; ERR_NOT_SUPPORTED
 *   (a NotSupportedError) for the direct-lvm options, which need LVM and dm
 */
export function parseOptions(options: Record<string, string>): DmConfig {
  const c = {
    baseSize: undefined as number | undefined,
    loopDataSize: 100 * GiB,
    loopMetadataSize: 2 * GiB,
    fs: "" as DmConfig["fs"],
    mkfsArgs: [] as string[],
    mountOpts: "",
    dataDev: "",
    metadataDev: "",
    thinPoolDev: "",
    blkDiscard: true,
    blockSize: 64 * 1024,
    overrideUdevSyncCheck: false,
    deferredRemoval: undefined as boolean | undefined,
    deferredDeletion: undefined as boolean | undefined,
    minFreeSpacePercent: 10,
    xfsNospaceMaxRetries: undefined as string | undefined,
    logLevel: 2,
    target: undefined as TargetKind | undefined,
  };
  let blkDiscardSet = false;
  for (const [rawKey, value] of Object.entries(options)) {
    const key = rawKey.toLowerCase();
    if (!key.startsWith("dm.")) continue; // other drivers' options (e.g. "overlay.*") are theirs
    if (!KNOWN.has(key)) throw bad(key, value, "unknown option");
    if (LVM_OPTIONS.includes(key)) {
      throw new NotSupportedError(
        "ERR_NOT_SUPPORTED",
        `Cannot start devmapper: "${key}" needs LVM (pvcreate, vgcreate, lvconvert) and the kernel's dm-thin target; set up the thin pool yourself and pass dm.thinpooldev`,
      );
    }
    switch (key) {
      case "dm.basesize":
        c.baseSize = parseSize(value, key);
        if (c.baseSize < 1 << 20) throw bad(key, value, "base size below 1 MiB");
        break;
      case "dm.loopdatasize":
        c.loopDataSize = parseSize(value, key);
        break;
      case "dm.loopmetadatasize":
        c.loopMetadataSize = parseSize(value, key);
        break;
      case "dm.fs":
        if (value !== "ext4" && value !== "xfs") throw bad(key, value, "unsupported filesystem (ext4 or xfs)");
        c.fs = value;
        break;
      case "dm.mkfsarg":
        c.mkfsArgs.push(...value.split(/\s+/).filter(Boolean));
        break;
      case "dm.mountopt":
        c.mountOpts = c.mountOpts ? `${c.mountOpts},${value}` : value;
        break;
      case "dm.datadev":
        c.dataDev = value;
        break;
      case "dm.metadatadev":
        c.metadataDev = value;
        break;
      case "dm.thinpooldev":
        c.thinPoolDev = value.replace(/^\/dev\/mapper\//, "");
        break;
      case "dm.blkdiscard":
        c.blkDiscard = parseBool(key, value);
        blkDiscardSet = true;
        break;
      case "dm.blocksize": {
        const n = parseSize(value, key);
        // dm-thin: 64 KiB … 1 GiB, a multiple of 64 KiB.
        if (n < 65536 || n > GiB || n % 65536)
          throw bad(key, value, "block size must be a multiple of 64 KiB up to 1 GiB");
        c.blockSize = n;
        break;
      }
      case "dm.override_udev_sync_check":
        c.overrideUdevSyncCheck = parseBool(key, value);
        break;
      case "dm.use_deferred_removal":
        c.deferredRemoval = parseBool(key, value);
        break;
      case "dm.use_deferred_deletion":
        c.deferredDeletion = parseBool(key, value);
        break;
      case "dm.min_free_space": {
        const m = /^(\d+)%$/.exec(value);
        if (!m) throw bad(key, value, "must be a percentage ending in %");
        const n = Number(m[1]);
        if (n >= 100) throw bad(key, value, "must be below 100%");
        c.minFreeSpacePercent = n;
        break;
      }
      case "dm.xfs_nospace_max_retries":
        if (!/^\d+$/.test(value)) throw bad(key, value, "not a whole number");
        c.xfsNospaceMaxRetries = value;
        break;
      case "dm.libdm_log_level": {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 2 || n > 7) throw bad(key, value, "log level must be 2 (fatal) to 7 (debug)");
        c.logLevel = n;
        break;
      }
      case "dm.target":
        if (value !== "kernel" && value !== "userspace") throw bad(key, value, "target must be kernel or userspace");
        c.target = value;
        break;
    }
  }
  if ((c.dataDev === "") !== (c.metadataDev === "")) {
    throw bad("dm.datadev", c.dataDev || c.metadataDev, "dm.datadev and dm.metadatadev must be given together");
  }
  if (c.thinPoolDev && c.dataDev) throw bad("dm.thinpooldev", c.thinPoolDev, "cannot be combined with dm.datadev");
  // Docker: discarding on a real block device or a user's pool is slow, so it is off unless asked for.
  if (!blkDiscardSet && (c.dataDev || c.thinPoolDev)) c.blkDiscard = false;
  if (c.deferredDeletion === true && c.deferredRemoval === false) {
    throw bad("dm.use_deferred_deletion", "true", "deferred deletion requires deferred removal");
  }
  return Object.freeze({ ...c, mkfsArgs: Object.freeze(c.mkfsArgs) });
}
