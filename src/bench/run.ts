/**
 * One `strata bench` run: corpus, drivers, peers, then the reports.
 *
 * @module
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { BenchContext, BenchCorpus } from "./context.js";
import { cachedTar, imageLayerEntries, largeFileEntries, smallFileEntries } from "./corpus.js";
import { driverNames, runDriver, type Skipped } from "./driver-run.js";
import { machineInfo } from "./machine.js";
import { Recorder } from "./measure.js";
import type { BenchOptions } from "./options.js";
import { makePeer, type Peer } from "./peers/index.js";
import { BenchProgress } from "./progress.js";
import { renderCharts } from "./report/charts.js";
import { htmlReport } from "./report/html.js";
import { markdownReport, subjects } from "./report/markdown.js";
import { type BenchResults, formatValue, ratios } from "./report/results.js";
import { rootfsTar } from "./rootfs.js";
import { FAMILIES } from "./options.js";

/** Generates (or finds cached) every corpus tar. */
export async function prepareCorpus(o: BenchOptions, log: (s: string) => void): Promise<BenchCorpus> {
  const dir = resolve(o.corpusDir);
  log(`corpus: ${dir} (seed ${o.seed})`);
  const smallfiles = await cachedTar(dir, "smallfiles", { n: o.smallFiles, seed: o.seed }, () =>
    smallFileEntries(o.smallFiles, o.seed),
  );
  const largefiles = await cachedTar(dir, "largefiles", { n: o.largeFiles, size: o.largeFileBytes, seed: o.seed }, () =>
    largeFileEntries(o.largeFiles, o.largeFileBytes, o.seed),
  );
  const image = [];
  for (let i = 0; i < 10; i++)
    image.push(
      await cachedTar(dir, `image10-l${i}`, { files: o.imageLayerFiles, seed: o.seed }, () =>
        imageLayerEntries(i, o.imageLayerFiles, o.seed),
      ),
    );
  const rootfs = await rootfsTar(dir, o.quickRootfs, o.rootfsLikeFiles, o.seed, log);
  return { rootfs, smallfiles, largefiles, image };
}

/** Runs the bench and writes results.json, results.md and report.html into `o.outDir`. */
export async function runBench(o: BenchOptions, command: string): Promise<BenchResults> {
  const started = new Date().toISOString();
  const outDir = resolve(o.outDir);
  const workDir = resolve(o.workDir);
  await mkdir(outDir, { recursive: true });
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  const drivers = driverNames(o.drivers);
  const runFamilies = o.families.filter((f) => f !== "memory").length;
  const progress = new BenchProgress(drivers.length * (o.runs * runFamilies + 1) + o.peers.length * o.runs + 1);
  const rec = new Recorder();
  rec.onSample = (s) => progress.log(`  ${s.subject} ${s.workload}: ${formatValue(s.value, s.unit)}`);
  const skipped: Skipped[] = [];
  try {
    progress.step("corpus");
    const corpus = await prepareCorpus(o, (s) => progress.log(s));
    const ctx: BenchContext = {
      opts: { ...o, workDir },
      corpus,
      rec,
      log: (s) => progress.log(s),
      emptyHome: new Map(),
    };
    for (const name of drivers) {
      let skip: Skipped | undefined;
      try {
        skip = await runDriver(name, ctx, (label) => progress.step(label));
      } catch (err) {
        // Reported (results.json, the report, the exit status), and the other subjects still run.
        skip = { subject: name, reason: `failed: ${(err as Error).message.split("\n")[0]}` };
      }
      if (skip) {
        skipped.push(skip);
        progress.log(`skipping driver ${name}: ${skip.reason}`);
      }
    }
    for (const name of o.peers) {
      const peer: Peer = makePeer(name);
      const why = await peer.missing();
      if (why) {
        skipped.push({ subject: name, reason: why });
        progress.log(`skipping peer ${name}: ${why}`);
        continue;
      }
      try {
        await peer.start(ctx);
        for (let run = 1; run <= o.runs; run++) {
          progress.step(`peer ${name} run ${run}/${o.runs}`);
          await peer.run(ctx, run);
        }
      } catch (err) {
        // A peer that breaks mid-run is reported, not fatal: strata's figures stand.
        const reason = `failed: ${(err as Error).message.split("\n")[0]}`;
        skipped.push({ subject: name, reason });
        progress.log(`peer ${name} ${reason}`);
      } finally {
        await peer.stop();
      }
    }
    const measurements = rec.measurements();
    const { outDir: _o, workDir: _w, ...rest } = o;
    const results: BenchResults = {
      format: "strata-bench/1",
      started,
      finished: new Date().toISOString(),
      command,
      options: { ...rest, corpusDir: resolve(o.corpusDir) },
      machine: await machineInfo(workDir),
      corpus: {
        rootfs: {
          files: corpus.rootfs.files,
          bytes: corpus.rootfs.bytes,
          kind: corpus.rootfs.kind,
          note: corpus.rootfs.note,
        },
        smallfiles: { files: corpus.smallfiles.files, bytes: corpus.smallfiles.bytes },
        largefiles: { files: corpus.largefiles.files, bytes: corpus.largefiles.bytes },
        image10: {
          layers: corpus.image.length,
          files: corpus.image.reduce((a, t) => a + t.files, 0),
          bytes: corpus.image.reduce((a, t) => a + t.bytes, 0),
        },
      },
      measurements,
      ratios: ratios(measurements),
      skipped,
    };
    await writeReports(results, outDir);
    return results;
  } finally {
    progress.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Writes results.json, results.md and report.html. */
export async function writeReports(r: BenchResults, outDir: string): Promise<void> {
  await writeFile(join(outDir, "results.json"), `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(join(outDir, "results.md"), markdownReport(r));
  const charts = await renderCharts(FAMILIES, r.measurements, subjects(r));
  await writeFile(join(outDir, "report.html"), htmlReport(r, charts));
}
