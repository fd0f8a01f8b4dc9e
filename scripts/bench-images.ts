/**
 * `npm run bench:images`: `strata pull` / `strata load` against `docker pull`
 * / `docker load`, side by side in one run, on the same images:
 *   - "debian": the peer lab's Debian minbase rootfs (one layer);
 *   - "5-layer": that base plus the peer lab's c1 layer and three generated layers.
 * Both sides run their command-line tool as a user would: strata's CLI into a
 * fresh store (driver: $DRIVER, default automatic selection), the docker CLI
 * against the peer dockerd (overlay2). Each image goes through a private
 * docker-registry on a free port (pushed gzip-compressed by skopeo) for
 * pulls, and through a docker-archive for loads. Prints medians of RUNS
 * (default 3) and the strata/docker ratio. The "no-apply" column runs
 * strata's pipeline in this process (fetch, verify, decompress, hash, order)
 * into a sink that only hashes the tars: the cost of src/image itself,
 * without the diff engine and store.
 * Needs /tmp/peer-artifacts and the peer dockerd (/work/shared/peers/make-base-image.sh, start-dockerd.sh).
 *
 * Nothing is deleted until the end. This VM's root is ext4 without a
 * journal, and there the inode allocator skips every inode freed in the last
 * 60 s, or 360 s while its inode-table block is dirty (`recently_deleted`
 * in fs/ext4/ialloc.c); right after a large delete, creating files costs
 * many times more (perf: GNU tar's extract of the Debian layer 0.3 s on a
 * quiet filesystem, 1.4-3.7 s after deleting an earlier copy). So every
 * timed operation gets an image no store has seen — each layer of each
 * (image, run, operation) carries one unique file, so neither side can
 * reuse a layer — and the stores and Docker's images are removed only after
 * the last timing. Run it when nothing has deleted many files on the same
 * filesystem in the last few minutes. The sides take turns going first.
 * Before every timed operation the bench syncs and waits SETTLE seconds
 * (default 3), so neither pays for the other's writeback.
 *
 * On a saturated machine wall time mostly measures waiting for a CPU, so
 * the bench also prints the CPU time (user + system, all threads) each side
 * spent: strata's CLI process's; Docker's is dockerd's own and its reaped
 * children's (docker-untar, unpigz) plus the docker CLI's; for pulls both
 * include the registry's. dockerd is shared with other users of the peer
 * lab, so its figure can include their work.
 */
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ImageStore } from "../src/image/image-store.js";
import type { LayerSink } from "../src/image/layer-sink.js";
import { loadImages } from "../src/image/load.js";
import { pullImage } from "../src/image/registry/pull.js";
import { chainID } from "../src/layer/ids.js";
import { freePort, genLayer, layout, uniqueLayer } from "./bench-fixtures.js";

const run = promisify(execFile);
const ART = process.env.PEER_ARTIFACTS ?? "/tmp/peer-artifacts";
const RUNS = Number(process.env.RUNS ?? 3);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 3);
const DOCKER = ["-H", "unix:///run/peer-docker.sock"];
const BENCH_DIR = process.env.BENCH_DIR ?? "/var/lib";
const SETTLE = Number(process.env.SETTLE ?? 3);
const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const docker = (...a: string[]) => run("/usr/bin/docker", [...DOCKER, ...a], { maxBuffer: 1 << 26 });

const CLK_TCK = 100;

/** CPU seconds of a process from /proc: its own, or (children) its reaped children's. 0 when unreadable. */
function cpuOf(pid: number | "self", what: "own" | "children" | "both"): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const own = Number(f[11]) + Number(f[12]);
    const kids = Number(f[13]) + Number(f[14]);
    return (what === "own" ? own : what === "children" ? kids : own + kids) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** The peer dockerd's pid (start-dockerd.sh's exec root), or 0. */
function dockerdPid(): number {
  try {
    return Number(readFileSync("/run/peer-docker/dockerd.pid", "utf8").trim()) || 0;
  } catch {
    return 0;
  }
}

/** Lets the filesystem forget recent deletes (see the header), the same for both sides. */
async function settle(): Promise<void> {
  await run("sync");
  await new Promise((r) => setTimeout(r, SETTLE * 1000));
}

/** Wall seconds of `fn`, and the CPU seconds `cpu()` grew by meanwhile. */
async function timed(fn: () => Promise<unknown>, cpu: () => number): Promise<{ wall: number; cpu: number }> {
  await settle();
  const c0 = cpu();
  const t0 = process.hrtime.bigint();
  await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  return { wall, cpu: cpu() - c0 };
}

/** A sink that computes diffIDs and chainIDs and keeps nothing: the pipeline's own cost. */
function hashOnlySink(): LayerSink {
  return {
    has: async () => false,
    register: async (tar, parent, expectDiffID) => {
      const h = createHash("sha256");
      let size = 0;
      for await (const c of tar) {
        h.update(c as Buffer);
        size += (c as Buffer).length;
      }
      const diffID = `sha256:${h.digest("hex")}` as const;
      if (expectDiffID && diffID !== expectDiffID) throw new Error(`diffID mismatch: ${diffID}`);
      return { chainID: chainID(parent, diffID), diffID, size, tarSize: size };
    },
    tarStream: async () => {
      throw new Error("hash-only sink keeps no tars");
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Runs a command-line tool and returns its wall seconds and the CPU seconds `cpu()` grew by. */
function timedTool(cmd: string, args: string[], cpu: () => number): Promise<{ wall: number; cpu: number }> {
  return timed(() => run(cmd, args, { maxBuffer: 1 << 26 }), cpu);
}

type Runs = { strata: number[]; docker: number[]; bare: number[]; strataCpu: number[]; dockerCpu: number[] };

async function main(): Promise<void> {
  const work = await mkdtemp(join(BENCH_DIR, "strata-bench-images-"));
  const regDir = join(work, "registry");
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  await mkdir(regDir, { recursive: true });
  await writeFile(
    join(regDir, "config.yml"),
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${regDir}/data\nhttp:\n  addr: ${addr}\n`,
  );
  const reg = spawn("/usr/bin/docker-registry", ["serve", join(regDir, "config.yml")], { stdio: "ignore" });
  const dockerNames: string[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      if (
        await fetch(`http://${addr}/v2/`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const gens = [];
    for (const [i, n] of [2000, 500, 50].entries())
      gens.push(await genLayer(work, `gen${i}`, n, i === 2 ? 1 << 20 : 8192));
    const images: Array<[string, string[]]> = [
      ["debian", [join(ART, "base-rootfs.tar")]],
      ["5-layer", [join(ART, "base-rootfs.tar"), join(ART, "c1-layer.tar"), ...gens]],
    ];
    const load = loadavg()
      .map((l) => l.toFixed(2))
      .join(" ");
    console.log(
      `images bench: ${RUNS} runs, median seconds, strata concurrency ${CONCURRENCY}, registry ${addr}, ` +
        `work ${work}, settle ${SETTLE} s, load average ${load}`,
    );
    const regCpu = () => (reg.pid ? cpuOf(reg.pid, "own") : 0);
    const empty = (): Runs => ({ strata: [], docker: [], bare: [], strataCpu: [], dockerCpu: [] });
    const results = new Map(images.map(([name]) => [name, { pull: empty(), load: empty() }]));
    for (let r = 0; r < RUNS; r++) {
      for (const [name, tars] of images) {
        for (const op of ["pull", "load"] as const) {
          // This (image, run, op)'s own copy: unique layers, pushed or archived.
          const id = `${name}-${r}-${op}`;
          const vdir = join(work, id);
          await mkdir(vdir);
          const unique = [];
          for (const [i, t] of tars.entries()) unique.push(await uniqueLayer(t, join(vdir, `layer${i}.tar`), id));
          await layout(join(vdir, "layout"), unique);
          const tag = `bench/${name}:${r}-${op}`;
          const ref = `${addr}/${tag}`;
          const archive = join(vdir, "image.tar");
          if (op === "pull")
            await run("skopeo", [
              "--insecure-policy",
              "copy",
              "--dest-tls-verify=false",
              "--dest-compress",
              `oci:${join(vdir, "layout")}:1`,
              `docker://${ref}`,
            ]);
          else
            await run("skopeo", [
              "--insecure-policy",
              "copy",
              `oci:${join(vdir, "layout")}:1`,
              `docker-archive:${archive}:${tag}`,
            ]);
          dockerNames.push(op === "pull" ? ref : tag);
          const res = results.get(name)![op];
          const withRegistry = () => (op === "pull" ? regCpu() : 0);

          const strata = async () => {
            const root = await mkdtemp(join(work, "store-"));
            const globals = ["--root", root, ...(process.env.DRIVER ? ["--driver", process.env.DRIVER] : [])];
            const args =
              op === "pull"
                ? [CLI, ...globals, "pull", "-q", "--concurrency", String(CONCURRENCY), ref]
                : [CLI, ...globals, "load", "-q", "--concurrency", String(CONCURRENCY), archive];
            const t = await timedTool(process.execPath, args, () => cpuOf("self", "children") + withRegistry());
            res.strata.push(t.wall);
            res.strataCpu.push(t.cpu);
            if (r === 0 && op === "pull") {
              const info = await run(process.execPath, [CLI, ...globals, "info"]);
              const driver = /driver\W+(\w+)/i.exec(info.stdout)?.[1] ?? "?";
              console.log(`  (${name}: strata driver ${driver})`);
            }
          };
          const docker_ = async () => {
            const dpid = dockerdPid();
            const t = await timedTool(
              "/usr/bin/docker",
              op === "pull" ? [...DOCKER, "pull", "-q", ref] : [...DOCKER, "load", "-q", "-i", archive],
              () => (dpid ? cpuOf(dpid, "both") : 0) + cpuOf("self", "children") + withRegistry(),
            );
            res.docker.push(t.wall);
            res.dockerCpu.push(t.cpu);
          };
          // The sides take turns going first.
          if (r % 2 === 0) {
            await strata();
            await docker_();
          } else {
            await docker_();
            await strata();
          }
          const bareStore = await ImageStore.open(join(await mkdtemp(join(work, "bare-")), "images"));
          const bare = hashOnlySink();
          const bt = await timed(
            () =>
              op === "pull"
                ? pullImage(ref, bare, bareStore, { concurrency: CONCURRENCY })
                : loadImages(archive, bare, bareStore, { concurrency: CONCURRENCY }),
            () => 0,
          );
          res.bare.push(bt.wall);
          await bareStore.close();
        }
      }
    }
    console.log(
      "image     op     strata   docker   strata/docker   no-apply          cpu: strata   docker   strata/docker",
    );
    for (const [name] of images) {
      for (const op of ["pull", "load"] as const) {
        const runs = results.get(name)![op];
        const s = median(runs.strata);
        const d = median(runs.docker);
        const b = median(runs.bare);
        const sc = median(runs.strataCpu);
        const dc = median(runs.dockerCpu);
        console.log(
          `${name.padEnd(9)} ${op.padEnd(6)} ${s.toFixed(2).padStart(6)}   ${d.toFixed(2).padStart(6)}   ${(s / d).toFixed(2).padStart(13)}   ${b.toFixed(2).padStart(8)} (${(b / d).toFixed(2)}x)` +
            `   ${sc.toFixed(2).padStart(11)}   ${dc.toFixed(2).padStart(6)}   ${(sc / dc).toFixed(2).padStart(13)}`,
        );
        console.log(
          `${"".padEnd(16)} runs: strata ${runs.strata.map((x) => x.toFixed(2)).join(" ")}, docker ${runs.docker.map((x) => x.toFixed(2)).join(" ")}`,
        );
      }
    }
    const end = loadavg()
      .map((l) => l.toFixed(2))
      .join(" ");
    console.log(`load average at the end: ${end}`);
  } finally {
    for (const n of dockerNames) await docker("rmi", "-f", n).catch(() => undefined);
    reg.kill("SIGTERM");
    await rm(work, { recursive: true, force: true });
  }
}

await main();
