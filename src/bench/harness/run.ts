/**
 * One `strata bench` run: the corpus, then `runs` rounds in which every
 * subject (each driver, each peer) runs every unit of every family, each
 * unit on a filesystem made fresh for it with the caches dropped; the order
 * of the subjects alternates from round to round. Then the reports.
 *
 * @module
 */
import { mkdir, rm } from "node:fs/promises";
import { resolve } from "node:path";
import { NotSupportedError } from "../../errors.js";
import { cachedTar, imageLayerEntries, largeFileEntries, smallFileEntries } from "../corpus.js";
import { DEFAULT_FS_SIZE, type FreshFs, describeFreshFs, dropCaches, withFreshFs } from "../fresh-fs.js";
import { machineInfo } from "../machine.js";
import { rootfsTar } from "../rootfs.js";
import { type BenchContext, type BenchCorpus, type TimedFamily, type Unit, unitLabel, unitsOf } from "./context.js";
import { driverNames, runDriverUnit, type Skipped } from "./driver-run.js";
import { peakRss, Recorder, resetPeakRss } from "./measure.js";
import type { BenchOptions } from "./options.js";
import { makePeer } from "./peers/index.js";
import { BenchProgress } from "./progress.js";
import { type BenchResults, formatValue, ratios } from "./report/results.js";
import { writeReports } from "./report/write.js";

/** Generates (or finds cached) the corpus tars the chosen families use (the single layers only for apply). */
export async function prepareCorpus(o: BenchOptions, log: (s: string) => void): Promise<BenchCorpus> {
  const dir = resolve(o.corpusDir);
  log(`corpus: ${dir} (seed ${o.seed})`);
  const image = [];
  for (let i = 0; i < 10; i++)
    image.push(
      await cachedTar(dir, `image10-l${i}`, { files: o.imageLayerFiles, seed: o.seed }, () =>
        imageLayerEntries(i, o.imageLayerFiles, o.seed),
      ),
    );
  if (!o.families.includes("apply")) return { image };
  const smallfiles = await cachedTar(dir, "smallfiles", { n: o.smallFiles, seed: o.seed }, () =>
    smallFileEntries(o.smallFiles, o.seed),
  );
  const largefiles = await cachedTar(dir, "largefiles", { n: o.largeFiles, size: o.largeFileBytes, seed: o.seed }, () =>
    largeFileEntries(o.largeFiles, o.largeFileBytes, o.seed),
  );
  const rootfs = await rootfsTar(dir, o.quickRootfs, o.rootfsLikeFiles, o.seed, log);
  return { rootfs, smallfiles, largefiles, image };
}

/** A driver or a peer, as the round loop sees it. */
interface Subject {
  name: string;
  kind: "driver" | "peer";
  families: readonly TimedFamily[];
  /** Runs one unit on `fs` (set-up untimed, caches dropped, then timed). */
  runUnit(fs: FreshFs, unit: Unit, run: number): Promise<void>;
}

function driverSubject(name: string, ctx: BenchContext): Subject {
  return {
    name,
    kind: "driver",
    families: ctx.opts.families.filter((f): f is TimedFamily => f !== "memory"),
    runUnit: (fs, unit, run) => runDriverUnit(name, ctx, fs, unit, run),
  };
}

/** The peers that are installed, prepared (archives built); the others are skipped with their reason. */
async function peerSubjects(ctx: BenchContext, skipped: Skipped[]): Promise<Subject[]> {
  const out: Subject[] = [];
  for (const name of ctx.opts.peers) {
    const peer = makePeer(name);
    let why = await peer.missing();
    if (!why) {
      try {
        await peer.prepare(ctx, resolve(ctx.opts.workDir, "peer-archives"));
      } catch (err) {
        why = `failed: ${(err as Error).message.split("\n")[0]}`;
      }
    }
    if (why) {
      skipped.push({ subject: name, reason: why });
      ctx.log(`skipping peer ${name}: ${why}`);
      continue;
    }
    out.push({
      name,
      kind: "peer",
      families: peer.families.filter((f) => ctx.opts.families.includes(f)),
      runUnit: async (fs, unit, run) => {
        try {
          await peer.start(ctx, fs, unit);
          await dropCaches();
          await peer.run(ctx, unit, run);
        } finally {
          await peer.stop();
        }
      },
    });
  }
  return out;
}

/** Runs the bench and writes results.json, results.md and report.html into `o.outDir`. */
export async function runBench(o: BenchOptions, command: string): Promise<BenchResults> {
  const started = new Date().toISOString();
  const outDir = resolve(o.outDir);
  const workDir = resolve(o.workDir);
  await mkdir(outDir, { recursive: true });
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  const fsOpts = { type: o.fsType, size: DEFAULT_FS_SIZE };
  const rec = new Recorder();
  const progress = new BenchProgress(1);
  rec.onSample = (s) => progress.log(`  ${s.subject} ${s.workload}: ${formatValue(s.value, s.unit)}`);
  const skipped: Skipped[] = [];
  try {
    progress.step("corpus");
    const corpus = await prepareCorpus(o, (s) => progress.log(s));
    const ctx: BenchContext = { opts: { ...o, workDir }, corpus, rec, log: (s) => progress.log(s) };
    const subjects = [
      ...driverNames(o.drivers).map((d) => driverSubject(d, ctx)),
      ...(await peerSubjects(ctx, skipped)),
    ];
    const units = (s: Subject) => s.families.reduce((n, f) => n + unitsOf(f, corpus).length, 0);
    progress.setTotal(1 + o.runs * subjects.reduce((n, s) => n + units(s), 0));
    progress.log(`filesystem: ${describeFreshFs(o.fsType, fsOpts.size)}`);
    const memory = o.families.includes("memory") && (await resetPeakRss());
    for (let run = 1; run <= o.runs; run++) {
      const order = run % 2 === 1 ? subjects : [...subjects].reverse();
      for (const s of order) {
        if (skipped.some((x) => x.subject === s.name)) continue;
        try {
          for (const family of s.families) {
            if (memory && s.kind === "driver") await resetPeakRss();
            for (const unit of unitsOf(family, corpus)) {
              progress.step(`${s.name} run ${run}/${o.runs}: ${unitLabel(unit)}`);
              await withFreshFs(fsOpts, (fs) => s.runUnit(fs, unit, run));
            }
            if (memory && s.kind === "driver")
              rec.add(s.name, "driver", "memory", `memory/${family}`, "bytes", await peakRss());
          }
        } catch (err) {
          // Reported (results.json, the report, the exit status for a driver); the other subjects still run.
          const reason =
            err instanceof NotSupportedError ? err.message : `failed: ${(err as Error).message.split("\n")[0]}`;
          skipped.push({ subject: s.name, reason });
          progress.log(`skipping ${s.kind} ${s.name}: ${reason}`);
        }
      }
    }
    const measurements = rec.measurements();
    const { outDir: _o, workDir: _w, ...rest } = o;
    const results: BenchResults = {
      format: "strata-bench/2",
      started,
      finished: new Date().toISOString(),
      command,
      options: { ...rest, corpusDir: resolve(o.corpusDir) },
      machine: await machineInfo(workDir),
      filesystem: { type: o.fsType, sizeBytes: fsOpts.size, description: describeFreshFs(o.fsType, fsOpts.size) },
      corpus: corpusSummary(corpus),
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

function corpusSummary(corpus: BenchCorpus): BenchResults["corpus"] {
  const { rootfs, smallfiles, largefiles } = corpus;
  return {
    ...(rootfs ? { rootfs: { files: rootfs.files, bytes: rootfs.bytes, kind: rootfs.kind, note: rootfs.note } } : {}),
    ...(smallfiles ? { smallfiles: { files: smallfiles.files, bytes: smallfiles.bytes } } : {}),
    ...(largefiles ? { largefiles: { files: largefiles.files, bytes: largefiles.bytes } } : {}),
    image10: {
      layers: corpus.image.length,
      files: corpus.image.reduce((a, t) => a + t.files, 0),
      bytes: corpus.image.reduce((a, t) => a + t.bytes, 0),
    },
  };
}
