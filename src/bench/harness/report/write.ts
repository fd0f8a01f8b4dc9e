/**
 * Writes the three reports of a run into the output directory:
 * results.json, results.md and report.html.
 *
 * @module
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FAMILIES } from "../options.js";
import { renderCharts } from "./charts.js";
import { htmlReport } from "./html.js";
import { markdownReport, subjects } from "./markdown.js";
import type { BenchResults } from "./results.js";

/** Writes results.json, results.md and report.html into `outDir` (which exists). */
export async function writeReports(r: BenchResults, outDir: string): Promise<void> {
  await writeFile(join(outDir, "results.json"), `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(join(outDir, "results.md"), markdownReport(r));
  const charts = await renderCharts(FAMILIES, r.measurements, subjects(r));
  await writeFile(join(outDir, "report.html"), htmlReport(r, charts));
}
