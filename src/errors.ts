/**
 * strata's error classes. Every error a caller may act on carries a stable
 * `code`; messages read `Cannot <operation>: <reason> "<value>"` and may
 * change, codes may not. The CLI prints the message on one line and maps the
 * code to an exit status.
 *
 * @module
 */

/**
 * `message` on one line: control characters (a newline in a file name
 * from an archive, say) are written as escapes (`\n`, `\t`, `\r`, `\xNN`).
 */
function oneLine(message: string): string {
  return message.replace(/[\x00-\x1f\x7f]/g, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    if (c === "\r") return "\\r";
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
}

/** Base class: a failure with a stable machine-readable code and a one-line message. */
export class StrataError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(oneLine(message), options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Something named does not exist (layer, container, image, driver id). */
export class NotFoundError extends StrataError {}
/** Something named already exists. */
export class AlreadyExistsError extends StrataError {}
/** The request is malformed (bad option, bad argument, bad input data). */
export class InvalidArgumentError extends StrataError {}
/** The state forbids the operation (mounted, in use, has children). */
export class FailedPreconditionError extends StrataError {}
/** The driver cannot run on this machine; auto-selection skips it. */
export class NotSupportedError extends StrataError {}
/** A path from a tar or a caller would leave the root it must stay in. */
export class BreakoutError extends StrataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_BREAKOUT", message, options);
  }
}

/** Bytes are not what their digest (or size) promised: ERR_DIGEST_MISMATCH, wherever it is found. */
export class DigestMismatchError extends StrataError {
  constructor(message: string) {
    super("ERR_DIGEST_MISMATCH", message);
  }

  /** `Cannot verify <what>: digest mismatch, want "<want>" got "<got>"`. */
  static of(what: string, want: string, got: string): DigestMismatchError {
    return new DigestMismatchError(`Cannot verify ${what}: digest mismatch, want "${want}" got "${got}"`);
  }
}

/**
 * A failed system call from the native addon: `code` is the errno name
 * (`ENOENT`, `EPERM`, …), `errno` the negative errno as Node reports it.
 */
export class SystemError extends StrataError {
  readonly errno: number;
  readonly syscall: string;
  readonly path: string | undefined;
  constructor(code: string, errno: number, syscall: string, path: string | undefined, message: string) {
    super(code, message);
    this.errno = errno;
    this.syscall = syscall;
    this.path = path;
  }
}

/** True when `err` is an Error whose `code` equals `code` (Node's or strata's). */
export function hasCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof Error && codes.includes((err as { code?: string }).code ?? "");
}
