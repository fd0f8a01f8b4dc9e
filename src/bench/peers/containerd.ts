/**
 * Peer: a private containerd (overlayfs snapshotter) started by the harness
 * with its root under the work directory and its state and socket under
 * /run, stopped by its pid. Apply = `ctr images import` of the same
 * docker-archive (content ingest + unpack into snapshots); each run removes
 * the image with `--sync` so that the next import unpacks again.
 *
 * @module
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type BenchContext, applySets } from "../context.js";
import { timed } from "../measure.js";
import { artifactName, dockerArchive } from "./artifacts.js";
import { applyLayer } from "./docker.js";
import { Daemon, executable, sh, unmountUnder } from "../exec.js";
import type { Peer } from "./peer.js";

const CONTAINERD = "/usr/bin/containerd";
const CTR = "/usr/bin/ctr";

/** The containerd peer. */
export class ContainerdPeer implements Peer {
  readonly name = "containerd" as const;
  #daemon: Daemon | undefined;
  #root = "";
  #state = `/run/strata-bench-ctd-${process.pid}`;
  #archives = new Map<string, string>();

  get #sock(): string {
    return join(this.#state, "c.sock");
  }

  async missing(): Promise<string | undefined> {
    if (process.getuid?.() !== 0) return "containerd needs root";
    if (!(await executable(CONTAINERD)) || !(await executable(CTR)))
      return "containerd/ctr are not installed (Debian package containerd)";
    return undefined;
  }

  #ctr(...args: string[]): Promise<string> {
    return sh(CTR, ["-a", this.#sock, "-n", "strata-bench", ...args]);
  }

  async start(ctx: BenchContext): Promise<void> {
    const work = resolve(ctx.opts.workDir);
    this.#root = join(work, "containerd-root");
    const art = join(work, "peer-archives");
    await mkdir(this.#root, { recursive: true });
    await mkdir(this.#state, { recursive: true });
    await mkdir(art, { recursive: true });
    for (const { workload } of applySets(ctx.corpus)) {
      const layers = workload === "apply/image10" ? ctx.corpus.image : [applyLayer(ctx, workload)];
      this.#archives.set(workload, await dockerArchive(art, artifactName(workload), layers));
    }
    const config = join(work, "containerd.toml");
    await writeFile(
      config,
      [
        "version = 2",
        `root = "${this.#root}"`,
        `state = "${join(this.#state, "state")}"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.devmapper",',
        '  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.btrfs"]',
        "[grpc]",
        `  address = "${this.#sock}"`,
        "[ttrpc]",
        `  address = "${this.#sock}.ttrpc"`,
        "[debug]",
        `  address = "${join(this.#state, "debug.sock")}"`,
        "[metrics]",
        '  address = ""',
        "",
      ].join("\n"),
    );
    const log = join(work, "containerd.log");
    this.#daemon = await Daemon.start("containerd", CONTAINERD, ["--config", config], log);
    await this.#daemon.waitReady(async () => !!(await this.#ctr("version")), 30_000, log);
    ctx.log(`peer containerd: pid ${this.#daemon.child.pid}, overlayfs snapshotter, root ${this.#root}`);
  }

  async run(ctx: BenchContext): Promise<void> {
    if (!ctx.opts.families.includes("apply")) return;
    for (const { workload } of applySets(ctx.corpus)) {
      const archive = this.#archives.get(workload)!;
      const [secs] = await timed(() => this.#ctr("images", "import", "--snapshotter", "overlayfs", archive));
      ctx.rec.add("containerd", "peer", "apply", workload, "s", secs, "ctr images import (ingest + unpack, overlayfs)");
      await this.#ctr("images", "rm", "--sync", `docker.io/strata-bench/${artifactName(workload)}:latest`);
    }
  }

  async stop(): Promise<void> {
    await this.#daemon?.stop();
    this.#daemon = undefined;
    if (this.#root) {
      await unmountUnder(this.#root);
      await rm(this.#root, { recursive: true, force: true });
    }
    await unmountUnder(this.#state);
    await rm(this.#state, { recursive: true, force: true });
  }
}
