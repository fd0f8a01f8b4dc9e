/**
 * The daemon's log: one line per event, `<ISO time> <level> <message>
 * key=value…`, to stderr or to a file opened for appending. `reopen()` (on
 * SIGHUP) closes and opens the file again, so logrotate can move it away.
 *
 * @module
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { InvalidArgumentError } from "../errors.js";

/** Log levels, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Values printed after the message; strings with spaces or quotes are JSON-quoted. */
export type LogFields = Record<string, string | number | boolean | undefined>;

/** @throws ERR_INVALID_OPTION for a name that is not a level */
export function parseLogLevel(name: string): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(name)) return name as LogLevel;
  throw new InvalidArgumentError(
    "ERR_INVALID_OPTION",
    `Cannot set log level: expected one of ${LOG_LEVELS.join(", ")} "${name}"`,
  );
}

function formatValue(v: string | number | boolean): string {
  const s = String(v);
  return s === "" || /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/** A leveled line logger. */
export class Logger {
  readonly #file: string | undefined;
  readonly #min: number;
  #stream: WriteStream | undefined;

  /** @param file where to append, or undefined for stderr */
  constructor(opts: { file?: string; level?: LogLevel } = {}) {
    this.#file = opts.file;
    this.#min = LOG_LEVELS.indexOf(opts.level ?? "info");
    if (this.#file) this.#stream = this.#open(this.#file);
  }

  #open(file: string): WriteStream {
    const s = createWriteStream(file, { flags: "a", mode: 0o640 });
    // A log that cannot be written must not take the daemon down: say so on stderr once.
    s.on("error", (err) => process.stderr.write(`strata serve: cannot write log "${file}": ${err.message}\n`));
    return s;
  }

  /** Whether lines of `level` are written (to skip building costly messages). */
  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.#min;
  }

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    let line = `${new Date().toISOString()} ${level} ${msg}`;
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
    line += "\n";
    if (this.#stream) this.#stream.write(line);
    else process.stderr.write(line);
  }

  debug(msg: string, fields?: LogFields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log("error", msg, fields);
  }

  /** Opens the log file again (after logrotate moved it); a no-op for stderr. */
  reopen(): void {
    if (!this.#file) return;
    const old = this.#stream;
    this.#stream = this.#open(this.#file);
    old?.end();
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    const s = this.#stream;
    this.#stream = undefined;
    if (s) await new Promise<void>((r) => s.end(r));
  }
}
