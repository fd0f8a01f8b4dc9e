/**
 * What the standalone benchmark programs share: their command-line options
 * (`--rounds`, `--fs`, `--quick`, `--cases`, plus each program's own), the
 * strata CLI as a command to time, and running a list of cases with the
 * side-by-side runner while printing progress and the final table.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { InvalidArgumentError } from "../../errors.js";
import { FS_TYPES, type FsType } from "../fresh-fs.js";
import { type BenchCase, type CaseResult, formatCaseResults, runCase, sampleLine } from "../side-by-side.js";

/** The strata CLI of this build (dist/src/cli/main.js), run as a whole process like a user runs it. */
export const STRATA_CLI = fileURLToPath(new URL("../../cli/main.js", import.meta.url));

/** The command line of `strata <args>`. */
export function strata(...args: string[]): [string, string[]] {
  return [process.execPath, [STRATA_CLI, ...args]];
}

/** The options every program takes. */
export interface ProgramOptions {
  rounds: number;
  fs: FsType;
  quick: boolean;
  /** Case-name prefixes to run (empty: all). */
  cases: string[];
  /** The program's own options, as parsed. */
  extra: Record<string, string | boolean | undefined>;
}

const COMMON = {
  rounds: { type: "string" },
  fs: { type: "string" },
  quick: { type: "boolean" },
  cases: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Parses `process.argv` for a program. `usage` is printed for `--help`
 * (and the process exits); `own` are the program's extra options.
 * @throws ERR_INVALID_OPTION for an unknown option or a bad value
 */
export function programOptions(
  usage: string,
  own: NonNullable<ParseArgsConfig["options"]> = {},
  defaults: { rounds: number; quickRounds: number },
): ProgramOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ options: { ...COMMON, ...own }, allowPositionals: false }).values as typeof values;
  } catch (err) {
    throw new InvalidArgumentError("ERR_INVALID_OPTION", `Cannot run the benchmark: ${(err as Error).message}`);
  }
  if (values.help) {
    console.log(usage.trim());
    process.exit(0);
  }
  const quick = values.quick === true;
  const rounds = values.rounds === undefined ? (quick ? defaults.quickRounds : defaults.rounds) : Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100)
    throw new InvalidArgumentError(
      "ERR_INVALID_OPTION",
      `Cannot run the benchmark: --rounds must be 1..100 "${values.rounds}"`,
    );
  const fs = (values.fs ?? "ext4") as FsType;
  if (!FS_TYPES.includes(fs))
    throw new InvalidArgumentError(
      "ERR_INVALID_OPTION",
      `Cannot run the benchmark: --fs must be one of ${FS_TYPES.join(", ")} "${values.fs}"`,
    );
  const cases = typeof values.cases === "string" ? values.cases.split(",").filter(Boolean) : [];
  return { rounds, fs, quick, cases, extra: values };
}

/** True when `name` was asked for with `--cases` (a prefix), or no case was named. */
export function wanted(o: ProgramOptions, name: string): boolean {
  return o.cases.length === 0 || o.cases.some((c) => name.startsWith(c));
}

/**
 * Runs the cases in order on fresh filesystems, printing a line per sample
 * to stderr, then prints the table (with the filesystem) to stdout.
 */
export async function runCases(title: string, cases: BenchCase[], o: ProgramOptions): Promise<CaseResult[]> {
  const fsOpts = { type: o.fs };
  const results: CaseResult[] = [];
  for (const c of cases) {
    process.stderr.write(`${c.name}\n`);
    results.push(
      await runCase(c, {
        rounds: o.rounds,
        fs: fsOpts,
        onSample: (name, who, round, s) => process.stderr.write(`  ${sampleLine(name, who, round, s)}\n`),
      }),
    );
  }
  console.log(`\n## ${title}\n`);
  console.log(formatCaseResults(results, { rounds: o.rounds, fs: fsOpts }));
  return results;
}

/** Runs `main`, printing a failure as one line and exiting non-zero. */
export function runProgram(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    const e = err as Error & { code?: string };
    console.error(`${e.message}${e.code ? ` [${e.code}]` : ""}`);
    process.exitCode = e.code === "ERR_INVALID_OPTION" ? 2 : 1;
  });
}
