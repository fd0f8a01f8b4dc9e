/**
 * `strata bench --compare OLD.json NEW.json`: per workload and subject, the
 * new median over the old one, classed as a regression or an improvement
 * beyond a threshold.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { InvalidArgumentError } from "../../../errors.js";
import { type BenchResults, RESULT_FORMATS, formatValue } from "./results.js";

/** One compared figure. */
export interface Comparison {
  workload: string;
  subject: string;
  old: number;
  new: number;
  unit: "s" | "bytes";
  /** new / old. */
  ratio: number;
  verdict: "regression" | "improvement" | "same";
}

/**
 * Reads a results.json.
 * @throws ERR_INVALID_OPTION when the file is missing or not a strata bench result
 */
export async function readResults(path: string): Promise<BenchResults> {
  let r: BenchResults;
  try {
    r = JSON.parse(await readFile(path, "utf8")) as BenchResults;
  } catch (err) {
    throw new InvalidArgumentError(
      "ERR_INVALID_OPTION",
      `Cannot compare: cannot read "${path}" (${(err as Error).message.split("\n")[0]})`,
    );
  }
  if (!RESULT_FORMATS.includes(r?.format) || !Array.isArray(r.measurements))
    throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot compare: not a strata bench results.json "${path}"`);
  return r;
}

/** Compares the figures both runs have; `threshold` 0.1 means ±10 % counts as the same. */
export function compareResults(a: BenchResults, b: BenchResults, threshold = 0.1): Comparison[] {
  const out: Comparison[] = [];
  for (const n of b.measurements) {
    const o = a.measurements.find((m) => m.workload === n.workload && m.subject === n.subject);
    if (!o || o.median <= 0) continue;
    const ratio = n.median / o.median;
    const verdict = ratio > 1 + threshold ? "regression" : ratio < 1 / (1 + threshold) ? "improvement" : "same";
    out.push({ workload: n.workload, subject: n.subject, old: o.median, new: n.median, unit: n.unit, ratio, verdict });
  }
  return out;
}

/** The comparison as aligned text lines, regressions first. */
export function formatComparison(cs: Comparison[]): string[] {
  const order = { regression: 0, improvement: 1, same: 2 };
  const rows = [...cs].sort((x, y) => order[x.verdict] - order[y.verdict] || y.ratio - x.ratio);
  const cols = rows.map((c) => [
    c.verdict.toUpperCase(),
    c.subject,
    c.workload,
    formatValue(c.old, c.unit),
    formatValue(c.new, c.unit),
    `${c.ratio.toFixed(2)}×`,
  ]);
  const head = ["VERDICT", "SUBJECT", "WORKLOAD", "OLD", "NEW", "NEW/OLD"];
  const w = head.map((h, i) => Math.max(h.length, ...cols.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((v, i) => v.padEnd(w[i]!))
      .join("  ")
      .trimEnd();
  const reg = cs.filter((c) => c.verdict === "regression").length;
  const imp = cs.filter((c) => c.verdict === "improvement").length;
  return [line(head), ...cols.map(line), `${reg} regressions, ${imp} improvements, ${cs.length - reg - imp} unchanged`];
}
