/**
 * Peer: umoci. `umoci unpack` of an OCI layout holding the same tars
 * (apply), and `umoci repack` after the same N changed files in the bundle's
 * rootfs (commit: umoci's diff is a naive mtree walk, like strata's vfs).
 *
 * @module
 */
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { changedPaths, writeChanges } from "../changes.js";
import { type BenchContext, applySets } from "../context.js";
import { timed } from "../measure.js";
import { artifactName, ociLayout } from "./artifacts.js";
import { applyLayer } from "./docker.js";
import { firstExecutable, sh } from "../exec.js";
import type { Peer } from "./peer.js";

/** The umoci peer. */
export class UmociPeer implements Peer {
  readonly name = "umoci" as const;
  #umoci = "";
  #dir = "";
  #layouts = new Map<string, string>();

  async missing(): Promise<string | undefined> {
    const u = await firstExecutable("/usr/bin/umoci", "/usr/local/bin/umoci");
    if (!u) return "umoci is not installed (Debian package umoci)";
    this.#umoci = u;
    return undefined;
  }

  async start(ctx: BenchContext): Promise<void> {
    this.#dir = resolve(ctx.opts.workDir, "umoci-peer");
    await mkdir(this.#dir, { recursive: true });
    for (const { workload } of applySets(ctx.corpus)) {
      const layers = workload === "apply/image10" ? ctx.corpus.image : [applyLayer(ctx, workload)];
      this.#layouts.set(workload, await ociLayout(this.#dir, artifactName(workload), layers));
    }
  }

  async #unpack(workload: string, bundle: string): Promise<void> {
    await sh(this.#umoci, ["unpack", "--image", `${this.#layouts.get(workload)}:${artifactName(workload)}`, bundle]);
  }

  async run(ctx: BenchContext, run: number): Promise<void> {
    const bundle = join(this.#dir, "bundle");
    if (ctx.opts.families.includes("apply")) {
      for (const { workload } of applySets(ctx.corpus)) {
        await rm(bundle, { recursive: true, force: true });
        const [secs] = await timed(() => this.#unpack(workload, bundle));
        ctx.rec.add("umoci", "peer", "apply", workload, "s", secs, "umoci unpack (OCI layout, uncompressed layers)");
        await rm(bundle, { recursive: true, force: true });
      }
    }
    if (ctx.opts.families.includes("commit")) {
      for (const n of ctx.opts.changedFiles) {
        await rm(bundle, { recursive: true, force: true });
        await this.#unpack("apply/image10", bundle);
        await writeChanges(join(bundle, "rootfs"), changedPaths(n, ctx.corpus.image.length, ctx.opts.imageLayerFiles));
        const layout = this.#layouts.get("apply/image10")!;
        const [secs] = await timed(() => sh(this.#umoci, ["repack", "--image", `${layout}:c${run}-${n}`, bundle]));
        ctx.rec.add("umoci", "peer", "commit", `commit/${n}`, "s", secs, "umoci repack (mtree diff + gzip layer)");
        await rm(bundle, { recursive: true, force: true });
      }
    }
  }

  async stop(): Promise<void> {
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
  }
}
