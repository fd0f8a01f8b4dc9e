/**
 * Names for a driver's temporary directories (a layer being built, a layer
 * being deleted) that say which process made them: `<base>.tmp-<pid>.<start>-<random>`.
 * A driver's start-up sweep removes only those whose process is gone, so it
 * never pulls a directory from under another strata process still at work.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { currentProcess, isAlive } from "./process.js";

const TMP_RE = /\.tmp-(\d+)\.(\d+)-[0-9a-f]+$/;

/** A temporary name for `base` owned by this process. */
export async function tmpName(base: string): Promise<string> {
  const me = await currentProcess();
  return `${base}.tmp-${me.pid}.${me.start}-${randomBytes(4).toString("hex")}`;
}

/** True for any temporary name (live or stale). */
export function isTmpName(name: string): boolean {
  return name.includes(".tmp-");
}

/** True for a temporary name whose owner has exited (or that has no owner recorded). */
export async function isStaleTmp(name: string): Promise<boolean> {
  if (!isTmpName(name)) return false;
  const m = TMP_RE.exec(name);
  if (!m) return true;
  return !(await isAlive({ pid: Number(m[1]), start: m[2]! }));
}
