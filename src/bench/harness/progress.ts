/**
 * Progress while the bench runs: a cli-progress bar when stderr is a
 * terminal, plain timestamped lines otherwise (CI logs, tests).
 *
 * @module
 */
import type cliProgressModule from "cli-progress";
import { cliProgress } from "../../util/cli-progress.js";

/** Steps of known total, plus free log lines. */
export class BenchProgress {
  #bar: cliProgressModule.SingleBar | undefined;
  #done = 0;
  #total: number;
  #t0 = Date.now();

  constructor(total: number, tty = process.stderr.isTTY === true) {
    this.#total = total;
    if (tty) {
      this.#bar = new (cliProgress().SingleBar)(
        { format: "bench [{bar}] {value}/{total} {label}", stream: process.stderr, hideCursor: true },
        cliProgress().Presets.shades_classic,
      );
      this.#bar.start(total, 0, { label: "" });
    }
  }

  #stamp(): string {
    return `${((Date.now() - this.#t0) / 1000).toFixed(1).padStart(6)}s`;
  }

  /** Changes the number of steps (once it is known). */
  setTotal(total: number): void {
    this.#total = total;
    this.#bar?.setTotal(total);
  }

  /** Starts the next step. */
  step(label: string): void {
    this.#done++;
    if (this.#bar) this.#bar.update(this.#done, { label });
    else process.stderr.write(`bench ${this.#stamp()} [${this.#done}/${this.#total}] ${label}\n`);
  }

  /** A line of information (printed above the bar on a terminal). */
  log(line: string): void {
    if (this.#bar) this.#bar.update({ label: line.slice(0, 60) });
    else process.stderr.write(`bench ${this.#stamp()} ${line}\n`);
  }

  stop(): void {
    this.#bar?.update(this.#total);
    this.#bar?.stop();
  }
}
