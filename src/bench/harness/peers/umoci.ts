/**
 * Peer: umoci. `umoci unpack` of an OCI layout holding the same tars
 * (apply), and `umoci repack` after the same N changed files in the bundle's
 * rootfs (commit: umoci's diff is a naive mtree walk, like strata's vfs).
 * The bundle is unpacked on the unit's fresh filesystem; for commit the
 * layout is copied there first (untimed), since repack writes into it.
 *
 * @module
 */
import { join } from "node:path";
import { firstExecutable, sh } from "../../exec.js";
import type { FreshFs } from "../../fresh-fs.js";
import { wallSeconds } from "../../timer.js";
import { changedPaths, writeChanges } from "../changes.js";
import { type BenchContext, type Unit, applySets } from "../context.js";
import { artifactName, ociLayout } from "../../artifacts.js";
import type { Peer } from "./peer.js";

/** The umoci peer. */
export class UmociPeer implements Peer {
  readonly name = "umoci" as const;
  readonly families = ["apply", "commit"] as const;
  #umoci = "";
  #layouts = new Map<string, string>();
  #fs = "";
  #commitLayout = "";

  async missing(): Promise<string | undefined> {
    const u = await firstExecutable("/usr/bin/umoci", "/usr/local/bin/umoci");
    if (!u) return "umoci is not installed (Debian package umoci)";
    this.#umoci = u;
    return undefined;
  }

  async prepare(ctx: BenchContext, dir: string): Promise<void> {
    for (const { workload, tars } of applySets(ctx.corpus))
      this.#layouts.set(workload, await ociLayout(dir, artifactName(workload), tars));
  }

  async start(_ctx: BenchContext, fs: FreshFs, unit: Unit): Promise<void> {
    this.#fs = fs.path;
    if (unit.family !== "commit") return;
    this.#commitLayout = join(fs.path, "image10.oci");
    await sh("cp", ["-a", this.#layouts.get("apply/image10")!, this.#commitLayout]);
  }

  #unpack(layout: string, workload: string, bundle: string): Promise<string> {
    return sh(this.#umoci, ["unpack", "--image", `${layout}:${artifactName(workload)}`, bundle]);
  }

  async run(ctx: BenchContext, unit: Unit, run: number): Promise<void> {
    if (unit.family === "apply") {
      const { workload } = unit.apply!;
      const bundle = join(this.#fs, "bundle");
      const [secs] = await wallSeconds(() => this.#unpack(this.#layouts.get(workload)!, workload, bundle));
      ctx.rec.add("umoci", "peer", "apply", workload, "s", secs, "umoci unpack (OCI layout, uncompressed layers)");
      return;
    }
    for (const n of ctx.opts.changedFiles) {
      const bundle = join(this.#fs, `bundle-${n}`);
      await this.#unpack(this.#commitLayout, "apply/image10", bundle);
      await writeChanges(join(bundle, "rootfs"), changedPaths(n, ctx.corpus.image.length, ctx.opts.imageLayerFiles));
      const [secs] = await wallSeconds(() =>
        sh(this.#umoci, ["repack", "--image", `${this.#commitLayout}:c${run}-${n}`, bundle]),
      );
      ctx.rec.add("umoci", "peer", "commit", `commit/${n}`, "s", secs, "umoci repack (mtree diff + gzip layer)");
    }
  }

  async stop(): Promise<void> {
    this.#fs = "";
    this.#commitLayout = "";
  }
}
