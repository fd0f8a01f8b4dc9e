/**
 * `npm run bench:serve`: dockerd on strata (`strata serve --docker-plugin`)
 * against dockerd on its own overlay2, side by side in one run:
 *   - `docker pull` of the peer lab's Debian image (one layer) and of a
 *     5-layer image (Debian with one more file, the lab's c1 layer, three
 *     generated layers),
 *     from a private registry (gzip layers, pushed by skopeo);
 *   - `docker run --rm debian true` ×20 one after the other, and ×10 at once;
 *   - `docker commit` of a container that changed 1,000 files of the image.
 * Sides (SIDES, default "overlay2,overlay,devmapper"): dockerd's overlay2,
 * and dockerd on strata's overlay and devmapper (userspace pool; options in
 * DM_OPTS). Every side of every round gets a freshly made ext4 (`src/bench/fresh-fs.ts`,
 * FS_GIB GiB) holding dockerd's data-root and strata's root, caches are
 * dropped before each timed operation, and the order of the sides rotates
 * from round to round. Prints medians of ROUNDS (default 3) and each side's
 * ratio to overlay2 with the targets (pull ≤ 1.0, run ≤ 1.2, commit ≤ 1.0).
 * Needs root, /tmp/peer-artifacts (the peer lab's make-base-image.sh) and a
 * built tree (`npm run build`).
 */
import { execFile, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describeFreshFs, dropCaches, withFreshFs } from "../src/bench/fresh-fs.js";
import { median } from "../src/bench/stats.js";
import { builtinDrivers } from "../src/drivers/index.js";
import { freePort, genLayer, layout, uniqueLayer } from "./bench-fixtures.js";

const run = promisify(execFile);
const ART = process.env.PEER_ARTIFACTS ?? "/tmp/peer-artifacts";
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SIDES = (process.env.SIDES ?? "overlay2,overlay,devmapper").split(",");
const BENCH_DIR = process.env.BENCH_DIR ?? "/var/tmp";
/** GiB of each side's fresh filesystem (a sparse loop file). */
const FS_GIB = Number(process.env.FS_GIB ?? 24);
const DM_OPTS = (
  process.env.DM_OPTS ??
  "dm.loopdatasize=20G,dm.basesize=10G,dm.fs=ext4,dm.use_deferred_removal=true,dm.use_deferred_deletion=true"
).split(",");
const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const DOCKER = "/usr/bin/docker";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopPid(pid: number, ms = 60_000): Promise<void> {
  if (!pid || !alive(pid)) return;
  process.kill(pid, "SIGTERM");
  const until = Date.now() + ms;
  while (alive(pid) && Date.now() < until) await sleep(50);
  if (alive(pid)) process.kill(pid, "SIGKILL");
  while (alive(pid)) await sleep(20);
}

function spawnLogged(cmd: string, args: string[], log: string): number {
  const fd = openSync(log, "a");
  try {
    const child = spawn(cmd, args, { stdio: ["ignore", fd, fd], detached: true });
    child.unref();
    return child.pid!;
  } finally {
    closeSync(fd);
  }
}

/** One dockerd (and, for strata sides, its `strata serve`) on a fresh filesystem. */
interface Side {
  docker(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function startSide(name: string, fs: string, n: number, work: string): Promise<Side> {
  const tag = `sbs-${process.pid}-${n}`;
  const exec = `/run/${tag}`;
  const sock = join(exec, "docker.sock");
  let servePid = 0;
  let driver = "overlay2";
  if (name !== "overlay2") {
    driver = `strata-bench-${process.pid}-${n}`;
    const socket = `/run/docker/plugins/${driver}.sock`;
    const opts = name === "devmapper" ? DM_OPTS.flatMap((o) => ["--storage-opt", o]) : [];
    const root = join(fs, "strata");
    servePid = spawnLogged(
      process.execPath,
      [CLI, "--root", root, "--driver", name, ...opts, "serve", "--docker-plugin", socket],
      join(work, `${tag}-serve.log`),
    );
    for (let i = 0; ; i++) {
      if (
        await run("curl", ["-sf", "-X", "POST", "--unix-socket", socket, "http://p/Plugin.Activate"]).then(
          () => true,
          () => false,
        )
      )
        break;
      if (i > 1200 || !alive(servePid)) throw new Error(`strata serve did not start (${work}/${tag}-serve.log)`);
      await sleep(50);
    }
  }
  const dockerdPid = spawnLogged(
    "/usr/sbin/dockerd",
    [
      ...(servePid ? ["--experimental"] : []),
      "--storage-driver",
      driver,
      "--data-root",
      join(fs, "docker"),
      "--exec-root",
      exec,
      "--host",
      `unix://${sock}`,
      "--pidfile",
      join(exec, "dockerd.pid"),
      "--iptables=false",
      "--ip-masq=false",
      "--bridge=none",
      "--ip-forward=false",
    ],
    join(work, `${tag}-dockerd.log`),
  );
  const docker = async (...a: string[]) =>
    (await run(DOCKER, ["-H", `unix://${sock}`, ...a], { maxBuffer: 1 << 26 })).stdout.trim();
  for (let i = 0; ; i++) {
    if (
      await docker("version").then(
        () => true,
        () => false,
      )
    )
      break;
    if (i > 600 || !alive(dockerdPid)) throw new Error(`dockerd did not start (${work}/${tag}-dockerd.log)`);
    await sleep(100);
  }
  return {
    docker,
    async stop() {
      const ctd = Number((await readFile(join(exec, "containerd", "containerd.pid"), "utf8").catch(() => "0")).trim());
      await docker("rm", "-f", ...(await docker("ps", "-aq")).split("\n").filter(Boolean)).catch(() => "");
      await stopPid(dockerdPid);
      await stopPid(ctd);
      await stopPid(servePid);
      if (name === "devmapper") {
        // Whatever a failure left: the pool daemon and its devices.
        const opts = Object.fromEntries(DM_OPTS.map((o) => o.split("=") as [string, string]));
        const d = await builtinDrivers()
          .get("devmapper")
          .factory({ root: join(fs, "strata"), options: opts });
        await d.cleanup();
      }
      await rm(exec, { recursive: true, force: true });
    },
  };
}

const WORKLOADS = ["pull debian", "pull 5-layer", "run ×20 sequential", "run ×10 parallel", "commit 1,000 files"];
const TARGET: Record<string, number> = {
  "pull debian": 1.0,
  "pull 5-layer": 1.0,
  "run ×20 sequential": 1.2,
  "run ×10 parallel": 1.2,
  "commit 1,000 files": 1.0,
};

/** The workloads on one side; seconds per workload. */
async function measure(side: Side, images: { debian: string; five: string }): Promise<Record<string, number>> {
  const d = side.docker;
  const out: Record<string, number> = {};
  const time = async (label: string, fn: () => Promise<unknown>) => {
    await dropCaches();
    const t0 = process.hrtime.bigint();
    await fn();
    out[label] = Number(process.hrtime.bigint() - t0) / 1e9;
  };
  await time("pull debian", () => d("pull", "-q", images.debian));
  await time("pull 5-layer", () => d("pull", "-q", images.five));
  await time("run ×20 sequential", async () => {
    for (let i = 0; i < 20; i++) await d("run", "--rm", "--network", "none", images.debian, "true");
  });
  await time("run ×10 parallel", () =>
    Promise.all(Array.from({ length: 10 }, () => d("run", "--rm", "--network", "none", images.debian, "true"))),
  );
  const change = 'find /usr/share -type f | sort | head -n 1000 | while read -r f; do echo changed >> "$f"; done';
  await d("run", "--name", "changed", "--network", "none", images.debian, "sh", "-c", change);
  const changes = (await d("diff", "changed"))
    .split("\n")
    .filter((l) => l.startsWith("C /usr/share/") && !l.endsWith("/"));
  if (changes.length < 1000) throw new Error(`the change touched ${changes.length} files, not 1,000`);
  await time("commit 1,000 files", () => d("commit", "changed", "bench/committed:1"));
  return out;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(BENCH_DIR, "strata-bench-serve-"));
  const regDir = join(work, "registry");
  const addr = `127.0.0.1:${await freePort()}`;
  await mkdir(regDir, { recursive: true });
  await writeFile(
    join(regDir, "config.yml"),
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${regDir}/data\nhttp:\n  addr: ${addr}\n`,
  );
  const reg = spawn("/usr/bin/docker-registry", ["serve", join(regDir, "config.yml")], { stdio: "ignore" });
  try {
    for (
      let i = 0;
      i < 200 &&
      !(await fetch(`http://${addr}/v2/`).then(
        (r) => r.ok,
        () => false,
      ));
      i++
    )
      await sleep(50);
    const gens = [];
    for (const [i, n] of [2000, 500, 50].entries())
      gens.push(await genLayer(work, `gen${i}`, n, i === 2 ? 1 << 20 : 8192));
    const images = { debian: `${addr}/bench/debian:1`, five: `${addr}/bench/five:1` };
    for (const [ref, tars] of [
      [images.debian, [join(ART, "base-rootfs.tar")]],
      // Its own copy of the Debian layer: pulled after the Debian image, it must not find it there.
      [
        images.five,
        [
          await uniqueLayer(join(ART, "base-rootfs.tar"), join(work, "base-five.tar"), "five"),
          join(ART, "c1-layer.tar"),
          ...gens,
        ],
      ],
    ] as const) {
      const dir = join(work, `layout-${ref.split("/").pop()!.split(":")[0]}`);
      await layout(dir, [...tars]);
      await run("skopeo", [
        "--insecure-policy",
        "copy",
        "--dest-tls-verify=false",
        "--dest-compress",
        `oci:${dir}:1`,
        `docker://${ref}`,
      ]);
    }
    const load = loadavg()
      .map((l) => l.toFixed(2))
      .join(" ");
    console.log(
      `serve bench: ${ROUNDS} rounds, sides ${SIDES.join(", ")}, ${describeFreshFs("ext4", FS_GIB * 2 ** 30)}, one per side and round, devmapper ${DM_OPTS.join(" ")}, load average ${load}`,
    );
    const results = new Map(SIDES.map((s) => [s, new Map(WORKLOADS.map((w) => [w, [] as number[]]))]));
    let n = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const order = SIDES.map((_, i) => SIDES[(i + r) % SIDES.length]!);
      for (const name of order) {
        n++;
        await withFreshFs({ size: FS_GIB * 2 ** 30, parent: BENCH_DIR }, async (fs) => {
          const side = await startSide(name, fs.path, n, work);
          try {
            const got = await measure(side, images);
            for (const [w, s] of Object.entries(got)) results.get(name)!.get(w)!.push(s);
            console.log(`  round ${r + 1} ${name}: ${WORKLOADS.map((w) => `${w} ${got[w]!.toFixed(2)}`).join(", ")}`);
          } finally {
            await side.stop();
          }
        });
      }
    }
    const base = SIDES[0]!;
    const header = [
      "workload".padEnd(20),
      ...SIDES.map((s) => s.padStart(10)),
      ...SIDES.slice(1).map((s) => `${s}/${base}`.padStart(20)),
      "target".padStart(7),
    ];
    console.log(`\nmedian seconds of ${ROUNDS} rounds\n${header.join(" ")}`);
    for (const w of WORKLOADS) {
      const med = SIDES.map((s) => median(results.get(s)!.get(w)!));
      const ratios = med.slice(1).map((m) => {
        const ratio = m / med[0]!;
        return `${ratio.toFixed(2)} ${ratio <= TARGET[w]! ? "✓" : "✗"}`.padStart(20);
      });
      console.log(
        [
          w.padEnd(20),
          ...med.map((m) => m.toFixed(2).padStart(10)),
          ...ratios,
          `≤ ${TARGET[w]!.toFixed(1)}`.padStart(7),
        ].join(" "),
      );
    }
    console.log(
      `load average at the end: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );
  } finally {
    reg.kill("SIGTERM");
    await rm(work, { recursive: true, force: true });
  }
}

await main();
