/**
 * Path safety for entries from a tar: names are cleaned and must stay inside
 * the layer root. This is the lexical check (Docker's breakoutError); the
 * kernel-side guarantee comes from resolving every parent directory with
 * openat2(RESOLVE_IN_ROOT), so symlinks met on the way resolve inside the
 * root too.
 *
 * @module
 */
import { posix } from "node:path";
import { BreakoutError } from "../errors.js";

/**
 * Cleans a tar entry name into a relative path without `.`/`..` parts.
 * Returns "" for the root itself.
 * @throws ERR_BREAKOUT for absolute names, names that climb out with `..`, and NUL bytes
 * @example cleanEntryPath("./usr//bin/") === "usr/bin"
 */
export function cleanEntryPath(name: string): string {
  if (name.includes("\0")) throw new BreakoutError(`Cannot apply the entry: NUL byte in name "${name}"`);
  if (name.startsWith("/")) throw new BreakoutError(`Cannot apply the entry: absolute path "${name}"`);
  const cleaned = posix.normalize(`${name}`).replace(/\/+$/, "");
  if (cleaned === "." || cleaned === "") return "";
  if (cleaned === ".." || cleaned.startsWith("../")) {
    throw new BreakoutError(`Cannot apply the entry: path escapes the layer root "${name}"`);
  }
  return cleaned;
}

/** Throws ERR_BREAKOUT unless `name` stays inside the root once cleaned (exported for callers who filter first). */
export function assertSafePath(name: string): void {
  cleanEntryPath(name);
}
