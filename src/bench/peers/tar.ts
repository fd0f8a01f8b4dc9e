/**
 * Peer: GNU tar, the floor for applying a layer: `tar -xf` of the same tars
 * into a plain directory (no layer store, no whiteout handling, no hashing).
 *
 * @module
 */
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type BenchContext, applySets } from "../context.js";
import { timed } from "../measure.js";
import { sh } from "../exec.js";
import type { Peer } from "./peer.js";

/** The GNU tar peer. */
export class TarPeer implements Peer {
  readonly name = "tar" as const;
  #dir = "";

  async missing(): Promise<string | undefined> {
    try {
      const v = await sh("tar", ["--version"]);
      return v.includes("GNU tar") ? undefined : "tar on PATH is not GNU tar";
    } catch {
      return "tar is not installed";
    }
  }

  async start(ctx: BenchContext): Promise<void> {
    this.#dir = resolve(ctx.opts.workDir, "tar-peer");
  }

  async run(ctx: BenchContext): Promise<void> {
    if (!ctx.opts.families.includes("apply")) return;
    for (const { workload, tars } of applySets(ctx.corpus)) {
      const dest = join(this.#dir, "x");
      await rm(dest, { recursive: true, force: true });
      await mkdir(dest, { recursive: true });
      const [secs] = await timed(async () => {
        for (const t of tars) await sh("tar", ["--numeric-owner", "-xf", resolve(t), "-C", dest]);
      });
      ctx.rec.add("tar", "peer", "apply", workload, "s", secs, "tar -xf into a plain directory (the floor)");
      await rm(dest, { recursive: true, force: true });
    }
  }

  async stop(): Promise<void> {
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
  }
}
