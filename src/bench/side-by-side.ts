/**
 * The runner of the standalone benchmark programs: strata and the tool it is
 * compared with, timed on identical fresh filesystems, in rounds.
 *
 * Every round runs each contender once, each on a new filesystem
 * (`fresh-fs.ts`): untimed `prepare` (start a daemon, build the tree to
 * diff), drop the caches, the timed `run`, untimed `finish`, remove the
 * filesystem. The order alternates from round to round (A B, B A, A B, …)
 * so that neither side always runs right after the other's writeback. The
 * result is the median of each measure (wall, wall + sync, user and system
 * CPU) and the ratio of each contender to the reference.
 *
 * @module
 */
import { type FreshFs, type FreshFsOptions, describeFreshFs, dropCaches, withFreshFs } from "./fresh-fs.js";
import { formatRatio, median, ratio } from "./stats.js";
import { type CommandOptions, type Sample, timeCommand } from "./timer.js";

/** One side of a comparison. */
export interface Contender {
  /** Its name in the table, e.g. `strata layer apply`, `tar -xf`. */
  name: string;
  /** Untimed set-up on the fresh filesystem, before the caches are dropped. */
  prepare?(fs: FreshFs): Promise<void>;
  /** The timed run. */
  run(fs: FreshFs): Promise<Sample>;
  /** Untimed tear-down before the filesystem is removed; runs after a failed `run` too. */
  finish?(fs: FreshFs): Promise<void>;
}

/** Something measured side by side: its contenders and which one the others are divided by. */
export interface BenchCase {
  name: string;
  contenders: Contender[];
  /** Name of the reference contender (the peer); ratios are contender / reference. */
  reference: string;
}

/** One contender's samples and their medians. */
export interface ContenderResult {
  name: string;
  samples: Sample[];
  /** The median of each measure, taken separately. */
  median: Sample;
  /** Median wall / reference's median wall. */
  ratio: number;
  /** The same with the sync after the run counted. */
  ratioSynced: number;
}

/** The outcome of one case. */
export interface CaseResult {
  name: string;
  reference: string;
  results: ContenderResult[];
}

/** How the rounds run. */
export interface RoundOptions {
  rounds: number;
  fs: FreshFsOptions;
  /** Progress: called after each timed run. */
  onSample?: (caseName: string, contender: string, round: number, sample: Sample) => void;
}

/**
 * A contender that runs a whole command, built from the fresh filesystem's
 * mount point. The sync after it covers that filesystem.
 */
export function commandContender(
  name: string,
  command: (fs: FreshFs) => [string, string[]],
  hooks: Pick<Contender, "prepare" | "finish"> & { options?: (fs: FreshFs) => CommandOptions } = {},
): Contender {
  return {
    name,
    prepare: hooks.prepare,
    finish: hooks.finish,
    run: (fs) => {
      const [cmd, args] = command(fs);
      return timeCommand(cmd, args, { syncPath: fs.path, ...hooks.options?.(fs) });
    },
  };
}

function medianSample(samples: Sample[]): Sample {
  return {
    wall: median(samples.map((s) => s.wall)),
    synced: median(samples.map((s) => s.synced)),
    user: median(samples.map((s) => s.user)),
    sys: median(samples.map((s) => s.sys)),
  };
}

/** Runs one case for `opts.rounds` rounds, alternating the order, each run on its own fresh filesystem. */
export async function runCase(c: BenchCase, opts: RoundOptions): Promise<CaseResult> {
  if (!c.contenders.some((x) => x.name === c.reference))
    throw new RangeError(`Cannot run "${c.name}": no contender is the reference "${c.reference}"`);
  const samples = new Map<string, Sample[]>(c.contenders.map((x) => [x.name, []]));
  for (let round = 0; round < opts.rounds; round++) {
    const order = round % 2 === 0 ? c.contenders : [...c.contenders].reverse();
    for (const contender of order) {
      const sample = await withFreshFs(opts.fs, async (fs) => {
        try {
          await contender.prepare?.(fs);
          await dropCaches();
          return await contender.run(fs);
        } finally {
          await contender.finish?.(fs);
        }
      });
      samples.get(contender.name)!.push(sample);
      opts.onSample?.(c.name, contender.name, round + 1, sample);
    }
  }
  const medians = new Map([...samples].map(([name, s]) => [name, medianSample(s)]));
  const ref = medians.get(c.reference)!;
  return {
    name: c.name,
    reference: c.reference,
    results: c.contenders.map((x) => {
      const m = medians.get(x.name)!;
      return {
        name: x.name,
        samples: samples.get(x.name)!,
        median: m,
        ratio: ratio(m.wall, ref.wall),
        ratioSynced: ratio(m.synced, ref.synced),
      };
    }),
  };
}

const secs = (x: number) => x.toFixed(3);

/**
 * The Markdown table of a program's results: a row per case and contender
 * with the medians and the ratios to the case's reference, under a line
 * stating the filesystem and the rounds.
 */
export function formatCaseResults(results: CaseResult[], opts: Pick<RoundOptions, "rounds" | "fs">): string {
  const lines = [
    `Filesystem: ${describeFreshFs(opts.fs.type ?? "ext4", opts.fs.size)}.`,
    `Medians of ${opts.rounds} rounds, the order alternating; CPU is user / system seconds of the processes doing the work;`,
    "ratio = contender / reference (below 1: strata is faster).",
    "",
    "| case | contender | wall s | + sync s | user s | sys s | ratio | ratio + sync |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const c of results)
    for (const r of c.results) {
      const ref = r.name === c.reference;
      lines.push(
        `| ${c.name} | ${r.name}${ref ? " (reference)" : ""} | ${secs(r.median.wall)} | ${secs(r.median.synced)} | ` +
          `${secs(r.median.user)} | ${secs(r.median.sys)} | ${ref ? "1" : formatRatio(r.ratio)} | ${ref ? "1" : formatRatio(r.ratioSynced)} |`,
      );
    }
  return `${lines.join("\n")}\n`;
}

/** The progress line of one sample, for `onSample`. */
export function sampleLine(caseName: string, contender: string, round: number, s: Sample): string {
  return `${caseName} | ${contender} | round ${round}: wall ${secs(s.wall)} s, + sync ${secs(s.synced)} s, user ${secs(s.user)} s, sys ${secs(s.sys)} s`;
}
