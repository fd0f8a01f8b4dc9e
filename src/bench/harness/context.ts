/**
 * What every workload receives: the options, the corpus, the recorder and
 * the progress output; and the units a family is cut into, each timed on a
 * filesystem of its own.
 *
 * @module
 */
import type { CorpusTar } from "../corpus.js";
import type { RootfsTar } from "../rootfs.js";
import type { Recorder } from "./measure.js";
import type { BenchOptions, Family } from "./options.js";

/** The generated (and debootstrapped) layer tars of one run; the single layers only when `apply` runs. */
export interface BenchCorpus {
  rootfs?: RootfsTar;
  smallfiles?: CorpusTar;
  largefiles?: CorpusTar;
  /** The ten-layer image, bottom first. */
  image: CorpusTar[];
}

/** Shared state of one `strata bench` run. */
export interface BenchContext {
  opts: BenchOptions;
  corpus: BenchCorpus;
  rec: Recorder;
  /** A line of progress (a log line, or the bar's label on a terminal). */
  log: (line: string) => void;
}

/** The families that are timed (memory is recorded around the others). */
export type TimedFamily = Exclude<Family, "memory">;

/**
 * What runs on one fresh filesystem: a family, or for `apply` one of its
 * layer sets (so that no apply runs on a filesystem another apply has just
 * written and deleted).
 */
export interface Unit {
  family: TimedFamily;
  /** The apply workload id (`apply/rootfs`, …) and the tars it applies, bottom first. */
  apply?: { workload: string; tars: CorpusTar[] };
}

/** The apply workloads and the tar(s) each applies, in order. */
export function applySets(corpus: BenchCorpus): Array<{ workload: string; tars: CorpusTar[] }> {
  const single = [
    ["apply/rootfs", corpus.rootfs],
    ["apply/smallfiles", corpus.smallfiles],
    ["apply/largefiles", corpus.largefiles],
  ] as const;
  return [
    ...single.flatMap(([workload, tar]) => (tar ? [{ workload, tars: [tar] }] : [])),
    { workload: "apply/image10", tars: corpus.image },
  ];
}

/** The units of `family`, each run on its own fresh filesystem. */
export function unitsOf(family: TimedFamily, corpus: BenchCorpus): Unit[] {
  if (family === "apply") return applySets(corpus).map((apply) => ({ family, apply }));
  return [{ family }];
}

/** A short label of a unit for progress lines. */
export function unitLabel(u: Unit): string {
  return u.apply ? u.apply.workload : u.family;
}
