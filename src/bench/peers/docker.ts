/**
 * Peer: a private dockerd (overlay2) started by the harness, with its own
 * data-root under the work directory and its own exec-root and socket under
 * /run, stopped by its pid at the end. Driven through the Engine API:
 * load (apply), create (latency, concurrent starts), changes + commit after
 * N changed files written into the container's UpperDir (as
 * /work/shared/peers/check-peers.sh does, no runc involved), container and
 * image removal, and the disk space of `<data-root>/overlay2`.
 *
 * @module
 */
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { changedPaths, writeChanges } from "../changes.js";
import { type BenchContext, applySets } from "../context.js";
import { diskUsage, timed } from "../measure.js";
import { artifactName, dockerArchive } from "./artifacts.js";
import { dockerCall } from "./docker-api.js";
import { Daemon, executable, unmountUnder } from "../exec.js";
import type { Peer } from "./peer.js";

const DOCKERD = "/usr/sbin/dockerd";
const NOTE_CREATE = "docker create (Engine API); dockerd mounts a container only when it starts";

/** The dockerd overlay2 peer. */
export class DockerPeer implements Peer {
  readonly name = "docker" as const;
  #daemon: Daemon | undefined;
  #data = "";
  #exec = `/run/strata-bench-docker-${process.pid}`;
  #sock = `/run/strata-bench-docker-${process.pid}.sock`;
  #archives = new Map<string, string>();

  async missing(): Promise<string | undefined> {
    if (process.getuid?.() !== 0) return "dockerd needs root";
    if (!(await executable(DOCKERD))) return `${DOCKERD} is not installed (Debian package docker.io)`;
    return undefined;
  }

  #api(method: string, path: string, body?: unknown, tar?: string): Promise<unknown> {
    return dockerCall(this.#sock, method, path, body, tar);
  }

  async start(ctx: BenchContext): Promise<void> {
    this.#data = resolve(ctx.opts.workDir, "docker-data");
    const art = resolve(ctx.opts.workDir, "peer-archives");
    await mkdir(this.#data, { recursive: true });
    await mkdir(art, { recursive: true });
    for (const { workload } of applySets(ctx.corpus)) {
      const layers = workload === "apply/image10" ? ctx.corpus.image : [applyLayer(ctx, workload)];
      this.#archives.set(workload, await dockerArchive(art, artifactName(workload), layers));
    }
    const log = join(resolve(ctx.opts.workDir), "dockerd.log");
    const args = [
      "--iptables=false",
      "--ip-masq=false",
      "--bridge=none",
      "--ip-forward=false",
      "--storage-driver=overlay2",
      "--data-root",
      this.#data,
      "--exec-root",
      this.#exec,
      "--host",
      `unix://${this.#sock}`,
      "--pidfile",
      join(this.#exec, "dockerd.pid"),
    ];
    this.#daemon = await Daemon.start("dockerd", DOCKERD, args, log);
    await this.#daemon.waitReady(async () => !!(await this.#api("GET", "/version")), 60_000, log);
    ctx.log(`peer docker: dockerd pid ${this.#daemon.child.pid}, overlay2, data-root ${this.#data}`);
  }

  async #load(workload: string): Promise<string> {
    await this.#api("POST", "/images/load?quiet=1", undefined, this.#archives.get(workload));
    return `strata-bench/${artifactName(workload)}:latest`;
  }

  async #create(image: string, name: string): Promise<string> {
    const r = (await this.#api("POST", `/containers/create?name=${name}`, { Image: image, Cmd: ["/bin/true"] })) as {
      Id: string;
    };
    return r.Id;
  }

  #rm(id: string): Promise<unknown> {
    return this.#api("DELETE", `/containers/${id}?force=1`);
  }

  #rmi(image: string): Promise<unknown> {
    return this.#api("DELETE", `/images/${encodeURIComponent(image)}?force=1`);
  }

  async run(ctx: BenchContext, run: number): Promise<void> {
    const f = ctx.opts.families;
    const add = (
      family: Parameters<typeof ctx.rec.add>[2],
      w: string,
      v: number,
      unit: "s" | "bytes" = "s",
      note?: string,
    ) => ctx.rec.add("docker", "peer", family, w, unit, v, note);
    if (f.includes("apply")) {
      for (const { workload } of applySets(ctx.corpus)) {
        const [secs, image] = await timed(() => this.#load(workload));
        add("apply", workload, secs, "s", "docker load (Engine API)");
        await this.#rmi(image);
      }
    }
    const before = await diskUsage(join(this.#data, "overlay2"));
    const image = await this.#load("apply/image10");
    try {
      if (f.includes("container")) {
        let total = 0;
        for (let i = 0; i < ctx.opts.latencyOps; i++) {
          const [secs, id] = await timed(() => this.#create(image, `lat-${run}-${i}`));
          total += secs;
          await this.#rm(id);
        }
        add("container", "container/create", total / ctx.opts.latencyOps, "s", NOTE_CREATE);
      }
      if (f.includes("start")) {
        for (const c of ctx.opts.concurrency) {
          const names = Array.from({ length: c }, (_, i) => `start-${run}-${c}-${i}`);
          const [secs, ids] = await timed(() => Promise.all(names.map((n) => this.#create(image, n))));
          add("start", `start/${c}`, secs, "s", NOTE_CREATE);
          for (const id of ids) await this.#rm(id);
        }
      }
      if (f.includes("commit")) await this.#commit(ctx, image, run);
      if (f.includes("disk")) {
        add("disk", "disk/image", (await diskUsage(join(this.#data, "overlay2"))) - before, "bytes");
        const ids: string[] = [];
        for (let i = 0; i < ctx.opts.containers; i++) ids.push(await this.#create(image, `disk-${run}-${i}`));
        const used = (await diskUsage(join(this.#data, "overlay2"))) - before;
        add("disk", `disk/image+${ctx.opts.containers}-containers`, used, "bytes", NOTE_CREATE);
        for (const id of ids) await this.#rm(id);
      }
      if (f.includes("remove")) {
        const ids: string[] = [];
        for (let i = 0; i < ctx.opts.containers; i++) ids.push(await this.#create(image, `rm-${run}-${i}`));
        const [csecs] = await timed(async () => {
          for (const id of ids) await this.#rm(id);
        });
        add("remove", `remove/${ctx.opts.containers}-containers`, csecs);
        const [isecs] = await timed(() => this.#rmi(image));
        add("remove", "remove/image", isecs);
      }
    } finally {
      await this.#rmi(image).catch(() => {});
    }
  }

  async #commit(ctx: BenchContext, image: string, run: number): Promise<void> {
    for (const n of ctx.opts.changedFiles) {
      const id = await this.#create(image, `commit-${run}-${n}`);
      try {
        const info = (await this.#api("GET", `/containers/${id}/json`)) as {
          GraphDriver: { Data: { UpperDir: string } };
        };
        await writeChanges(
          info.GraphDriver.Data.UpperDir,
          changedPaths(n, ctx.corpus.image.length, ctx.opts.imageLayerFiles),
        );
        const [dsecs, changes] = await timed(() => this.#api("GET", `/containers/${id}/changes`));
        const count = Array.isArray(changes) ? changes.length : 0;
        if (count < n) throw new Error(`docker diff listed ${count} < ${n} changes`);
        ctx.rec.add("docker", "peer", "commit", `diff/${n}`, "s", dsecs, "docker diff (Engine API)");
        const [csecs, r] = await timed(() =>
          this.#api("POST", `/commit?container=${id}&repo=strata-bench/commit&tag=${n}`),
        );
        ctx.rec.add("docker", "peer", "commit", `commit/${n}`, "s", csecs, "docker commit (Engine API)");
        await this.#rmi((r as { Id: string }).Id);
      } finally {
        await this.#rm(id);
      }
    }
  }

  async stop(): Promise<void> {
    await this.#daemon?.stop();
    this.#daemon = undefined;
    if (this.#data) await unmountUnder(this.#data);
    await unmountUnder(this.#exec);
    await rm(this.#exec, { recursive: true, force: true });
    await rm(this.#sock, { force: true });
    if (this.#data) await rm(this.#data, { recursive: true, force: true });
  }
}

/** The single corpus layer an apply workload uses. */
export function applyLayer(ctx: BenchContext, workload: string) {
  const c = ctx.corpus;
  return workload === "apply/rootfs" ? c.rootfs : workload === "apply/smallfiles" ? c.smallfiles : c.largefiles;
}
