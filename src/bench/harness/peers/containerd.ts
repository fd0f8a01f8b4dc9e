/**
 * Peer: a private containerd (overlayfs snapshotter) started for every unit
 * with its root on the unit's fresh filesystem and its state and socket
 * under /run (unique names), stopped by its pid. Apply = `ctr images import`
 * of the same docker-archive (content ingest + unpack into snapshots).
 *
 * @module
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Daemon, executable, sh, unmountUnder } from "../../exec.js";
import type { FreshFs } from "../../fresh-fs.js";
import { wallSeconds } from "../../timer.js";
import { type BenchContext, type Unit, applySets } from "../context.js";
import { artifactName, dockerArchive } from "../../artifacts.js";
import type { Peer } from "./peer.js";

const CONTAINERD = "/usr/bin/containerd";
const CTR = "/usr/bin/ctr";

let started = 0;

/** The containerd peer. */
export class ContainerdPeer implements Peer {
  readonly name = "containerd" as const;
  readonly families = ["apply"] as const;
  #daemon: Daemon | undefined;
  #root = "";
  #state = "";
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

  async prepare(ctx: BenchContext, dir: string): Promise<void> {
    for (const { workload, tars } of applySets(ctx.corpus))
      this.#archives.set(workload, await dockerArchive(dir, artifactName(workload), tars));
  }

  async start(_ctx: BenchContext, fs: FreshFs): Promise<void> {
    this.#root = join(fs.path, "containerd-root");
    this.#state = `/run/strata-bench-ctd-${process.pid}-${++started}`;
    await mkdir(this.#root, { recursive: true });
    await mkdir(this.#state, { recursive: true });
    const config = join(fs.path, "containerd.toml");
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
    const log = join(fs.path, "containerd.log");
    this.#daemon = await Daemon.start("containerd", CONTAINERD, ["--config", config], log);
    await this.#daemon.waitReady(async () => !!(await this.#ctr("version")), 30_000, log);
  }

  async run(ctx: BenchContext, unit: Unit): Promise<void> {
    const { workload } = unit.apply!;
    const archive = this.#archives.get(workload)!;
    const [secs] = await wallSeconds(() => this.#ctr("images", "import", "--snapshotter", "overlayfs", archive));
    ctx.rec.add("containerd", "peer", "apply", workload, "s", secs, "ctr images import (ingest + unpack, overlayfs)");
  }

  async stop(): Promise<void> {
    await this.#daemon?.stop();
    this.#daemon = undefined;
    if (this.#root) await unmountUnder(this.#root);
    if (this.#state) {
      await unmountUnder(this.#state);
      await rm(this.#state, { recursive: true, force: true });
    }
    this.#root = "";
    this.#state = "";
  }
}
