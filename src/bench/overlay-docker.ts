/**
 * The Docker half of `npm run bench:overlay`: `changes` and a commit
 * (diff tar → sha256 → applyDiff into a new layer, what the layer store's
 * commit does) of a container with 10,000 new files, against `docker diff`
 * and `docker commit` of the same change in the peer lab's dockerd. Skipped,
 * with the reason printed, when dockerd or the base image is missing.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { Transform } from "node:stream";
import { promisify } from "node:util";
import type { OverlayDriver } from "../drivers/overlay/index.js";
import type { Differ } from "../layer/index.js";

const run = promisify(execFile);
const SOCK = "unix:///run/peer-docker.sock";
const DOCKER = "/usr/bin/docker";
const IMAGE = "peer/base:1";
const ROOTFS = "/tmp/peer-artifacts/base-rootfs.tar";
/** 10,000 files of 1,000 bytes under /bench. */
const CHANGE = "mkdir -p bench && cd bench && head -c 10000000 /dev/urandom | split -b 1000 -a 4 - f";
const RUNS = Number(process.env.BENCH_DOCKER_RUNS ?? 3);

const docker = (...args: string[]) => run(DOCKER, ["-H", SOCK, ...args], { maxBuffer: 64 << 20 });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function unavailable(): Promise<string> {
  if (!existsSync(DOCKER)) return `${DOCKER} missing`;
  if (!existsSync(ROOTFS)) return `${ROOTFS} missing (make-base-image.sh)`;
  try {
    await docker("image", "inspect", IMAGE);
    return "";
  } catch (err) {
    return `dockerd on ${SOCK} or ${IMAGE} unavailable: ${(err as Error).message.split("\n")[0]}`;
  }
}

/** Runs the Docker comparison, printing a table (or why it was skipped). */
export async function benchDocker(d: OverlayDriver, differ: Differ): Promise<void> {
  console.log("\n## 10,000 changed files: strata changes / commit vs docker diff / docker commit");
  const why = await unavailable();
  if (why) {
    console.log(`skipped: ${why}`);
    return;
  }
  await d.create("dbase", "");
  await differ.applyDiff("dbase", "", createReadStream(ROOTFS));
  await d.createReadWrite("dctr", "dbase");
  const p = await d.get("dctr");
  await run("sh", ["-c", CHANGE], { cwd: p });
  await d.put("dctr");
  const name = `strata-bench-${process.pid}`;
  const tags: string[] = [];
  try {
    await docker("run", "--name", name, "--network", "none", "-w", "/", IMAGE, "sh", "-c", CHANGE);
    const t = {
      dockerDiff: [] as number[],
      strataDiff: [] as number[],
      dockerCommit: [] as number[],
      strataCommit: [] as number[],
    };
    let counts = "";
    for (let i = 0; i < RUNS; i++) {
      let dockerLines = 0;
      let strataLines = 0;
      t.dockerDiff.push(
        await time(async () => (dockerLines = (await docker("diff", name)).stdout.split("\n").length - 1)),
      );
      t.strataDiff.push(await time(async () => (strataLines = (await differ.changes("dctr", "dbase")).length)));
      counts = `docker diff ${dockerLines} lines, strata changes ${strataLines}`;
      const tag = `strata-bench/c${process.pid}:${i}`;
      tags.push(tag);
      t.dockerCommit.push(await time(() => docker("commit", name, tag)));
      const id = `dcommit${i}`;
      await d.create(id, "dbase");
      t.strataCommit.push(
        await time(async () => {
          const hash = createHash("sha256");
          const tee = new Transform({
            transform(chunk: Buffer, _enc, cb) {
              hash.update(chunk);
              cb(null, chunk);
            },
          });
          const tar = (await differ.diff("dctr", "dbase")).pipe(tee);
          await differ.applyDiff(id, "dbase", tar);
          hash.digest("hex");
        }),
      );
    }
    console.log(`(${counts}; medians of ${RUNS} runs; docker times include the CLI round trip)`);
    console.log("| operation | docker | strata | ratio |\n|---|---|---|---|");
    const row = (op: string, a: number[], b: number[]) =>
      console.log(
        `| ${op} | ${median(a).toFixed(0)} ms | ${median(b).toFixed(0)} ms | ${(median(b) / median(a)).toFixed(2)} |`,
      );
    row("diff (changes)", t.dockerDiff, t.strataDiff);
    row("commit", t.dockerCommit, t.strataCommit);
  } finally {
    await docker("rm", "-f", name).catch(() => undefined);
    for (const tag of tags) await docker("rmi", "-f", tag).catch(() => undefined);
  }
}
