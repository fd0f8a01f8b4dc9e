/**
 * One SVG chart per workload family, rendered in Node by Vega-Lite + Vega
 * (`View.toSVG()`, no browser, no canvas): a small bar chart per workload,
 * one bar per driver and peer at the median, with a min–max error bar.
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
  apply: "Apply a layer / image (lower is better)",
  container: "Container create / mount / unmount latency",
  start: "Concurrent container starts (create + mount) from one image",
  commit: "Diff and commit after N changed files",
  chain: "Deep chains: create, then read a file from the bottom layer",
  remove: "Remove containers and the image",
  disk: "Disk space used",
  memory: "Peak memory (RSS) of strata per workload family",
};

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
  const unit = bytes ? "MiB" : "seconds";
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    description: TITLES[family],
    data: { values },
    facet: { field: "workload", type: "nominal", title: null, sort: [...new Set(values.map((v) => v.workload))] },
    columns: 4,
    spec: {
      width: 150,
      height: 140,
      layer: [
        {
          mark: "bar",
          encoding: {
            x: { field: "subject", type: "nominal", sort: subjects, title: null, axis: { labelAngle: -30 } },
            y: { field: "median", type: "quantitative", title: unit },
            color: { field: "subject", type: "nominal", sort: subjects, title: "driver / peer" },
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
            x: { field: "subject", type: "nominal", sort: subjects },
            y: { field: "min", type: "quantitative" },
            y2: { field: "max" },
          },
        },
      ],
    },
    resolve: { scale: { y: "independent" } },
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
      out.push({ family, title: TITLES[family], svg: await view.toSVG() });
    } finally {
      view.finalize();
    }
  }
  return out;
}
