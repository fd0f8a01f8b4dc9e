/**
 * Progress bars for long operations, shown only when stderr is a terminal.
 *
 * @module
 */
import { Transform } from "node:stream";
import { cliProgress } from "../util/cli-progress.js";

/**
 * A pass-through that advances a byte progress bar; a no-op when stderr is
 * not a TTY or `quiet` is set. Call `done()` when the work ends.
 */
export function byteProgress(label: string, total: number, quiet = false): { stream: Transform; done: () => void } {
  const tty = process.stderr.isTTY && !quiet && total > 0;
  const bar = tty
    ? new (cliProgress().SingleBar)(
        { format: `${label} [{bar}] {percentage}% {value}/{total} MB`, stream: process.stderr, hideCursor: true },
        cliProgress().Presets.shades_classic,
      )
    : undefined;
  const mb = (n: number) => Math.round(n / 1e5) / 10;
  bar?.start(mb(total), 0);
  let seen = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      bar?.update(mb(seen));
      cb(null, chunk);
    },
  });
  return { stream, done: () => bar?.stop() };
}
