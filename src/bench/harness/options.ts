/**
 * Bench options: the `--quick` and full presets, and validation of what the
 * user asked for (one clear error, before anything runs).
 *
 * @module
 */
import { InvalidArgumentError } from "../../errors.js";
import { FS_TYPES, type FsType } from "../fresh-fs.js";

/** Workload families; each gets one chart and can be chosen with `--workloads`. */
export const FAMILIES = ["apply", "container", "start", "commit", "chain", "remove", "disk", "memory"] as const;
/** One of {@link FAMILIES}. */
export type Family = (typeof FAMILIES)[number];

/** Peers the harness knows, in the order they run. */
export const PEERS = ["tar", "docker", "umoci", "containerd"] as const;
/** One of {@link PEERS}. */
export type PeerName = (typeof PEERS)[number];

/** Sizes of everything a run does; the presets fill these. */
export interface BenchSizes {
  runs: number;
  /** Files in the small-file layer. */
  smallFiles: number;
  /** Count and size of the large files. */
  largeFiles: number;
  largeFileBytes: number;
  /** Files per layer of the ten-layer image. */
  imageLayerFiles: number;
  /** Files of the rootfs-like tree (when it stands in for Debian). */
  rootfsLikeFiles: number;
  /** Latency ops per run (create/mount/unmount), averaged into one sample. */
  latencyOps: number;
  /** Concurrent container starts. */
  concurrency: number[];
  /** Changed files before diff and commit. */
  changedFiles: number[];
  /** Chain depths. */
  chainDepths: number[];
  /** Containers for the disk-space and remove workloads. */
  containers: number;
}

/** What `strata bench` runs. */
export interface BenchOptions extends BenchSizes {
  preset: "quick" | "full";
  /** Driver names; empty = every built-in driver that is supported here. */
  drivers: string[];
  families: Family[];
  /** Peers to run (empty = none). */
  peers: PeerName[];
  /** Where the generated corpus is cached (default `<out>/corpus`). */
  corpusDir: string;
  outDir: string;
  /** Where the peers' image archives are built, untimed (removed at the end). */
  workDir: string;
  /** The filesystem made fresh for every timed unit (stores and peer data live there). */
  fsType: FsType;
  seed: number;
  /** Use the generated rootfs-like tree instead of debootstrap. */
  quickRootfs: boolean;
}

/** The quick preset: under two minutes on a 2-core machine, peers included. */
export const QUICK: BenchSizes = Object.freeze({
  runs: 2,
  smallFiles: 600,
  largeFiles: 2,
  largeFileBytes: 8 << 20,
  imageLayerFiles: 20,
  rootfsLikeFiles: 400,
  latencyOps: 2,
  concurrency: [1, 4],
  changedFiles: [10, 100],
  chainDepths: [1, 4, 16],
  containers: 3,
});

/**
 * The full preset for release figures. Chains stop at 125 layers, strata's and
 * Docker's depth limit (MAX_LAYER_DEPTH), where the issue asks for 128.
 */
export const FULL: BenchSizes = Object.freeze({
  runs: 3,
  smallFiles: 60_000,
  largeFiles: 4,
  largeFileBytes: 256 << 20,
  imageLayerFiles: 1_000,
  rootfsLikeFiles: 12_000,
  latencyOps: 10,
  concurrency: [1, 50],
  changedFiles: [10, 1_000, 10_000],
  chainDepths: [1, 32, 125],
  containers: 20,
});

function list(v: string | undefined): string[] {
  return (v ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Raw command-line values, as commander hands them over. */
export interface RawBenchOptions {
  drivers?: string;
  workloads?: string;
  runs?: string;
  corpus?: string;
  peers?: string | boolean;
  out?: string;
  work?: string;
  quick?: boolean;
  seed?: string;
  fs?: string;
}

/**
 * Turns command-line values into options, filling in the preset.
 * @throws ERR_INVALID_OPTION for an unknown family or peer, or a bad number
 */
export function resolveOptions(raw: RawBenchOptions, knownDrivers: string[]): BenchOptions {
  const quick = raw.quick ?? false;
  const sizes = { ...(quick ? QUICK : FULL) };
  if (raw.runs !== undefined) {
    const n = Number(raw.runs);
    if (!Number.isInteger(n) || n < 1 || n > 100)
      throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot run bench: --runs must be 1..100 "${raw.runs}"`);
    sizes.runs = n;
  }
  const drivers = list(raw.drivers);
  for (const d of drivers)
    if (!knownDrivers.includes(d))
      throw new InvalidArgumentError(
        "ERR_INVALID_OPTION",
        `Cannot run bench: unknown driver "${d}" (known: ${knownDrivers.join(", ")})`,
      );
  const families = list(raw.workloads) as Family[];
  for (const f of families)
    if (!FAMILIES.includes(f))
      throw new InvalidArgumentError(
        "ERR_INVALID_OPTION",
        `Cannot run bench: unknown workload family "${f}" (known: ${FAMILIES.join(", ")})`,
      );
  const peers = raw.peers === true ? [...PEERS] : (list(typeof raw.peers === "string" ? raw.peers : "") as PeerName[]);
  for (const p of peers)
    if (!PEERS.includes(p))
      throw new InvalidArgumentError(
        "ERR_INVALID_OPTION",
        `Cannot run bench: unknown peer "${p}" (known: ${PEERS.join(", ")})`,
      );
  const seed = raw.seed === undefined ? 20_261_122 : Number(raw.seed);
  if (!Number.isInteger(seed))
    throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot run bench: --seed must be an integer "${raw.seed}"`);
  const fsType = (raw.fs ?? "ext4") as FsType;
  if (!FS_TYPES.includes(fsType))
    throw new InvalidArgumentError(
      "ERR_INVALID_OPTION",
      `Cannot run bench: --fs must be one of ${FS_TYPES.join(", ")} "${raw.fs}"`,
    );
  const outDir = raw.out ?? "bench-out";
  return {
    ...sizes,
    preset: quick ? "quick" : "full",
    drivers,
    families: families.length ? families : [...FAMILIES],
    peers,
    corpusDir: raw.corpus ?? `${outDir}/corpus`,
    outDir,
    workDir: raw.work ?? `${outDir}/work`,
    fsType,
    seed,
    quickRootfs: quick,
  };
}
