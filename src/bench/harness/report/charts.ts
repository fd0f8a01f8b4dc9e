/**
 * One SVG chart per workload family, rendered in Node by Vega-Lite + Vega
 * (`View.toSVG()`, no browser, no canvas): a panel per workload, one bar per
 * driver and peer at the median with a min–max rule. Every chart uses the
 * same colour for the same driver or peer ({@link subjectColors}), says
 * that lower is better, and is drawn as wide as the page.
 *
 * @module
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { Measurement } from "../measure.js";
import type { Family } from "../options.js";

/** A rendered chart. */
export interface Chart {
  family: Family;
  title: string;
  svg: string;
}

const TITLES: Record<Family, string> = {
  apply: "Apply a layer / image",
  container: "Container create / mount / unmount latency",
  start: "Concurrent container starts (create + mount) from one image",
  commit: "Diff and commit after N changed files",
  chain: "Deep chains: create, then read a file from the bottom layer",
  remove: "Remove containers and the image",
  disk: "Disk space used",
  memory: "Peak memory (RSS) of strata per workload family",
};

/** The chart's title on the page. */
export function chartTitle(family: Family): string {
  return `${TITLES[family]} — lower is better`;
}

/** Fixed colours of the known drivers and peers, so a name keeps its colour from run to run. */
const KNOWN: Record<string, string> = {
  overlay: "#4c78a8",
  devmapper: "#72b7b2",
  vfs: "#54a24b",
  tar: "#9d755d",
  docker: "#e45756",
  umoci: "#b279a2",
  containerd: "#f58518",
};
const SPARE = ["#eeca3b", "#ff9da6", "#bab0ac", "#8cd17d", "#d37295", "#499894"];

/** The colour of every subject, the same in every chart and in the page's legend. */
export function subjectColors(subjects: string[]): Map<string, string> {
  const out = new Map<string, string>();
  let spare = 0;
  for (const s of subjects) out.set(s, KNOWN[s] ?? SPARE[spare++ % SPARE.length]!);
  return out;
}

/** Panels per row: at most 4, and rows as full as possible (6 panels: 3 + 3, not 4 + 2). */
export function gridColumns(panels: number): number {
  if (panels <= 4) return Math.max(panels, 1);
  const rows = Math.ceil(panels / 4);
  return Math.ceil(panels / rows);
}

/** Width in pixels the chart is laid out for; the page scales it to its own width. */
export const CHART_WIDTH = 1100;

/** The Vega-Lite spec of one family's chart. */
export function chartSpec(family: Family, ms: Measurement[], subjects: string[]): TopLevelSpec {
  const bytes = ms[0]?.unit === "bytes";
  const scale = bytes ? 1 / 2 ** 20 : 1;
  const values = ms.map((m) => ({
    workload: m.workload,
    subject: m.subject,
    median: m.median * scale,
    min: m.min * scale,
    max: m.max * scale,
  }));
  const workloads = [...new Set(values.map((v) => v.workload))];
  const columns = gridColumns(workloads.length);
  const colors = subjectColors(subjects);
  const unit = `${bytes ? "MiB" : "seconds"} (lower is better)`;
  const x = { field: "subject", type: "nominal", sort: subjects, title: null, axis: { labelAngle: -30 } } as const;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    description: chartTitle(family),
    data: { values },
    facet: { field: "workload", type: "nominal", title: null, sort: workloads, header: { labelFontSize: 13 } },
    columns,
    spec: {
      width: Math.floor((CHART_WIDTH - 70 * columns) / columns),
      height: 160,
      layer: [
        {
          mark: "bar",
          encoding: {
            x,
            y: { field: "median", type: "quantitative", title: unit },
            color: {
              field: "subject",
              type: "nominal",
              scale: { domain: subjects, range: subjects.map((s) => colors.get(s)!) },
              legend: null,
            },
            tooltip: [
              { field: "subject" },
              { field: "median", format: ".4g" },
              { field: "min", format: ".4g" },
              { field: "max", format: ".4g" },
            ],
          },
        },
        {
          mark: { type: "rule", color: "black" },
          encoding: {
            x,
            y: { field: "min", type: "quantitative" },
            y2: { field: "max" },
          },
        },
      ],
    },
    resolve: { scale: { y: "independent" }, axis: { x: "independent" } },
  };
}

/** Renders the chart of every family that has measurements, in family order. */
export async function renderCharts(
  families: readonly Family[],
  ms: Measurement[],
  subjects: string[],
): Promise<Chart[]> {
  const out: Chart[] = [];
  for (const family of families) {
    const mine = ms.filter((m) => m.family === family);
    if (!mine.length) continue;
    const view = new vega.View(vega.parse(compile(chartSpec(family, mine, subjects)).spec), { renderer: "none" });
    try {
      out.push({ family, title: chartTitle(family), svg: await view.toSVG() });
    } finally {
      view.finalize();
    }
  }
  return out;
}
