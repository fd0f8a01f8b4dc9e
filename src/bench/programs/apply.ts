/**
 * `npm run bench:apply`: strata's archive engine against GNU tar and find,
 * side by side in one run, on the corpus of `scripts/make-corpus.sh`
 * (default /var/tmp/strata-corpus; set STRATA_CORPUS to move it).
 *
 * For each layer (a: Debian minbase rootfs, b: 60k small files, c: 4 × 256
 * MiB) uncompressed and gzip: strata's decompress + applyLayer against
 * `tar -xf` / `tar -xzf`. Then, on the 60k-file tree: changes against an
 * unchanged full copy (`cp -a`) against `find A B -printf …`, and export of
 * the whole tree against `tar -cf`. Every run starts from an empty target
 * after a `sync`, the two tools alternate, and the medians are printed with
 * the ratio strata / peer and the target ratio.
 *
 * Environment: BENCH_RUNS (default 5), BENCH_CASES (comma list of case
 * names to run, default all), STRATA_BENCH_DIR (scratch parent, default
 * /var/tmp; it needs room for two copies of the largest layer).
 *
 * @module
 */
import { spawn } from "node:child_process";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { decompress } from "../../archive/compression.js";
import { applyLayer } from "../../diff/apply.js";
import { changes } from "../../diff/changes.js";
import { exportTree } from "../../diff/export.js";

const CORPUS = process.env.STRATA_CORPUS ?? "/var/tmp/strata-corpus";
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const ONLY = process.env.BENCH_CASES?.split(",").filter(Boolean);

interface Row {
  name: string;
  peer: string;
  /** Wall seconds per run. */
  strata: number[];
  other: number[];
  /** CPU seconds (user + system, all threads / children) per run. */
  strataCpu: number[];
  otherCpu: number[];
  target: number;
}

function row(name: string, peer: string, target: number): Row {
  return { name, peer, strata: [], other: [], strataCpu: [], otherCpu: [], target };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.trim()}`))));
  });
}

/** Wall and CPU seconds of `fn` run in this process (the CPU of every thread counts). */
async function timed(fn: () => Promise<unknown>): Promise<[number, number]> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  return [(performance.now() - t0) / 1000, (c.user + c.system) / 1e6];
}

/** Wall and CPU seconds of a command (CPU from GNU time, children included). */
async function timedCmd(cmd: string, args: string[]): Promise<[number, number]> {
  const out = join(tmpdir(), `strata-bench-time-${process.pid}`);
  const t0 = performance.now();
  await run("/usr/bin/time", ["-f", "%U %S", "-o", out, cmd, ...args]);
  const wall = (performance.now() - t0) / 1000;
  const [u, s] = (await readFile(out, "utf8")).trim().split(/\s+/).slice(-2).map(Number);
  await rm(out, { force: true });
  return [wall, u! + s!];
}

async function fresh(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await run("sync", []);
}

async function strataApply(file: string, dir: string): Promise<void> {
  const { stream } = await decompress(createReadStream(file, { highWaterMark: 256 << 10 }));
  await applyLayer(dir, stream);
}

const TAR_X = ["--numeric-owner", "--xattrs", "--xattrs-include=*"];

/** Alternates strata and the peer RUNS times (who goes first alternates too). */
async function sideBySide(
  row: Row,
  prepare: () => Promise<void>,
  strata: () => Promise<unknown>,
  peer: [string, string[]],
): Promise<void> {
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 === 0 ? ["s", "p"] : ["p", "s"];
    for (const who of order) {
      await prepare();
      if (who === "s") {
        const [w, c] = await timed(strata);
        row.strata.push(w);
        row.strataCpu.push(c);
      } else {
        const [w, c] = await timedCmd(...peer);
        row.other.push(w);
        row.otherCpu.push(c);
      }
    }
    process.stderr.write(".");
  }
  process.stderr.write(` ${line(row)}\n`);
}

function wanted(name: string): boolean {
  return !ONLY || ONLY.some((o) => name.startsWith(o));
}

async function main(): Promise<void> {
  for (const f of ["debian.tar", "small.tar", "large.tar"]) {
    if (!existsSync(join(CORPUS, f)) || !existsSync(join(CORPUS, `${f}.gz`))) {
      console.error(`bench:apply: ${join(CORPUS, f)}(.gz) is missing: run bash scripts/make-corpus.sh first`);
      process.exit(2);
    }
  }
  const work = await mkdtemp(join(process.env.STRATA_BENCH_DIR ?? "/var/tmp", "strata-bench-"));
  const rows: Row[] = [];
  const load0 = loadavg()[0]!;
  try {
    const target = join(work, "t");
    const layers = [
      ["a debian", "debian.tar"],
      ["b 60k files", "small.tar"],
      ["c 4x256MiB", "large.tar"],
    ] as const;
    for (const [label, file] of layers) {
      for (const gz of [false, true]) {
        const name = `apply ${label}${gz ? " .gz" : ""}`;
        if (!wanted(name)) continue;
        const path = join(CORPUS, gz ? `${file}.gz` : file);
        const r = row(name, gz ? "tar -xzf" : "tar -xf", gz ? 0.8 : 1.0);
        process.stderr.write(`${name} `);
        await sideBySide(
          r,
          () => fresh(target),
          () => strataApply(path, target),
          ["tar", [...TAR_X, gz ? "-xzf" : "-xf", path, "-C", target]],
        );
        rows.push(r);
      }
    }

    const a = join(work, "A");
    const b = join(work, "B");
    if (wanted("changes") || wanted("export")) {
      await fresh(a);
      await strataApply(join(CORPUS, "small.tar"), a);
      await rm(b, { recursive: true, force: true });
      await run("cp", ["-a", a, b]);
    }
    if (wanted("changes")) {
      const r = row("changes 60k vs copy", "find A B -printf", 1.0);
      process.stderr.write(`${r.name} `);
      const found = await changes(a, b);
      if (found.length !== 0) throw new Error(`changes of an unchanged copy reported ${found.length} changes`);
      await sideBySide(
        r,
        async () => {},
        () => changes(a, b),
        ["find", [a, b, "-printf", "%s %T@ %m %U %G\\n"]],
      );
      rows.push(r);
    }
    if (wanted("export")) {
      const out = join(work, "export.tar");
      const r = row("export 60k tree", "tar -cf", Number.NaN);
      process.stderr.write(`${r.name} `);
      await sideBySide(
        r,
        () => rm(out, { force: true }),
        () => pipeline(exportTree(a), createWriteStream(out)),
        ["tar", ["--numeric-owner", "-cf", out, "-C", a, "."]],
      );
      rows.push(r);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  report(rows, load0);
}

function line(r: Row): string {
  const f = (x: number) => x.toFixed(3);
  const s = median(r.strata);
  const o = median(r.other);
  const ratio = s / o;
  const target = Number.isNaN(r.target) ? "–" : `≤ ${r.target.toFixed(1)} ${ratio <= r.target ? "✓" : "✗"}`;
  const cpu = `${f(median(r.strataCpu))} / ${f(median(r.otherCpu))}`;
  return `| ${r.name} | ${f(s)} | ${r.peer} | ${f(o)} | ${ratio.toFixed(2)} | ${target} | ${cpu} |`;
}

function report(rows: Row[], load0: number): void {
  console.log(`\nmedians of ${RUNS} runs (load average ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)})\n`);
  console.log("| case | strata s | peer | peer s | strata/peer | target | CPU s strata / peer |");
  console.log("|---|---:|---|---:|---:|---:|---:|");
  for (const r of rows) console.log(line(r));
}

await main();
