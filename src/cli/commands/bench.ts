/**
 * `strata bench`: measure the drivers (and peers) and write the reports;
 * `strata bench --compare OLD.json NEW.json`: regressions and improvements.
 *
 * @module
 */
import type { Command } from "commander";
import { builtinDrivers } from "../../drivers/index.js";
import { InvalidArgumentError } from "../../errors.js";
import { FAMILIES, PEERS, type RawBenchOptions, resolveOptions } from "../../bench/harness/options.js";

/** Registers `strata bench` on `program`. */
export function benchCommand(program: Command): void {
  program
    .command("bench")
    .description("benchmark the drivers (and peers) and write results.json, results.md and report.html")
    .option("--drivers <list>", `comma-separated drivers (default: all of ${builtinDrivers().names().join(", ")})`)
    .option("--workloads <list>", `comma-separated families (default: ${FAMILIES.join(",")})`)
    .option("--runs <n>", "runs per workload (default: 2 with --quick, 3 otherwise)")
    .option("--corpus <dir>", "where the generated corpus is cached (default <out>/corpus)")
    .option("--peers [list]", `also run the peers that are installed (default all: ${PEERS.join(",")})`)
    .option("--out <dir>", "where the reports go", "bench-out")
    .option("--work <dir>", "where the peers' image archives are built (default <out>/work, removed after)")
    .option("--fs <type>", "filesystem made fresh for every timed unit: ext4 or xfs", "ext4")
    .option("--seed <n>", "corpus seed")
    .option("--quick", "the quick preset (under two minutes)")
    .option("--compare <files...>", "compare two results.json files (OLD NEW) instead of running")
    .action(async (o: RawBenchOptions & { compare?: string[] }) => {
      // Loaded here, not at the top: the report's chart libraries (vega) take
      // longer to load than most other commands take to run.
      const { compareResults, formatComparison, markdownReport, readResults, runBench } =
        await import("../../bench/harness/index.js");
      if (o.compare) {
        if (o.compare.length !== 2)
          throw new InvalidArgumentError(
            "ERR_INVALID_OPTION",
            "Cannot compare: give exactly two files, OLD.json NEW.json",
          );
        const [a, b] = await Promise.all(o.compare.map((f) => readResults(f)));
        for (const line of formatComparison(compareResults(a!, b!))) console.log(line);
        return;
      }
      const opts = resolveOptions(o, builtinDrivers().names());
      const results = await runBench(opts, `strata ${process.argv.slice(2).join(" ")}`);
      console.log(markdownReport(results));
      console.log(`wrote ${opts.outDir}/results.json, results.md, report.html`);
      // A driver that failed mid-run makes the run a failure, though its report is written.
      if (results.skipped.some((s) => s.reason.startsWith("failed:") && !PEERS.includes(s.subject as never)))
        process.exitCode = 1;
    });
}
