/**
 * `npm run bench:images`: `strata load` / `strata pull` against dockerd's
 * `docker load` / `docker pull`, whole commands, each run on its own fresh
 * filesystem. For dockerd's runs a private dockerd (20.10, overlay2) is
 * started per run with its data-root on that filesystem (`../dockerd.ts`)
 * and stopped after; its CPU (and its children's: docker-untar, unpigz)
 * counts with the CLI's. strata's store is on the same kind of filesystem,
 * driver automatic (or `--driver`).
 *
 * Images, from the `bench:apply` corpus (`scripts/make-corpus.sh`):
 * - `debian`: the Debian minbase layer;
 * - `5-layer` (not with `--quick`): that layer and four generated layers of
 *   1,000 small files each.
 * Loads read a docker-archive (uncompressed layers, as `docker save` writes
 * them); pulls fetch from a private registry (`docker-registry` on a free
 * port, its storage under the work directory) the image pushed once by
 * skopeo with gzip layers. Nothing is shared between runs: every run starts
 * with an empty store and an empty dockerd.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { dockerArchive, ociLayout } from "../artifacts.js";
import { cachedTar, type CorpusTar, imageLayerEntries } from "../corpus.js";
import { PrivateDockerd, dockerdMissing } from "../dockerd.js";
import { executable, sh } from "../exec.js";
import { describeTar } from "../rootfs.js";
import { type BenchCase, type Contender, commandContender } from "../side-by-side.js";
import { type ProgramOptions, programOptions, runCases, runProgram, strata, wanted } from "./common.js";

const USAGE = `
npm run bench:images -- [options]

  --quick            the quick corpus (scripts/make-corpus.sh --quick), the debian image only, 2 rounds
  --rounds N         rounds per case (default 3)
  --fs ext4|xfs      filesystem made fresh for every run (default ext4)
  --cases a,b        run the cases whose names start with these ("load debian", "pull 5-layer", …)
  --corpus DIR       corpus directory (default /var/tmp/strata-corpus, or -quick)
  --driver NAME      strata's driver (default: automatic)
  --concurrency N    strata's layer concurrency (default 3)
`;

const REGISTRY = "/usr/bin/docker-registry";

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

/** A private registry serving from `dir`; resolves once it answers. */
async function startRegistry(dir: string): Promise<{ addr: string; child: ChildProcess }> {
  const addr = `127.0.0.1:${await freePort()}`;
  await mkdir(dir, { recursive: true });
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: ${addr}\n`,
  );
  const child = spawn(REGISTRY, ["serve", config], { stdio: "ignore" });
  for (let i = 0; i < 200; i++) {
    const up = await fetch(`http://${addr}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return { addr, child };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGTERM");
  throw new Error(`Cannot start the registry: no answer on ${addr} "${REGISTRY}"`);
}

/** dockerd's side of a case: a private dockerd on the run's filesystem, started and stopped untimed. */
function dockerContender(name: string, args: (d: PrivateDockerd) => string[]): Contender {
  let d: PrivateDockerd | undefined;
  return commandContender(name, () => d!.cli(...args(d!)), {
    prepare: async (fs) => {
      d = await PrivateDockerd.start(join(fs.path, "docker"), join(fs.path, "dockerd.log"));
    },
    finish: async () => {
      await d?.stop();
      d = undefined;
    },
    options: () => ({ daemonPids: [d!.pid] }),
  });
}

async function main(): Promise<void> {
  const o: ProgramOptions = programOptions(
    USAGE,
    { corpus: { type: "string" }, driver: { type: "string" }, concurrency: { type: "string" } },
    { rounds: 3, quickRounds: 2 },
  );
  const why =
    (await dockerdMissing()) ?? ((await executable("/usr/bin/skopeo")) ? undefined : "skopeo is not installed");
  if (why) throw new Error(`Cannot run bench:images: ${why}`);
  if (!(await executable(REGISTRY))) throw new Error(`Cannot run bench:images: ${REGISTRY} is not installed`);
  const corpus =
    (o.extra.corpus as string | undefined) ?? (o.quick ? "/var/tmp/strata-corpus-quick" : "/var/tmp/strata-corpus");
  const debian = await describeTar(join(corpus, "debian.tar")).catch(() => {
    throw new Error(
      `Cannot run bench:images: ${join(corpus, "debian.tar")} is missing, run bash scripts/make-corpus.sh`,
    );
  });
  const images: Array<[string, CorpusTar[]]> = [["debian", [debian]]];
  if (!o.quick) {
    const layers = [debian];
    for (let i = 0; i < 4; i++)
      layers.push(
        await cachedTar(corpus, `image5-l${i}`, { files: 1000, seed: 5 }, () => imageLayerEntries(i, 1000, 5)),
      );
    images.push(["5-layer", layers]);
  }
  const driver = typeof o.extra.driver === "string" ? ["--driver", o.extra.driver] : [];
  const concurrency = ["--concurrency", typeof o.extra.concurrency === "string" ? o.extra.concurrency : "3"];
  const work = await mkdtemp("/var/tmp/strata-bench-images-");
  let registry: ChildProcess | undefined;
  try {
    const reg = await startRegistry(join(work, "registry"));
    registry = reg.child;
    const cases: BenchCase[] = [];
    for (const [name, layers] of images) {
      const archive = await dockerArchive(work, name, layers);
      const tag = `strata-bench/${name}:latest`;
      const ref = `${reg.addr}/bench/${name}:1`;
      if (wanted(o, `pull ${name}`)) {
        const layout = await ociLayout(work, name, layers);
        await sh("skopeo", [
          "--insecure-policy",
          "copy",
          "--dest-tls-verify=false",
          "--dest-compress",
          `oci:${layout}:${name}`,
          `docker://${ref}`,
        ]);
      }
      if (wanted(o, `load ${name}`))
        cases.push({
          name: `load ${name}`,
          reference: "docker load",
          contenders: [
            commandContender("strata load", (fs) =>
              strata("--root", join(fs.path, "root"), ...driver, "load", "-q", ...concurrency, archive),
            ),
            dockerContender("docker load", () => ["load", "-q", "-i", archive]),
          ],
        });
      if (wanted(o, `pull ${name}`))
        cases.push({
          name: `pull ${name}`,
          reference: "docker pull",
          contenders: [
            commandContender("strata pull", (fs) =>
              strata("--root", join(fs.path, "root"), ...driver, "pull", "-q", ...concurrency, ref),
            ),
            dockerContender("docker pull", () => ["pull", "-q", ref]),
          ],
        });
      process.stderr.write(`image ${name}: ${layers.length} layer(s), archive ${archive} (${tag}), registry ${ref}\n`);
    }
    console.log(
      `# bench:images — corpus ${corpus}; dockerd 20.10 overlay2, private, data-root on each run's filesystem`,
    );
    await runCases("strata load / pull against dockerd", cases, o);
  } finally {
    registry?.kill("SIGTERM");
    await rm(work, { recursive: true, force: true });
  }
}

runProgram(main);
