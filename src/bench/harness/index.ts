/**
 * The benchmark harness behind `strata bench`: a seeded corpus, every
 * built-in driver and the peers (GNU tar, dockerd overlay2, umoci,
 * containerd) in the same run, each timed unit on a freshly made
 * filesystem, and the reports (results.json, Markdown, report.html with
 * Vega-Lite SVG charts). See ../README.md.
 *
 * @module
 */
export { compareResults, formatComparison, readResults, type Comparison } from "./report/compare.js";
export { FAMILIES, FULL, PEERS, QUICK, resolveOptions, type BenchOptions, type RawBenchOptions } from "./options.js";
export type { BenchResults, Ratio } from "./report/results.js";
export { markdownReport } from "./report/markdown.js";
export { writeReports } from "./report/write.js";
export { prepareCorpus, runBench } from "./run.js";
