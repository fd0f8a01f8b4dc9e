/**
 * `report.html`: self-contained (inline SVG charts and styles, no scripts,
 * nothing fetched), readable at a glance: the machine, one chart per
 * workload family, the figures table and the ratios.
 *
 * @module
 */
import type { Chart } from "./charts.js";
import { subjects, workloads } from "./markdown.js";
import { type BenchResults, formatValue } from "./results.js";

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

function table(r: BenchResults): string {
  const subs = subjects(r);
  const head = `<tr><th>workload</th>${subs.map((s) => `<th>${esc(s)}</th>`).join("")}</tr>`;
  const rows = workloads(r).map((w) => {
    const cells = subs.map((s) => {
      const x = r.measurements.find((y) => y.workload === w && y.subject === s);
      if (!x) return "<td>–</td>";
      const range =
        x.min === x.max ? "" : `<small> ${formatValue(x.min, x.unit)}–${formatValue(x.max, x.unit)}</small>`;
      return `<td>${formatValue(x.median, x.unit)}${range}</td>`;
    });
    return `<tr><th>${esc(w)}</th>${cells.join("")}</tr>`;
  });
  return `<table>${head}${rows.join("")}</table>`;
}

function ratioTable(r: BenchResults): string {
  if (!r.ratios.length) return "<p>No peer ran, so there are no ratios.</p>";
  const pairs = [...new Set(r.ratios.map((x) => `${x.driver}/${x.peer}`))];
  const rows = [...new Set(r.ratios.map((x) => x.workload))].map((w) => {
    const cells = pairs.map((p) => {
      const x = r.ratios.find((y) => y.workload === w && `${y.driver}/${y.peer}` === p);
      if (!x) return "<td>–</td>";
      return `<td class="${x.ratio <= 1 ? "good" : "bad"}">${x.ratio.toFixed(2)}×</td>`;
    });
    return `<tr><th>${esc(w)}</th>${cells.join("")}</tr>`;
  });
  return `<table><tr><th>workload</th>${pairs.map((p) => `<th>${esc(p)}</th>`).join("")}</tr>${rows.join("")}</table>`;
}

/** The whole page. */
export function htmlReport(r: BenchResults, charts: Chart[]): string {
  const m = r.machine;
  const notes = [
    ...r.skipped.map((s) => `skipped ${s.subject}: ${s.reason}`),
    ...Object.entries(r.corpus)
      .filter(([, c]) => c.note)
      .map(([n, c]) => `corpus ${n}: ${c.note}`),
    ...new Set(r.measurements.filter((x) => x.note).map((x) => `${x.subject}: ${x.note}`)),
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strata bench — ${esc(r.options.preset)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child{text-align:left}small{color:#777}td.good{background:#e6f4ea}td.bad{background:#fce8e6}
.chart{margin:12px 0 24px}.meta{color:#555}
</style></head><body>
<h1>strata bench (${esc(r.options.preset)} preset, ${r.options.runs} runs)</h1>
<p class="meta">${m.cores} cores (${esc(m.cpuModel)}), ${(m.memoryBytes / 2 ** 30).toFixed(0)} GiB, kernel ${esc(m.kernel)}, ${esc(m.os)};
bench directory ${esc(m.benchDir)} on ${esc(m.benchFs)} (${esc(m.benchMount)}); Node ${esc(m.node)}.<br>
Started ${esc(r.started)}, finished ${esc(r.finished)}. Command: <code>${esc(r.command)}</code></p>
${charts.map((c) => `<h2>${esc(c.title)}</h2><div class="chart" data-family="${c.family}">${c.svg}</div>`).join("\n")}
<h2>Figures (median, min–max)</h2>${table(r)}
<h2>strata / peer</h2>${ratioTable(r)}
${notes.length ? `<h2>Notes</h2><ul>${notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>` : ""}
</body></html>
`;
}
