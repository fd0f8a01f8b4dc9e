/**
 * The Markdown table of a run: one row per workload, one column per driver
 * and peer (median, with min–max), then the strata/peer ratios.
 *
 * @module
 */
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

/** The Markdown report: machine line, figures table, ratios table, skipped subjects. */
export function markdownReport(r: BenchResults): string {
  const subs = subjects(r);
  const m = r.machine;
  const lines = [
    `Machine: ${m.cores} cores (${m.cpuModel}), ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, kernel ${m.kernel}, ${m.os}, bench dir on ${m.benchFs}; Node ${m.node}.`,
    `Preset: ${r.options.preset}, ${r.options.runs} runs; median (min–max). Command: \`${r.command}\``,
    "",
    `| workload | ${subs.join(" | ")} |`,
    `|---|${subs.map(() => "---").join("|")}|`,
  ];
  for (const w of workloads(r)) {
    const cells = subs.map((s) => {
      const x = r.measurements.find((y) => y.workload === w && y.subject === s);
      if (!x) return "–";
      const range = x.min === x.max ? "" : ` (${formatValue(x.min, x.unit)}–${formatValue(x.max, x.unit)})`;
      return `${formatValue(x.median, x.unit)}${range}`;
    });
    lines.push(`| ${w} | ${cells.join(" | ")} |`);
  }
  if (r.ratios.length) {
    const pairs = [...new Set(r.ratios.map((x) => `${x.driver}/${x.peer}`))];
    lines.push("", "strata/peer (median over median; below 1 means strata is faster or smaller):", "");
    lines.push(`| workload | ${pairs.join(" | ")} |`, `|---|${pairs.map(() => "---").join("|")}|`);
    for (const w of [...new Set(r.ratios.map((x) => x.workload))]) {
      const cells = pairs.map((p) => {
        const x = r.ratios.find((y) => y.workload === w && `${y.driver}/${y.peer}` === p);
        return x ? `${x.ratio.toFixed(2)}×` : "–";
      });
      lines.push(`| ${w} | ${cells.join(" | ")} |`);
    }
  }
  const notes = [...new Set(r.measurements.filter((x) => x.note).map((x) => `${x.subject}: ${x.note}`))];
  if (notes.length) lines.push("", "Notes:", ...notes.map((n) => `- ${n}`));
  for (const [name, c] of Object.entries(r.corpus)) if (c.note) lines.push(`- corpus ${name}: ${c.note}`);
  if (r.skipped.length) lines.push("", "Skipped:", ...r.skipped.map((s) => `- ${s.subject}: ${s.reason}`));
  return `${lines.join("\n")}\n`;
}
