/**
 * Peer: GNU tar, the floor for applying a layer: `tar -xf` of the same tars
 * into a plain directory on the unit's fresh filesystem (no layer store, no
 * whiteout handling, no hashing).
 *
 * @module
 */
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { sh } from "../../exec.js";
import type { FreshFs } from "../../fresh-fs.js";
import { wallSeconds } from "../../timer.js";
import type { BenchContext, Unit } from "../context.js";
import type { Peer } from "./peer.js";

/** The GNU tar peer. */
export class TarPeer implements Peer {
  readonly name = "tar" as const;
  readonly families = ["apply"] as const;
  #dest = "";

  async missing(): Promise<string | undefined> {
    try {
      const v = await sh("tar", ["--version"]);
      return v.includes("GNU tar") ? undefined : "tar on PATH is not GNU tar";
    } catch {
      return "tar is not installed";
    }
  }

  async prepare(): Promise<void> {}

  async start(_ctx: BenchContext, fs: FreshFs): Promise<void> {
    this.#dest = join(fs.path, "x");
    await mkdir(this.#dest);
  }

  async run(ctx: BenchContext, unit: Unit): Promise<void> {
    const { workload, tars } = unit.apply!;
    const [secs] = await wallSeconds(async () => {
      for (const t of tars) await sh("tar", ["--numeric-owner", "-xf", resolve(t.path), "-C", this.#dest]);
    });
    ctx.rec.add("tar", "peer", "apply", workload, "s", secs, "tar -xf into a plain directory (the floor)");
  }

  async stop(): Promise<void> {}
}
