/**
 * `npm run bench:images`: strata pull / load against docker pull / load, side
 * by side in one run, on the same images:
 *   - "debian": the peer lab's Debian minbase rootfs (one layer), made unique
 *     with one appended file so dockerd cannot reuse a layer it already has;
 *   - "5-layer": that base plus the peer lab's c1 layer and three generated layers.
 * Each image is pushed (gzip, by skopeo) to a private docker-registry on a
 * free port; strata pulls it into a fresh LayerStore (driver: $DRIVER, default
 * automatic selection) and the peer dockerd (overlay2) pulls it after `docker rmi`.
 * Then both load the same docker-archive. Prints medians of RUNS (default 3)
 * and the strata/docker ratio. The "no-apply" column runs the same pipeline
 * (fetch, verify, decompress, hash, order) into a sink that only hashes the
 * tars: the cost of src/image itself, without the diff engine and store.
 * Needs /tmp/peer-artifacts and the peer dockerd (/work/shared/peers/make-base-image.sh, start-dockerd.sh).
 *
 * Fairness on a shared ext4 without a journal (this VM's root): the inode
 * allocator walks past every inode freed in the last 5-10 s (perf:
 * `recently_deleted` under `ext4_create`), so a side that starts right after
 * a large delete (the other side's cleanup, or other work's churn in /tmp)
 * pays many times the file-creation cost. So the strata stores live on
 * /var/lib like Docker's (env BENCH_DIR), and before every timed operation,
 * strata's and Docker's alike, the bench syncs and waits SETTLE seconds
 * (default 10) after its last cleanup.
 *
 * On a saturated machine wall time mostly measures waiting for a CPU, so
 * the bench also prints the CPU time (user + system, all threads) each side
 * spent: strata's is this process's; Docker's is dockerd's own and its
 * reaped children's (docker-untar, unpigz) plus the docker CLI's; for pulls
 * both include the registry's. dockerd is shared with other users of the
 * peer lab, so its figure can include their work.
 */
import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { loadavg } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ImageStore } from "../src/image/image-store.js";
import type { LayerSink } from "../src/image/layer-sink.js";
import { loadImages } from "../src/image/load.js";
import { pullImage } from "../src/image/registry/pull.js";
import { builtinDrivers } from "../src/drivers/index.js";
import { layerStoreSink } from "../src/image/layer-store-sink.js";
import { LayerStore } from "../src/layer/index.js";

const run = promisify(execFile);
const ART = process.env.PEER_ARTIFACTS ?? "/tmp/peer-artifacts";
const RUNS = Number(process.env.RUNS ?? 3);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 3);
const DOCKER = ["-H", "unix:///run/peer-docker.sock"];
const BENCH_DIR = process.env.BENCH_DIR ?? "/var/lib";
const SETTLE = Number(process.env.SETTLE ?? 10);
const docker = (...a: string[]) => run("/usr/bin/docker", [...DOCKER, ...a], { maxBuffer: 1 << 26 });

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

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
      const diffID = `sha256:${h.digest("hex")}`;
      if (expectDiffID && diffID !== expectDiffID) throw new Error(`diffID mismatch: ${diffID}`);
      const chainID = parent ? `sha256:${createHash("sha256").update(`${parent} ${diffID}`).digest("hex")}` : diffID;
      return { chainID, diffID, size, tarSize: size };
    },
    tarStream: async () => {
      throw new Error("hash-only sink keeps no tars");
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A layer of `n` generated files of `size` bytes under dir `name/`. */
async function genLayer(work: string, name: string, n: number, size: number): Promise<string> {
  const dir = join(work, `gen-${name}`);
  await mkdir(join(dir, name), { recursive: true });
  for (let i = 0; i < n; i++) {
    const sub = join(dir, name, String(i % 20));
    if (i < 20) await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `f${i}`), randomBytes(size / 2).toString("hex"));
  }
  const tar = join(work, `${name}.tar`);
  await run("tar", ["--numeric-owner", "-cf", tar, "-C", dir, name]);
  return tar;
}

/** Writes an OCI layout with uncompressed layers; skopeo turns it into archives and pushes. */
async function layout(dir: string, tars: string[]): Promise<void> {
  const { createHash } = await import("node:crypto");
  const { createReadStream } = await import("node:fs");
  const { stat, rename } = await import("node:fs/promises");
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const layers = [];
  for (const t of tars) {
    const h = createHash("sha256");
    for await (const c of createReadStream(t)) h.update(c as Buffer);
    const d = h.digest("hex");
    await copyFile(t, join(blobs, d));
    layers.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: `sha256:${d}`,
      size: (await stat(t)).size,
    });
  }
  const put = async (b: Buffer) => {
    const d = createHash("sha256").update(b).digest("hex");
    await writeFile(join(blobs, `${d}.tmp`), b);
    await rename(join(blobs, `${d}.tmp`), join(blobs, d));
    return { digest: `sha256:${d}`, size: b.length };
  };
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {},
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const c = await put(config);
  const m = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...c },
      layers,
    }),
  );
  const md = await put(m);
  await writeFile(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...md,
          annotations: { "org.opencontainers.image.ref.name": "1" },
        },
      ],
    }),
  );
}

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
    // Unique base: the Debian rootfs plus one file, so no store has the layer yet.
    const uniq = join(work, "uniq");
    await mkdir(uniq);
    await writeFile(join(uniq, "strata-bench-id"), randomBytes(16).toString("hex"));
    const base = join(work, "base.tar");
    await copyFile(join(ART, "base-rootfs.tar"), base);
    await run("tar", ["--numeric-owner", "-rf", base, "-C", uniq, "strata-bench-id"]);
    const gens = [];
    for (const [i, n] of [2000, 500, 50].entries())
      gens.push(await genLayer(work, `gen${i}`, n, i === 2 ? 1 << 20 : 8192));
    const images: Array<[string, string[]]> = [
      ["debian", [base]],
      ["5-layer", [base, join(ART, "c1-layer.tar"), ...gens]],
    ];
    const load = loadavg()
      .map((l) => l.toFixed(2))
      .join(" ");
    console.log(
      `images bench: ${RUNS} runs, median seconds, strata concurrency ${CONCURRENCY}, registry ${addr}, ` +
        `work ${work}, settle ${SETTLE} s, load average ${load}`,
    );
    console.log(
      "image     op     strata   docker   strata/docker   no-apply          cpu: strata   docker   strata/docker",
    );
    for (const [name, tars] of images) {
      const dir = join(work, `layout-${name}`);
      await layout(dir, tars);
      const archive = join(work, `${name}.tar`);
      const ref = `${addr}/bench/${name}:1`;
      await run("skopeo", ["--insecure-policy", "copy", `oci:${dir}:1`, `docker-archive:${archive}:bench/${name}:1`]);
      await run("skopeo", [
        "--insecure-policy",
        "copy",
        "--dest-tls-verify=false",
        "--dest-compress",
        `oci:${dir}:1`,
        `docker://${ref}`,
      ]);
      dockerNames.push(ref, `bench/${name}:1`);
      type Runs = { strata: number[]; docker: number[]; bare: number[]; strataCpu: number[]; dockerCpu: number[] };
      const empty = (): Runs => ({ strata: [], docker: [], bare: [], strataCpu: [], dockerCpu: [] });
      const results: Record<string, Runs> = { pull: empty(), load: empty() };
      const regCpu = () => (reg.pid ? cpuOf(reg.pid, "own") : 0);
      for (let r = 0; r < RUNS; r++) {
        for (const op of ["pull", "load"] as const) {
          const root = await mkdtemp(join(work, "store-"));
          const driver = await builtinDrivers().select(process.env.DRIVER, { root, options: {} });
          const layers = await LayerStore.open(root, driver);
          const sink = layerStoreSink(layers);
          const store = await ImageStore.open(join(root, "images"));
          if (r === 0 && op === "pull") console.log(`  (${name}: strata driver ${driver.name})`);
          const st = await timed(
            () =>
              op === "pull"
                ? pullImage(ref, sink, store, { concurrency: CONCURRENCY })
                : loadImages(archive, sink, store, { concurrency: CONCURRENCY }),
            () => cpuOf("self", "own") + (op === "pull" ? regCpu() : 0),
          );
          results[op].strata.push(st.wall);
          results[op].strataCpu.push(st.cpu);
          await store.close();
          await layers.close();
          await driver.cleanup();
          await rm(root, { recursive: true, force: true });
          const bareStore = await ImageStore.open(join(await mkdtemp(join(work, "bare-")), "images"));
          const bare = hashOnlySink();
          const bt = await timed(
            () =>
              op === "pull"
                ? pullImage(ref, bare, bareStore, { concurrency: CONCURRENCY })
                : loadImages(archive, bare, bareStore, { concurrency: CONCURRENCY }),
            () => 0,
          );
          results[op].bare.push(bt.wall);
          await bareStore.close();
          const dname = op === "pull" ? ref : `bench/${name}:1`;
          await docker("rmi", "-f", dname).catch(() => undefined);
          const dpid = dockerdPid();
          const dt = await timed(
            () => (op === "pull" ? docker("pull", "-q", ref) : docker("load", "-q", "-i", archive)),
            () => (dpid ? cpuOf(dpid, "both") : 0) + cpuOf("self", "children") + (op === "pull" ? regCpu() : 0),
          );
          results[op].docker.push(dt.wall);
          results[op].dockerCpu.push(dt.cpu);
          await docker("rmi", "-f", dname).catch(() => undefined);
        }
      }
      for (const op of ["pull", "load"] as const) {
        const s = median(results[op].strata);
        const d = median(results[op].docker);
        const b = median(results[op].bare);
        const sc = median(results[op].strataCpu);
        const dc = median(results[op].dockerCpu);
        console.log(
          `${name.padEnd(9)} ${op.padEnd(6)} ${s.toFixed(2).padStart(6)}   ${d.toFixed(2).padStart(6)}   ${(s / d).toFixed(2).padStart(13)}   ${b.toFixed(2).padStart(8)} (${(b / d).toFixed(2)}x)` +
            `   ${sc.toFixed(2).padStart(11)}   ${dc.toFixed(2).padStart(6)}   ${(sc / dc).toFixed(2).padStart(13)}`,
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
