/**
 * The shape of `results.json`, and the strata/peer ratios computed from it.
 *
 * @module
 */
import type { FsType } from "../../fresh-fs.js";
import type { MachineInfo } from "../../machine.js";
import type { Measurement } from "../measure.js";
import type { BenchOptions } from "../options.js";

/** A driver or peer that did not run, with the reason printed at the time. */
export interface SkippedSubject {
  subject: string;
  reason: string;
}

/** strata's median over a peer's median for one workload (below 1: strata is faster or smaller). */
export interface Ratio {
  workload: string;
  driver: string;
  peer: string;
  ratio: number;
}

/** The results.json formats `--compare` reads (2: every unit on a fresh filesystem). */
export const RESULT_FORMATS = ["strata-bench/1", "strata-bench/2"] as const;

/** Everything one `strata bench` run measured. */
export interface BenchResults {
  format: (typeof RESULT_FORMATS)[number];
  started: string;
  finished: string;
  /** The command line that produced the figures. */
  command: string;
  options: Omit<BenchOptions, "corpusDir" | "outDir" | "workDir"> & { corpusDir: string };
  machine: MachineInfo;
  /** The filesystem every timed unit ran on, made fresh for it (absent in format 1). */
  filesystem?: { type: FsType; sizeBytes: number; description: string };
  corpus: Record<string, { files: number; bytes: number; kind?: string; note?: string; layers?: number }>;
  measurements: Measurement[];
  ratios: Ratio[];
  skipped: SkippedSubject[];
}

/** Ratios strata/peer for every workload measured by both a driver and a peer. */
export function ratios(ms: Measurement[]): Ratio[] {
  const out: Ratio[] = [];
  for (const d of ms.filter((m) => m.kind === "driver"))
    for (const p of ms.filter((m) => m.kind === "peer" && m.workload === d.workload))
      if (p.median > 0)
        out.push({ workload: d.workload, driver: d.subject, peer: p.subject, ratio: d.median / p.median });
  return out;
}

/** Human form of a value in its unit. */
export function formatValue(v: number, unit: "s" | "bytes"): string {
  if (unit === "bytes") {
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    let x = v;
    while (Math.abs(x) >= 1024 && i < units.length - 1) {
      x /= 1024;
      i++;
    }
    return `${x.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  }
  if (v < 0.001) return `${(v * 1e6).toFixed(0)} µs`;
  if (v < 1) return `${(v * 1e3).toFixed(1)} ms`;
  return `${v.toFixed(2)} s`;
}
