/**
 * Progress of long commands (pull, push, load, save, layer apply, import),
 * always on stderr, never on stdout (which carries only the result):
 *
 * - on a terminal, bars with sizes, totals and rates (cli-progress, loaded
 *   on first use), one per layer when each layer's size is known (pull,
 *   push), else one for the whole transfer (load, save);
 * - not on a terminal, one plain line per layer status change;
 * - with `--json`, one JSON object per line in the docker Engine's
 *   progress format (`status`, `id`, `progressDetail: {current, total}`);
 * - with `-q`, nothing.
 *
 * @module
 */
import type cliProgressModule from "cli-progress";
import type { LayerStatus, ProgressEvent, ProgressFn } from "../image/import/progress.js";
import { cliProgress } from "../util/cli-progress.js";
import { humanSize } from "../util/size.js";

/** How progress is shown. */
export type ProgressMode = "bars" | "lines" | "json" | "none";

/** The mode for a command's `-q` and `--json`, on the current stderr. */
export function progressMode(
  o: { quiet?: boolean; json?: boolean },
  out: NodeJS.WriteStream = process.stderr,
): ProgressMode {
  if (o.quiet) return "none";
  if (o.json) return "json";
  return out.isTTY ? "bars" : "lines";
}

/** The verb a progress display is for; it picks Docker's words for each status. */
export type Transfer = "pull" | "push" | "load";

const WORDS: Record<Transfer, Partial<Record<LayerStatus, string>>> = {
  pull: {
    waiting: "Waiting",
    downloading: "Downloading",
    spooling: "Download complete",
    applying: "Extracting",
    done: "Pull complete",
    exists: "Already exists",
    failed: "Failed",
  },
  push: {
    waiting: "Waiting",
    pushing: "Pushing",
    done: "Pushed",
    exists: "Layer already exists",
    mounted: "Mounted from another repository",
    failed: "Failed",
  },
  load: {
    waiting: "Waiting",
    downloading: "Loading layer",
    applying: "Loading layer",
    done: "Loaded",
    exists: "Already exists",
    failed: "Failed",
  },
};

/** "12.3MB/45.6MB 10.2MB/s", or without the total when it is unknown. */
function amounts(value: number, total: number | undefined, startedMs: number): string {
  const secs = (Date.now() - startedMs) / 1000;
  const rate = secs > 0 && value > 0 ? ` ${humanSize(value / secs)}/s` : "";
  return `${humanSize(value)}${total ? `/${humanSize(total)}` : ""}${rate}`;
}

function bar(fraction: number, width = 30): string {
  const n = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `[${"=".repeat(Math.max(0, n - 1))}${n > 0 ? ">" : ""}${" ".repeat(width - n)}]`;
}

/** A progress display: feed it events, stop it at the end (on failure too). */
export interface LayerProgress {
  fn: ProgressFn;
  stop(): void;
}

/**
 * A display for a layer transfer.
 * @param total bytes of the whole transfer when known (a load's archive size):
 *   then a terminal shows one bar for all of it instead of one per layer
 */
export function layerProgress(mode: ProgressMode, verb: Transfer, total?: number, out = process.stderr): LayerProgress {
  const word = (s: LayerStatus) => WORDS[verb][s] ?? s;
  if (mode === "none") return { fn: () => {}, stop() {} };
  if (mode === "json") {
    return {
      fn: (e) =>
        out.write(
          `${JSON.stringify({
            status: word(e.status),
            id: e.id,
            ...(e.current !== undefined ? { progressDetail: { current: e.current, total: e.total } } : {}),
          })}\n`,
        ),
      stop() {},
    };
  }
  if (mode === "lines") {
    const last = new Map<number, string>();
    return {
      fn: (e) => {
        const w = word(e.status);
        if (last.get(e.layer) === w) return;
        last.set(e.layer, w);
        const size = e.status === "done" && e.current ? ` ${humanSize(e.current)}` : "";
        out.write(`${e.id}: ${w}${size}\n`);
      },
      stop() {},
    };
  }
  return total ? overallBar(out, verb, total) : perLayerBars(out, word);
}

function perLayerBars(out: NodeJS.WriteStream, word: (s: LayerStatus) => string): LayerProgress {
  const started = Date.now();
  const multi = new (cliProgress().MultiBar)(
    {
      stream: out,
      hideCursor: true,
      clearOnComplete: false,
      format: (_o, p, payload: { id: string; status: string }) =>
        `${payload.id}: ${payload.status.padEnd(18)} ${p.total > 0 ? `${bar(p.value / p.total)} ` : ""}${
          p.value > 0 ? amounts(p.value, p.total || undefined, started) : ""
        }`,
    },
    cliProgress().Presets.legacy,
  );
  const bars = new Map<number, cliProgressModule.SingleBar>();
  return {
    fn: (e: ProgressEvent) => {
      let b = bars.get(e.layer);
      if (!b) bars.set(e.layer, (b = multi.create(e.total ?? 0, 0, { id: e.id, status: word(e.status) })));
      if (e.total !== undefined) b.setTotal(e.total);
      const settled = e.status === "done" || e.status === "exists" || e.status === "mounted";
      b.update(e.current ?? (settled ? (e.total ?? 0) : 0), { id: e.id, status: word(e.status) });
    },
    stop: () => multi.stop(),
  };
}

function overallBar(out: NodeJS.WriteStream, verb: Transfer, total: number): LayerProgress {
  const b = byteBar(out, verb === "load" ? "Loading" : verb === "pull" ? "Pulling" : "Pushing", total);
  const current = new Map<number, number>();
  const settled = new Set<number>();
  const layers = new Set<number>();
  const sum = () => [...current.values()].reduce((a, n) => a + n, 0);
  const note = () => `${settled.size}/${layers.size} layers`;
  return {
    fn: (e) => {
      layers.add(e.layer);
      if (e.current !== undefined) current.set(e.layer, e.current);
      if (e.status === "done" || e.status === "exists") settled.add(e.layer);
      b.update(sum(), undefined, note());
    },
    stop: () => {
      // Layers already stored are not read: a finished transfer shows as whole.
      if (layers.size > 0 && settled.size === layers.size) b.update(total, undefined, note());
      b.stop();
    },
  };
}

/** A byte counter display (apply, save, spooling stdin). */
export interface ByteProgress {
  /** Bytes so far, the total when it became known, and a short note. */
  update(current: number, total?: number, note?: string): void;
  /** Ends the display; `finished` says the work succeeded (plain and JSON modes then print a last line). */
  stop(finished?: boolean): void;
}

function byteBar(out: NodeJS.WriteStream, label: string, total: number | undefined): ByteProgress {
  const started = Date.now();
  let known = total;
  const single = new (cliProgress().SingleBar)(
    {
      stream: out,
      hideCursor: true,
      format: (_o, p, payload: { note: string }) =>
        `${label} ${known ? `${bar(p.value / known)} ` : ""}${amounts(p.value, known, started)}${payload.note ? `  ${payload.note}` : ""}`,
    },
    cliProgress().Presets.legacy,
  );
  single.start(total ?? 0, 0, { note: "" });
  return {
    update(current, t, note) {
      if (t !== undefined && t !== known) single.setTotal((known = t));
      single.update(current, { note: note ?? "" });
    },
    stop: () => single.stop(),
  };
}

/**
 * A display for bytes moving through one stream (apply, save, a spool of stdin).
 * Lines mode prints one line when it finishes; JSON mode prints Docker's progress objects.
 */
export function byteProgress(mode: ProgressMode, label: string, total?: number, out = process.stderr): ByteProgress {
  if (mode === "bars") return byteBar(out, label, total);
  if (mode === "none") return { update() {}, stop() {} };
  let last = 0;
  let lastTotal = total;
  const started = Date.now();
  if (mode === "json") {
    let reported = -Infinity;
    return {
      update(current, t) {
        last = current;
        lastTotal = t ?? lastTotal;
        if (current - reported < 1 << 20) return;
        reported = current;
        out.write(`${JSON.stringify({ status: label, progressDetail: { current, total: lastTotal } })}\n`);
      },
      stop(finished) {
        if (finished)
          out.write(
            `${JSON.stringify({ status: label, progressDetail: { current: last, total: lastTotal ?? last } })}\n`,
          );
      },
    };
  }
  return {
    update(current, t) {
      last = current;
      lastTotal = t ?? lastTotal;
    },
    stop(finished) {
      if (finished && last > 0)
        out.write(`${label}: ${humanSize(last)} in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
    },
  };
}
