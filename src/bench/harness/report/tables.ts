/**
 * The content of the reports, shaped once for both renderings (Markdown
 * and HTML): the subjects and workloads in display order, the figures of a
 * cell, the ratio grid (a row per workload, a column per peer and driver),
 * the corpus and the set-up lines.
 *
 * @module
 */
import { formatRatio } from "../../stats.js";
import { FAMILIES } from "../options.js";
import { type BenchResults, formatValue } from "./results.js";

/** Subjects in display order: drivers first, then peers, each in order of appearance. */
export function subjects(r: BenchResults): string[] {
  const seen: string[] = [];
  for (const kind of ["driver", "peer"] as const)
    for (const m of r.measurements) if (m.kind === kind && !seen.includes(m.subject)) seen.push(m.subject);
  return seen;
}

/** Workloads by family, then in order of first appearance (Array.prototype.sort is stable). */
export function workloads(r: BenchResults): string[] {
  const family = new Map(r.measurements.map((m) => [m.workload, FAMILIES.indexOf(m.family)]));
  return [...new Set(r.measurements.map((m) => m.workload))].sort((a, b) => family.get(a)! - family.get(b)!);
}

/** The median of one workload and subject, and its min–max when the runs differ; undefined when not measured. */
export function figure(
  r: BenchResults,
  workload: string,
  subject: string,
): { median: string; range: string } | undefined {
  const x = r.measurements.find((y) => y.workload === workload && y.subject === subject);
  if (!x) return undefined;
  return {
    median: formatValue(x.median, x.unit),
    range: x.min === x.max ? "" : `${formatValue(x.min, x.unit)}–${formatValue(x.max, x.unit)}`,
  };
}

/** The ratios as a grid: for each peer, one column per driver; a row per workload some peer measured. */
export interface RatioGrid {
  peers: string[];
  drivers: string[];
  rows: Array<{ workload: string; cells: Array<{ peer: string; driver: string; ratio: number | undefined }> }>;
}

/** The grid of strata / peer ratios. */
export function ratioGrid(r: BenchResults): RatioGrid {
  const peers = [...new Set(r.ratios.map((x) => x.peer))];
  const drivers = [...new Set(r.ratios.map((x) => x.driver))];
  const rows = [...new Set(r.ratios.map((x) => x.workload))].map((workload) => ({
    workload,
    cells: peers.flatMap((peer) =>
      drivers.map((driver) => ({
        peer,
        driver,
        ratio: r.ratios.find((x) => x.workload === workload && x.peer === peer && x.driver === driver)?.ratio,
      })),
    ),
  }));
  return { peers, drivers, rows };
}

/** A ratio cell's text. */
export function ratioText(ratio: number | undefined): string {
  return ratio === undefined ? "–" : formatRatio(ratio);
}

/** The corpus, a row per layer set: its name, files, bytes and how it was made. */
export function corpusRows(r: BenchResults): Array<{ name: string; files: string; bytes: string; note: string }> {
  return Object.entries(r.corpus).map(([name, c]) => ({
    name: c.layers ? `${name} (${c.layers} layers)` : name,
    files: c.files.toLocaleString("en-US"),
    bytes: formatValue(c.bytes, "bytes"),
    note: c.note ?? c.kind ?? "",
  }));
}

/** The set-up as label/value pairs: machine, filesystem, inputs, preset, time, command. */
export function setupLines(r: BenchResults): Array<[string, string]> {
  const m = r.machine as BenchResults["machine"] & { benchFs?: string };
  return [
    [
      "Machine",
      `${m.cores} cores (${m.cpuModel}), ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, kernel ${m.kernel}, ${m.os}; Node ${m.node}`,
    ],
    [
      "Filesystem",
      r.filesystem?.description ??
        `the bench directory's own filesystem, ${m.benchFs ?? "unknown"} (format 1, not fresh)`,
    ],
    ["Inputs read from", m.inputDir ? `${m.inputDir} on ${m.inputFs} (${m.inputMount})` : "–"],
    ["Preset", `${r.options.preset}, ${r.options.runs} runs per workload, the order of the subjects alternating`],
    ["Time", `${r.started} – ${r.finished}`],
    ["Command", r.command],
  ];
}

/** Notes: what each peer did where it differs, corpus notes, skipped subjects. */
export function notes(r: BenchResults): string[] {
  return [
    ...new Set(r.measurements.filter((x) => x.note).map((x) => `${x.subject}: ${x.note}`)),
    ...r.skipped.map((s) => `skipped ${s.subject}: ${s.reason}`),
  ];
}
