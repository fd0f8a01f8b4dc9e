/**
 * How a failed command ends, as the docker CLI ends: one line on stderr
 * (`strata: <message> [CODE]`), exit status 1 for errors and 125 for usage
 * errors (a bad flag, argument or option value), which add "See 'strata
 * VERB --help'." instead of dumping the help. System errors from Node
 * (ENOENT, EISDIR, ...) are reworded into strata's message form, so no raw
 * errno text (or temp-file name) reaches the user.
 *
 * @module
 */
import { StrataError } from "../errors.js";

/** Exit status of a failed command. */
export const EXIT_ERROR = 1;
/** Exit status of a usage error (docker's). */
export const EXIT_USAGE = 125;

/** A mistake in how a command was called: a bad flag value, a missing argument. */
export class UsageError extends StrataError {
  /** The mistake is in a global flag (before the verb): the hint names `strata --help`. */
  readonly global: boolean;
  constructor(message: string, opts: { code?: string; global?: boolean; cause?: unknown } = {}) {
    super(opts.code ?? "ERR_USAGE", message, { cause: opts.cause });
    this.global = opts.global ?? false;
  }
}

/** Codes of errors that come from a flag's value, reported as usage errors. */
const USAGE_CODES = new Set(["ERR_USAGE", "ERR_INVALID_OPTION", "ERR_DRIVER_UNKNOWN"]);

/** True for errors reported as usage errors (exit 125, with the "See ... --help" line). */
export function isUsageError(err: unknown): boolean {
  return err instanceof StrataError && USAGE_CODES.has(err.code);
}

/** A Node system error: `code` "E…", `syscall`, maybe `path`/`dest`. */
interface NodeSystemError extends Error {
  code: string;
  syscall?: string;
  path?: string;
  dest?: string;
}

function isNodeSystemError(err: unknown): err is NodeSystemError {
  return (
    err instanceof Error &&
    !(err instanceof StrataError) &&
    typeof (err as NodeSystemError).code === "string" &&
    /^E[A-Z0-9]+$/.test((err as NodeSystemError).code) &&
    typeof (err as NodeSystemError).syscall === "string"
  );
}

/** The reason part of Node's "EISDIR: illegal operation on a directory, open '/x'" in plain words. */
const REASONS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EISDIR: "is a directory",
  ENOTDIR: "not a directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EEXIST: "file exists",
  ENOSPC: "no space left on device",
  EROFS: "read-only file system",
  EXDEV: "on another filesystem",
  EPIPE: "the reader went away",
  ENOTEMPTY: "directory not empty",
  EBUSY: "device or resource busy",
};

/**
 * The one line a failure prints (without the "strata: " prefix).
 * @param operation what the command was doing, for system errors ("save", "apply the layer")
 */
export function describeError(err: unknown, operation: string): string {
  if (isNodeSystemError(err)) {
    const reason = REASONS[err.code] ?? err.message.replace(/^E[A-Z0-9]+: /, "").split(",")[0];
    // A rename names the temp file first; the user knows the destination.
    const value = err.dest ?? err.path;
    return `Cannot ${operation}: ${reason}${value ? ` "${value}"` : ""} [${err.code}]`;
  }
  const message = (err instanceof Error ? err.message : String(err)).split("\n")[0];
  return err instanceof StrataError ? `${message} [${err.code}]` : message!;
}

/** The exit status for a failure. */
export function exitStatus(err: unknown): number {
  return isUsageError(err) ? EXIT_USAGE : EXIT_ERROR;
}
