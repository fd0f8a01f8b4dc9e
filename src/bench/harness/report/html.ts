/**
 * `report.html`: self-contained (inline SVG charts and styles, no scripts,
 * nothing fetched), for someone choosing a driver: the set-up (machine, the
 * fresh filesystem, the corpus sizes), a legend with each driver's and
 * peer's colour, one full-width chart per workload family, the figures
 * table, the ratio table (a column per peer and driver, narrow enough for
 * the page) and the notes.
 *
 * @module
 */
import { type Chart, subjectColors } from "./charts.js";
import type { BenchResults } from "./results.js";
import { corpusRows, figure, notes, ratioGrid, ratioText, setupLines, subjects, workloads } from "./tables.js";

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

function setup(r: BenchResults): string {
  const rows = setupLines(r).map(
    ([k, v]) => `<tr><th>${esc(k)}</th><td>${k === "Command" ? `<code>${esc(v)}</code>` : esc(v)}</td></tr>`,
  );
  const corpus = corpusRows(r).map(
    (c) => `<tr><th>${esc(c.name)}</th><td>${c.files}</td><td>${c.bytes}</td><td class="text">${esc(c.note)}</td></tr>`,
  );
  return `<table class="setup">${rows.join("")}</table>
<h2 id="corpus">Corpus</h2>
<table class="corpus"><tr><th>layers</th><th>files</th><th>bytes</th><th class="text">made</th></tr>${corpus.join("")}</table>`;
}

function legend(r: BenchResults): string {
  const colors = subjectColors(subjects(r));
  const kinds = new Map(r.measurements.map((m) => [m.subject, m.kind]));
  const items = [...colors].map(
    ([s, c]) =>
      `<span class="key"><span class="swatch" style="background:${c}"></span>${esc(s)} <small>${kinds.get(s) === "peer" ? "peer" : "driver"}</small></span>`,
  );
  return `<p class="legend">${items.join("")}</p>`;
}

function figures(r: BenchResults): string {
  const subs = subjects(r);
  const head = `<tr><th>workload</th>${subs.map((s) => `<th>${esc(s)}</th>`).join("")}</tr>`;
  const rows = workloads(r).map((w) => {
    const cells = subs.map((s) => {
      const f = figure(r, w, s);
      return f ? `<td>${f.median}${f.range ? `<br><small>${f.range}</small>` : ""}</td>` : "<td>–</td>";
    });
    return `<tr><th>${esc(w)}</th>${cells.join("")}</tr>`;
  });
  return `<table class="figures">${head}${rows.join("")}</table>`;
}

function ratioTable(r: BenchResults): string {
  const g = ratioGrid(r);
  if (!g.rows.length) return "<p>No peer ran, so there are no ratios.</p>";
  const peerHead = g.peers.map((p) => `<th colspan="${g.drivers.length}" class="group">${esc(p)}</th>`).join("");
  const driverHead = g.peers.map(() => g.drivers.map((d) => `<th>${esc(d)}</th>`).join("")).join("");
  const rows = g.rows.map((row) => {
    const cells = row.cells.map((c, i) => {
      const cls = [
        c.ratio === undefined ? "" : c.ratio <= 1 ? "good" : "bad",
        i % g.drivers.length === 0 ? "group" : "",
      ];
      return `<td class="${cls.join(" ").trim()}">${ratioText(c.ratio)}</td>`;
    });
    return `<tr><th class="text">${esc(row.workload)}</th>${cells.join("")}</tr>`;
  });
  return `<table class="ratios"><tr><th rowspan="2" class="text">workload</th>${peerHead}</tr><tr>${driverHead}</tr>${rows.join("")}</table>`;
}

/** The whole page. */
export function htmlReport(r: BenchResults, charts: Chart[]): string {
  const n = notes(r);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strata bench — ${esc(r.options.preset)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;padding:0 24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
th:first-child,.text{text-align:left}small{color:#666}
.ratios th{text-align:center}.ratios th.text{text-align:left}td.good{background:#e6f4ea}td.bad{background:#fce8e6}.group{border-left:2px solid #888}
table.setup td{text-align:left}table.setup{width:100%}
.chart svg{width:100%;height:auto;display:block}.chart{margin:8px 0 24px}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px}.key{white-space:nowrap}
.swatch{display:inline-block;width:14px;height:14px;border-radius:2px;margin-right:6px;vertical-align:-2px}
.wide{overflow-x:auto}
</style></head><body>
<h1>strata bench (${esc(r.options.preset)} preset, ${r.options.runs} runs)</h1>
<p>Every timed unit ran on a filesystem made fresh for it, with cold caches; lower is better on every chart. Bars are medians, black rules span min–max.</p>
${setup(r)}
<h2>Drivers and peers</h2>
${legend(r)}
${charts.map((c) => `<h2 id="${c.family}">${esc(c.title)}</h2><div class="chart" data-family="${c.family}">${c.svg}</div>`).join("\n")}
<h2 id="figures">Figures (median, min–max)</h2><div class="wide">${figures(r)}</div>
<h2 id="ratios">strata / peer (below 1: strata is faster or smaller)</h2><div class="wide">${ratioTable(r)}</div>
${n.length ? `<h2>Notes</h2><ul>${n.map((x) => `<li>${esc(x)}</li>`).join("")}</ul>` : ""}
</body></html>
`;
}
