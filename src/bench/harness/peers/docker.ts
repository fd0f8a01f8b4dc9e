/**
 * Peer: a private dockerd (overlay2) started for every unit with its
 * data-root on the unit's fresh filesystem (`../../dockerd.ts`), driven
 * through the Engine API so the figures are dockerd's work: load (apply),
 * create (latency, concurrent starts), changes + commit after N changed
 * files written into the container's UpperDir (no runc involved), container
 * and image removal, and the disk space of `<data-root>/overlay2`. The
 * ten-layer image is loaded untimed before the families that need it.
 *
 * @module
 */
import { join } from "node:path";
import { PrivateDockerd, dockerdMissing } from "../../dockerd.js";
import type { FreshFs } from "../../fresh-fs.js";
import { wallSeconds } from "../../timer.js";
import { changedPaths, writeChanges } from "../changes.js";
import { type BenchContext, type TimedFamily, type Unit, applySets } from "../context.js";
import { diskUsage } from "../measure.js";
import { artifactName, dockerArchive } from "../../artifacts.js";
import type { Peer } from "./peer.js";

const NOTE_CREATE = "docker create (Engine API); dockerd mounts a container only when it starts";

/** The dockerd overlay2 peer. */
export class DockerPeer implements Peer {
  readonly name = "docker" as const;
  readonly families: readonly TimedFamily[] = ["apply", "container", "start", "commit", "remove", "disk"];
  #dockerd: PrivateDockerd | undefined;
  #archives = new Map<string, string>();
  #image = "";
  /** Bytes of overlay2/ before the image was loaded. */
  #before = 0;

  missing(): Promise<string | undefined> {
    return dockerdMissing();
  }

  async prepare(ctx: BenchContext, dir: string): Promise<void> {
    for (const { workload, tars } of applySets(ctx.corpus))
      this.#archives.set(workload, await dockerArchive(dir, artifactName(workload), tars));
  }

  async start(_ctx: BenchContext, fs: FreshFs, unit: Unit): Promise<void> {
    this.#dockerd = await PrivateDockerd.start(join(fs.path, "docker"), join(fs.path, "dockerd.log"));
    if (unit.family === "apply") return;
    this.#before = await diskUsage(join(this.#dockerd.dataRoot, "overlay2"));
    this.#image = await this.#load("apply/image10");
  }

  #api(method: string, path: string, body?: unknown, tar?: string): Promise<unknown> {
    return this.#dockerd!.api(method, path, body, tar);
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

  async run(ctx: BenchContext, unit: Unit, run: number): Promise<void> {
    const add = (family: TimedFamily, w: string, v: number, unit: "s" | "bytes" = "s", note?: string) =>
      ctx.rec.add("docker", "peer", family, w, unit, v, note);
    const image = this.#image;
    const overlay2 = join(this.#dockerd!.dataRoot, "overlay2");
    switch (unit.family) {
      case "apply": {
        const [secs] = await wallSeconds(() => this.#load(unit.apply!.workload));
        add("apply", unit.apply!.workload, secs, "s", "docker load (Engine API)");
        return;
      }
      case "container": {
        let total = 0;
        for (let i = 0; i < ctx.opts.latencyOps; i++) {
          const [secs, id] = await wallSeconds(() => this.#create(image, `lat-${run}-${i}`));
          total += secs;
          await this.#rm(id);
        }
        add("container", "container/create", total / ctx.opts.latencyOps, "s", NOTE_CREATE);
        return;
      }
      case "start":
        for (const c of ctx.opts.concurrency) {
          const names = Array.from({ length: c }, (_, i) => `start-${run}-${c}-${i}`);
          const [secs, ids] = await wallSeconds(() => Promise.all(names.map((n) => this.#create(image, n))));
          add("start", `start/${c}`, secs, "s", NOTE_CREATE);
          for (const id of ids) await this.#rm(id);
        }
        return;
      case "commit":
        return this.#commit(ctx, image, run);
      case "disk": {
        add("disk", "disk/image", (await diskUsage(overlay2)) - this.#before, "bytes");
        for (let i = 0; i < ctx.opts.containers; i++) await this.#create(image, `disk-${run}-${i}`);
        const used = (await diskUsage(overlay2)) - this.#before;
        add("disk", `disk/image+${ctx.opts.containers}-containers`, used, "bytes", NOTE_CREATE);
        return;
      }
      case "remove": {
        const ids: string[] = [];
        for (let i = 0; i < ctx.opts.containers; i++) ids.push(await this.#create(image, `rm-${run}-${i}`));
        const [csecs] = await wallSeconds(async () => {
          for (const id of ids) await this.#rm(id);
        });
        add("remove", `remove/${ctx.opts.containers}-containers`, csecs);
        const [isecs] = await wallSeconds(() => this.#rmi(image));
        add("remove", "remove/image", isecs);
        return;
      }
      default:
        throw new RangeError(`docker peer: no ${unit.family} workload`);
    }
  }

  async #commit(ctx: BenchContext, image: string, run: number): Promise<void> {
    for (const n of ctx.opts.changedFiles) {
      const id = await this.#create(image, `commit-${run}-${n}`);
      const info = (await this.#api("GET", `/containers/${id}/json`)) as {
        GraphDriver: { Data: { UpperDir: string } };
      };
      await writeChanges(
        info.GraphDriver.Data.UpperDir,
        changedPaths(n, ctx.corpus.image.length, ctx.opts.imageLayerFiles),
      );
      const [dsecs, changes] = await wallSeconds(() => this.#api("GET", `/containers/${id}/changes`));
      const count = Array.isArray(changes) ? changes.length : 0;
      if (count < n) throw new Error(`docker diff listed ${count} < ${n} changes`);
      ctx.rec.add("docker", "peer", "commit", `diff/${n}`, "s", dsecs, "docker diff (Engine API)");
      const [csecs] = await wallSeconds(() =>
        this.#api("POST", `/commit?container=${id}&repo=strata-bench/commit&tag=${n}`),
      );
      ctx.rec.add("docker", "peer", "commit", `commit/${n}`, "s", csecs, "docker commit (Engine API)");
    }
  }

  async stop(): Promise<void> {
    const d = this.#dockerd;
    this.#dockerd = undefined;
    this.#image = "";
    await d?.stop();
  }
}
