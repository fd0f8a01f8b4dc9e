/**
 * The peer contract: a reference system run side by side with strata in the
 * same bench run, on the same corpus, each unit on its own fresh filesystem.
 *
 * The harness calls `prepare` once, then for every unit: `start` on a new
 * filesystem, drops the caches, `run` (timed inside), `stop`; then removes
 * the filesystem.
 *
 * @module
 */
import type { FreshFs } from "../../fresh-fs.js";
import type { BenchContext, TimedFamily, Unit } from "../context.js";
import type { PeerName } from "../options.js";

/** One peer (GNU tar, dockerd, umoci, containerd). */
export interface Peer {
  readonly name: PeerName;
  /** The families it takes part in. */
  readonly families: readonly TimedFamily[];
  /** Why the peer cannot run on this machine (not installed, not root), or undefined. */
  missing(): Promise<string | undefined>;
  /** Builds what it needs from the corpus (image archives, layouts) under `dir`, untimed, once. */
  prepare(ctx: BenchContext, dir: string): Promise<void>;
  /** Starts what one unit needs on `fs` (a daemon with its data there), untimed. */
  start(ctx: BenchContext, fs: FreshFs, unit: Unit): Promise<void>;
  /** Runs the unit once and records its samples under the peer's name. */
  run(ctx: BenchContext, unit: Unit, run: number): Promise<void>;
  /** Stops what `start` started (by pid). Safe after a failed start, and twice. */
  stop(): Promise<void>;
}
