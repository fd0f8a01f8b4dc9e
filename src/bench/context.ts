/**
 * What every workload receives: the options, the corpus, the recorder and
 * the progress output.
 *
 * @module
 */
import type { CorpusTar } from "./corpus.js";
import type { Recorder } from "./measure.js";
import type { BenchOptions } from "./options.js";
import type { RootfsTar } from "./rootfs.js";

/** The generated (and debootstrapped) layer tars of one run. */
export interface BenchCorpus {
  rootfs: RootfsTar;
  smallfiles: CorpusTar;
  largefiles: CorpusTar;
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
  /** Bytes of each driver's home right after its store opened (the disk workload's zero). */
  emptyHome: Map<string, number>;
}

/** The apply workloads and the tar(s) each applies, in order. */
export function applySets(corpus: BenchCorpus): Array<{ workload: string; tars: string[] }> {
  return [
    { workload: "apply/rootfs", tars: [corpus.rootfs.path] },
    { workload: "apply/smallfiles", tars: [corpus.smallfiles.path] },
    { workload: "apply/largefiles", tars: [corpus.largefiles.path] },
    { workload: "apply/image10", tars: corpus.image.map((t) => t.path) },
  ];
}
