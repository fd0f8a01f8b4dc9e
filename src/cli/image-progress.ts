/**
 * Drawing the image module's progress events: cli-progress bars on a
 * terminal, plain lines without one, or JSON lines for programs.
 *
 * @module
 */
import type cliProgressModule from "cli-progress";
import type { ProgressFn } from "../image/index.js";
import { cliProgress } from "../util/cli-progress.js";
import { humanSize } from "./context.js";

/** A progress callback writing one JSON object per line to `out`. */
export function jsonProgress(out: NodeJS.WritableStream = process.stdout): ProgressFn {
  return (e) => {
    out.write(`${JSON.stringify(e)}\n`);
  };
}

/**
 * A progress callback drawing one bar per layer on a terminal; call `stop()`
 * at the end. Not a TTY: one line per status change instead.
 */
export function terminalProgress(out: NodeJS.WriteStream = process.stderr): { fn: ProgressFn; stop(): void } {
  if (!out.isTTY) {
    const last = new Map<number, string>();
    return {
      fn: (e) => {
        if (last.get(e.layer) === e.status) return;
        last.set(e.layer, e.status);
        out.write(`${e.id}: ${e.status}\n`);
      },
      stop() {},
    };
  }
  const multi = new (cliProgress().MultiBar)(
    {
      stream: out,
      format: "{id}: {status} [{bar}] {value}/{total}",
      hideCursor: true,
      clearOnComplete: false,
      formatValue: (v, _o, type) => (type === "value" || type === "total" ? humanSize(v) : String(v)),
    },
    cliProgress().Presets.shades_classic,
  );
  const bars = new Map<number, cliProgressModule.SingleBar>();
  return {
    fn: (e) => {
      let bar = bars.get(e.layer);
      if (!bar) {
        bar = multi.create(e.total ?? 0, 0, { id: e.id, status: e.status });
        bars.set(e.layer, bar);
      }
      if (e.total !== undefined) bar.setTotal(e.total);
      bar.update(e.current ?? (e.status === "done" || e.status === "exists" ? (e.total ?? 0) : 0), {
        id: e.id,
        status: e.status,
      });
    },
    stop: () => multi.stop(),
  };
}
