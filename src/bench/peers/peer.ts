/**
 * The peer contract: a reference system run side by side with strata in the
 * same bench run, on the same corpus.
 *
 * @module
 */
import type { BenchContext } from "../context.js";
import type { PeerName } from "../options.js";

/** One peer (GNU tar, dockerd, umoci, containerd). */
export interface Peer {
  readonly name: PeerName;
  /** Why the peer cannot run on this machine (not installed, not root), or undefined. */
  missing(): Promise<string | undefined>;
  /** Starts daemons and builds the archives it needs (untimed). */
  start(ctx: BenchContext): Promise<void>;
  /** One run of the families it can do; records samples under the peer's name. */
  run(ctx: BenchContext, run: number): Promise<void>;
  /** Stops what `start` started (by pid) and removes its data. Safe after a failed start. */
  stop(): Promise<void>;
}
