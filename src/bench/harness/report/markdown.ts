/**
 * The Markdown report of a run: the set-up (machine, filesystem, corpus),
 * the figures table (a row per workload, a column per driver and peer:
 * median and min–max), the strata/peer ratios and the notes.
 *
 * @module
 */
import type { BenchResults } from "./results.js";
import { corpusRows, figure, notes, ratioGrid, ratioText, setupLines, subjects, workloads } from "./tables.js";

export { subjects, workloads } from "./tables.js";

/** The Markdown report. */
export function markdownReport(r: BenchResults): string {
  const subs = subjects(r);
  const lines = setupLines(r).map(([k, v]) => `- ${k}: ${k === "Command" ? `\`${v}\`` : v}`);
  lines.push("", "Corpus:", "", "| layers | files | bytes | made |", "|---|---:|---:|---|");
  for (const c of corpusRows(r)) lines.push(`| ${c.name} | ${c.files} | ${c.bytes} | ${c.note} |`);
  lines.push("", "Median (min–max) per workload; lower is better.", "");
  lines.push(`| workload | ${subs.join(" | ")} |`, `|---|${subs.map(() => "---:").join("|")}|`);
  for (const w of workloads(r)) {
    const cells = subs.map((s) => {
      const f = figure(r, w, s);
      return f ? `${f.median}${f.range ? ` (${f.range})` : ""}` : "–";
    });
    lines.push(`| ${w} | ${cells.join(" | ")} |`);
  }
  const grid = ratioGrid(r);
  if (grid.rows.length) {
    lines.push("", "strata / peer (median over median; below 1 means strata is faster or smaller):", "");
    lines.push(
      `| workload | driver | ${grid.peers.join(" | ")} |`,
      `|---|---|${grid.peers.map(() => "---:").join("|")}|`,
    );
    for (const row of grid.rows)
      for (const d of grid.drivers) {
        const cells = grid.peers.map((p) => ratioText(row.cells.find((c) => c.peer === p && c.driver === d)?.ratio));
        lines.push(`| ${row.workload} | ${d} | ${cells.join(" | ")} |`);
      }
  }
  const n = notes(r);
  if (n.length) lines.push("", "Notes:", "", ...n.map((x) => `- ${x}`));
  return `${lines.join("\n")}\n`;
}
